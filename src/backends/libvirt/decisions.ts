/**
 * The pure half of the libvirt backend: what each fence action does for a given domain state
 * (docs/protocol.md §12, §14.1), how targets are matched, and how lifecycle events move the cached state.
 */
import type { FenceOutcome } from '../backend.js';
import type { DomainInfo } from '../../libvirt/hypervisor.js';
import { LifecycleEventType } from '../../libvirt/hypervisor.js';
import { DomainState, Response } from '../../protocol/constants.js';
import { isUuid } from '../../protocol/uuid.js';

/** Machine-readable outcome reasons, shared with the broker-routed backend. */
export const Reason = {
  OK: 'ok',
  NOT_FOUND: 'not-found',
  ALREADY_OFF: 'already-off',
  ALREADY_ON: 'already-on',
  DESTROY_FAILED: 'destroy-failed',
  START_FAILED: 'start-failed',
  STILL_RUNNING: 'still-running',
  UNAVAILABLE: 'libvirt-unavailable',
  NO_HANDLER: 'no-handler',
} as const;
export type OutcomeReason = (typeof Reason)[keyof typeof Reason];

export function outcome(code: number, reason: OutcomeReason): FenceOutcome {
  return { code, reason };
}

/** UUID-looking targets are matched by UUID (case-insensitive), others by exact name (docs/protocol.md §14.1, §14.3). */
export type TargetKey = { by: 'uuid'; uuid: string } | { by: 'name'; name: string };

export function classifyTarget(target: string): TargetKey {
  return isUuid(target) ? { by: 'uuid', uuid: target.toLowerCase() } : { by: 'name', name: target };
}

export function matchesTarget(domain: DomainInfo, key: TargetKey): boolean {
  return key.by === 'uuid' ? domain.uuid.toLowerCase() === key.uuid : domain.name === key.name;
}

export function isOff(domain: DomainInfo): boolean {
  return domain.state === DomainState.SHUTOFF;
}

/** status: unknown or SHUTOFF → OFF (2); every other state, paused and crashed included → ON (0). */
export function statusOutcome(domain: DomainInfo | undefined): FenceOutcome {
  if (!domain) return outcome(Response.OFF, Reason.NOT_FOUND);
  return outcome(isOff(domain) ? Response.OFF : Response.SUCCESS, Reason.OK);
}

/** What an action needs next: an immediate answer, or a libvirt operation on the domain. */
export type Decision = { done: FenceOutcome } | { act: 'destroy' | 'start' | 'reboot' };

export function offDecision(domain: DomainInfo | undefined): Decision {
  if (!domain) return { done: outcome(Response.FAIL, Reason.NOT_FOUND) };
  if (isOff(domain)) return { done: outcome(Response.SUCCESS, Reason.ALREADY_OFF) };
  return { act: 'destroy' };
}

export function onDecision(domain: DomainInfo | undefined): Decision {
  if (!domain) return { done: outcome(Response.FAIL, Reason.NOT_FOUND) };
  if (!isOff(domain)) return { done: outcome(Response.SUCCESS, Reason.ALREADY_ON) };
  return { act: 'start' };
}

/** reboot never powers on a VM that is off ("reboot does not power on nodes that are off"). */
export function rebootDecision(domain: DomainInfo | undefined): Decision {
  if (!domain) return { done: outcome(Response.FAIL, Reason.NOT_FOUND) };
  if (isOff(domain)) return { done: outcome(Response.SUCCESS, Reason.ALREADY_OFF) };
  return { act: 'reboot' };
}

/**
 * The state a lifecycle event implies; undefined = the domain no longer exists. Events that
 * do not settle the state keep the previous one (the backend confirms each event by lookup).
 */
export function stateAfterEvent(event: number, previous: number | undefined): number | undefined {
  switch (event) {
    case LifecycleEventType.STARTED:
    case LifecycleEventType.RESUMED:
      return DomainState.RUNNING;
    case LifecycleEventType.SUSPENDED:
      return DomainState.PAUSED;
    case LifecycleEventType.STOPPED:
      return DomainState.SHUTOFF;
    case LifecycleEventType.CRASHED:
      return DomainState.CRASHED;
    case LifecycleEventType.PMSUSPENDED:
      return DomainState.PMSUSPENDED;
    case LifecycleEventType.UNDEFINED:
      // An inactive domain disappears; a running one becomes transient and stays.
      return previous === undefined || previous === DomainState.SHUTOFF ? undefined : previous;
    case LifecycleEventType.DEFINED:
      return previous ?? DomainState.SHUTOFF;
    default:
      return previous;
  }
}

/** A lifecycle event describing a difference found by a list or lookup (resync, reconcile). */
export function syntheticEvent(previous: number | undefined, next: number | undefined): number {
  if (next === undefined) return LifecycleEventType.UNDEFINED;
  if (previous === undefined && next === DomainState.SHUTOFF) return LifecycleEventType.DEFINED;
  switch (next) {
    case DomainState.SHUTOFF:
      return LifecycleEventType.STOPPED;
    case DomainState.PAUSED:
      return LifecycleEventType.SUSPENDED;
    case DomainState.SHUTDOWN:
      return LifecycleEventType.SHUTDOWN;
    case DomainState.CRASHED:
      return LifecycleEventType.CRASHED;
    case DomainState.PMSUSPENDED:
      return LifecycleEventType.PMSUSPENDED;
    default:
      return previous === DomainState.PAUSED
        ? LifecycleEventType.RESUMED
        : LifecycleEventType.STARTED;
  }
}

/** True when a fresh observation differs from the cached one in anything a listener cares about. */
export function domainChanged(
  previous: DomainInfo | undefined,
  next: DomainInfo | undefined,
): boolean {
  if (!previous || !next) return previous !== next;
  return previous.state !== next.state || previous.name !== next.name;
}
