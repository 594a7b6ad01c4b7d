/** Names and short texts for what the broker commands print. Pure. */
import { DomainState } from '../../protocol/constants.js';
import { LifecycleEventType } from '../../libvirt/hypervisor.js';

const STATE_NAMES: Record<number, string> = {
  [DomainState.NOSTATE]: 'nostate',
  [DomainState.RUNNING]: 'running',
  [DomainState.BLOCKED]: 'blocked',
  [DomainState.PAUSED]: 'paused',
  [DomainState.SHUTDOWN]: 'shutting-down',
  [DomainState.SHUTOFF]: 'shut-off',
  [DomainState.CRASHED]: 'crashed',
  [DomainState.PMSUSPENDED]: 'pm-suspended',
};

/** libvirt virDomainState as a word ("state-9" for values newer than ours). */
export function stateName(state: number | null | undefined): string {
  if (state === null || state === undefined) return 'gone';
  return STATE_NAMES[state] ?? `state-${state}`;
}

const EVENT_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(LifecycleEventType).map(([k, v]) => [v, k.toLowerCase()]),
);

/** virDomainEventType as a word; -1 (synthesised from a poll) is "polled". */
export function eventName(event: number): string {
  if (event === -1) return 'polled';
  return EVENT_NAMES[event] ?? `event-${event}`;
}

/** An age in ms as "0.4s", "12s", "3m05s", "2h01m". */
export function formatAge(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  const v = Math.max(0, ms);
  if (v < 10_000) return `${(v / 1000).toFixed(1)}s`;
  const s = Math.floor(v / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Result codes of the fence-virt protocol (docs/protocol.md §1.3) as words. */
export function resultName(code: number): string {
  switch (code) {
    case 0:
      return 'success';
    case 1:
      return 'fail';
    case 2:
      return 'off';
    case 3:
      return 'denied';
    default:
      return `code-${code}`;
  }
}
