/** What the broker commands report, computed from an observer's records. Pure over its input. */
import type { Liveness, OwnershipTable } from '../../routing/table.js';
import { isActiveState } from '../../routing/table.js';
import type { ObservedHost, ObservedVmEvent } from './types.js';
import { eventName, stateName } from './format.js';

export interface HostView {
  host: string;
  liveness: Liveness;
  /** Fencing evidence newer than the host's last heartbeat. */
  fenced: boolean;
  /** ms since the last heartbeat/announce arrived (our clock); null if none. */
  lastHeartbeatAgeMs: number | null;
  vms: number;
  /** VMs in an active state. */
  running: number;
  software: string | null;
  protocolVersion: number | null;
  listeners: string[];
  heartbeatIntervalMs: number | null;
  /** Daemon start time (its boot epoch), ms since the epoch. */
  startedAt: number | null;
  /** Its broker link as far as we can tell: heartbeats arriving over the broker. */
  broker: 'connected' | 'silent' | 'unknown';
  /** Messages from it that failed verification (e.g. another cluster key). */
  rejected: number;
  evidence: { by: string; fencedAt: number; evidence: string } | null;
}

export function hostViews(
  table: OwnershipTable,
  hosts: ReadonlyMap<string, ObservedHost>,
  now: number,
  exclude: string,
): HostView[] {
  const ids = new Set<string>([...table.knownHosts(), ...hosts.keys()]);
  ids.delete(exclude);
  const running = new Map<string, number>();
  for (const vm of table.list()) {
    for (const c of table.claims(vm.uuid)) {
      if (isActiveState(c.state)) running.set(c.host, (running.get(c.host) ?? 0) + 1);
    }
  }
  return [...ids].sort().map((id) => {
    const info = table.hostInfo(id, now);
    const o = hosts.get(id);
    const status = o?.status;
    const rejected = Object.values(o?.rejected ?? {}).reduce((a, b) => a + (b ?? 0), 0);
    const age = o?.lastStatusAt !== undefined ? now - o.lastStatusAt : null;
    return {
      host: id,
      liveness: info.liveness,
      fenced: info.fenced,
      lastHeartbeatAgeMs: age,
      vms: info.vms,
      running: running.get(id) ?? 0,
      software: status ? `${status.software.name} ${status.software.version}` : null,
      protocolVersion: status?.protocolVersion ?? null,
      listeners: status?.listeners ?? [],
      heartbeatIntervalMs: status?.intervalMs ?? null,
      startedAt: status?.epoch ?? null,
      broker:
        info.liveness === 'alive' || info.liveness === 'suspect'
          ? 'connected'
          : info.liveness === 'dead'
            ? 'silent'
            : 'unknown',
      rejected,
      evidence: o?.evidence
        ? { by: o.evidence.by, fencedAt: o.evidence.fencedAt, evidence: o.evidence.evidence }
        : null,
    };
  });
}

export interface VmOwnerView {
  host: string;
  state: string;
  hostLiveness: Liveness;
  hostFenced: boolean;
}

export interface VmView {
  name: string;
  uuid: string;
  /** The cluster-wide state (the running claim's; shut-off if every claimant was fenced). */
  state: string;
  /** Hosts where it runs (active claims). */
  owners: string[];
  /** Every host that claims it (running or defined). */
  claimants: VmOwnerView[];
  /** More than one host claims it as running. */
  conflict: boolean;
  lastEvent: { event: string; host: string; state: string; ageMs: number } | null;
}

export function vmViews(
  table: OwnershipTable,
  events: ReadonlyMap<string, ObservedVmEvent>,
  now: number,
  onlyHost?: string,
): VmView[] {
  const out: VmView[] = [];
  for (const vm of table.list()) {
    const claims = table.claims(vm.uuid);
    if (onlyHost !== undefined && !claims.some((c) => c.host === onlyHost)) continue;
    const active = claims.filter((c) => isActiveState(c.state) && !table.isFenced(c.host));
    const ev = events.get(vm.uuid);
    out.push({
      name: vm.name,
      uuid: vm.uuid,
      state: stateName(vm.state),
      owners: active.map((c) => c.host).sort(),
      claimants: claims
        .map((c) => ({
          host: c.host,
          state: stateName(c.state),
          hostLiveness: table.livenessOf(c.host, now),
          hostFenced: table.isFenced(c.host),
        }))
        .sort((a, b) => a.host.localeCompare(b.host)),
      conflict: active.length > 1,
      lastEvent: ev
        ? {
            event: eventName(ev.event),
            host: ev.host,
            state: stateName(ev.state),
            ageMs: now - ev.receivedAt,
          }
        : null,
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.uuid.localeCompare(b.uuid));
}
