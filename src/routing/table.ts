/**
 * The cluster-wide ownership table (docs/routing.md §3, §4): which host claims which VM, how
 * alive each host is, and which hosts are known to have been fenced. Pure: no I/O, no timers; every time is passed in.
 *
 * Ordering: every VM event and inventory snapshot a host publishes carries its boot `epoch`
 * and a per-host sequence `seq`. A claim is only replaced by a message with a strictly larger
 * (epoch, seq) position from the same host, so duplicated, stale or reordered messages are
 * ignored. Removals leave a tombstone with their position until a newer snapshot of that host
 * makes it unnecessary (the snapshot position is a floor below which everything is ignored).
 */
import { DomainState } from '../protocol/constants.js';
import { LifecycleEventType } from '../core/lifecycle.js';

export interface Position {
  epoch: number;
  seq: number;
}

/** -1, 0, 1 like a comparator. */
export function comparePosition(a: Position, b: Position): number {
  if (a.epoch !== b.epoch) return a.epoch < b.epoch ? -1 : 1;
  if (a.seq !== b.seq) return a.seq < b.seq ? -1 : 1;
  return 0;
}

/** What one host says about one VM. */
export interface Claim {
  host: string;
  uuid: string;
  name: string;
  /** Raw virDomainState as last reported by that host. */
  state: number;
  pos: Position;
  /** It stopped here because it migrated to another host (a STOPPED event, detail MIGRATED). */
  migratedAway?: boolean;
}

/** VIR_DOMAIN_EVENT_STOPPED_MIGRATED: the domain left for another host. */
export const STOPPED_MIGRATED = 3;

/** A VM is running (claims the VM as its owner) in every state but SHUTOFF. */
export function isActiveState(state: number): boolean {
  return state !== DomainState.SHUTOFF;
}

export interface VmEventInput {
  host: string;
  epoch: number;
  seq: number;
  uuid: string;
  name: string;
  /** virDomainEventType, -1 when synthesised from a poll. */
  event: number;
  detail: number;
  /** State after the event as the host read it. */
  state: number;
}

export interface InventoryInput {
  host: string;
  epoch: number;
  seq: number;
  vms: ReadonlyArray<{ uuid: string; name: string; state: number }>;
}

export interface HeartbeatInput {
  host: string;
  epoch: number;
  seq: number;
  /** Sender's clock when sent. */
  sentAt: number;
}

export interface EvidenceInput {
  host: string;
  /** The fencing authority's clock when the host was powered off. */
  fencedAt: number;
  by: string;
  /** The fenced host's boot epoch if the authority knew it. */
  epoch?: number;
}

export type Liveness = 'alive' | 'suspect' | 'dead' | 'unknown';

export interface LivenessOptions {
  /** Heartbeat period (ms). A host is suspect after two missed beats. */
  heartbeatIntervalMs: number;
  /** No heartbeat for this long (ms): dead. */
  deadAfterMs: number;
}

interface HostRecord {
  id: string;
  /** Newest epoch seen from this host (any message). */
  epoch: number;
  /** Position of the last applied inventory snapshot: everything at or below is ignored. */
  floor: Position;
  /** Last heartbeat: sender clock and our receive clock. */
  heartbeat: { sentAt: number; receivedAt: number; epoch: number; seq: number } | undefined;
  evidence: { fencedAt: number; receivedAt: number; by: string; epoch?: number } | undefined;
  /** When the host left the bus membership (CPG); dead until a heartbeat arrives after it. */
  departedAt: number | undefined;
  /** Highest VM event / inventory position applied from this host. */
  maxPos: Position | undefined;
  /** VMs this host claims (active or defined). */
  vms: Set<string>;
  /** Removed claims: uuid → position of the removal. */
  tombstones: Map<string, Position>;
}

interface VmRecord {
  uuid: string;
  /** Usually one claim; several while a VM migrates or is defined on several hosts. */
  claims: Claim[];
}

export type ApplyResult = 'applied' | 'stale' | 'ignored';

export interface TableStats {
  hosts: number;
  vms: number;
  claims: number;
  tombstones: number;
}

export class OwnershipTable {
  private readonly vms = new Map<string, VmRecord>();
  /** Exact (case-sensitive, like libvirt) name → uuids. */
  /** One uuid (the usual case, kept as a plain string to save memory) or several. */
  private readonly names = new Map<string, string | string[]>();
  private readonly hosts = new Map<string, HostRecord>();

  constructor(
    /** This host's id: decisions say "local" when it is the only target. */
    readonly self: string,
    readonly liveness: LivenessOptions,
  ) {}

  // ------------------------------------------------------------------------------------
  // Input

  applyVmEvent(e: VmEventInput, _receivedAt: number): ApplyResult {
    const host = this.host(e.host);
    const pos = { epoch: e.epoch, seq: e.seq };
    if (e.epoch > host.epoch) host.epoch = e.epoch;
    if (comparePosition(pos, host.floor) <= 0) return 'stale';
    const uuid = e.uuid.toLowerCase();
    const existing = this.claimOf(uuid, e.host);
    const tomb = host.tombstones.get(uuid);
    if (existing && comparePosition(pos, existing.pos) <= 0) return 'stale';
    if (tomb && comparePosition(pos, tomb) <= 0) return 'stale';
    this.raise(host, pos);
    if (e.event === LifecycleEventType.UNDEFINED) {
      // The definition is gone from this host. A transient domain that stops also vanishes,
      // but libvirt reports that as STOPPED with state SHUTOFF (kept as an inactive claim).
      this.removeClaim(uuid, e.host, pos);
      return 'applied';
    }
    let state = e.state;
    // STOPPED means "no longer running here" whatever the state read afterwards says.
    if (e.event === LifecycleEventType.STOPPED) state = DomainState.SHUTOFF;
    const migratedAway = e.event === LifecycleEventType.STOPPED && e.detail === STOPPED_MIGRATED;
    this.setClaim({
      host: e.host,
      uuid,
      name: e.name,
      state,
      pos,
      ...(migratedAway ? { migratedAway } : {}),
    });
    return 'applied';
  }

  /** A full snapshot of one host: replaces everything older from it. */
  applyInventory(inv: InventoryInput, _receivedAt: number): ApplyResult {
    const host = this.host(inv.host);
    const pos = { epoch: inv.epoch, seq: inv.seq };
    if (comparePosition(pos, host.floor) <= 0) return 'stale';
    if (inv.epoch > host.epoch) host.epoch = inv.epoch;
    const seen = new Set<string>();
    for (const vm of inv.vms) {
      const uuid = vm.uuid.toLowerCase();
      seen.add(uuid);
      const existing = this.claimOf(uuid, inv.host);
      // An event newer than the snapshot (sent after it, received before) wins.
      if (existing && comparePosition(existing.pos, pos) > 0) continue;
      const tomb = host.tombstones.get(uuid);
      if (tomb && comparePosition(tomb, pos) > 0) continue;
      // A snapshot does not say why a VM is off: one seen leaving by migration stays so.
      const migratedAway = existing?.migratedAway === true && vm.state === DomainState.SHUTOFF;
      this.setClaim({
        host: inv.host,
        uuid,
        name: vm.name,
        state: vm.state,
        pos,
        ...(migratedAway ? { migratedAway } : {}),
      });
    }
    for (const uuid of [...host.vms]) {
      if (seen.has(uuid)) continue;
      const existing = this.claimOf(uuid, inv.host);
      if (existing && comparePosition(existing.pos, pos) > 0) continue;
      this.removeClaim(uuid, inv.host, pos);
    }
    host.floor = pos;
    this.raise(host, pos);
    for (const [uuid, tomb] of host.tombstones) {
      if (comparePosition(tomb, pos) <= 0) host.tombstones.delete(uuid);
    }
    return 'applied';
  }

  applyHeartbeat(hb: HeartbeatInput, receivedAt: number): ApplyResult {
    const host = this.host(hb.host);
    const prev = host.heartbeat;
    if (prev && comparePosition({ epoch: hb.epoch, seq: hb.seq }, prev) <= 0) return 'stale';
    if (hb.epoch > host.epoch) host.epoch = hb.epoch;
    host.heartbeat = { sentAt: hb.sentAt, receivedAt, epoch: hb.epoch, seq: hb.seq };
    return 'applied';
  }

  /** Evidence that a host was powered off (from the host cluster's fencing). */
  applyEvidence(ev: EvidenceInput, receivedAt: number): ApplyResult {
    const host = this.host(ev.host);
    if (host.evidence && host.evidence.fencedAt >= ev.fencedAt) return 'stale';
    host.evidence = {
      fencedAt: ev.fencedAt,
      receivedAt,
      by: ev.by,
      ...(ev.epoch !== undefined ? { epoch: ev.epoch } : {}),
    };
    return 'applied';
  }

  /** The host left the bus's group membership (CPG): dead from now until it heartbeats again. */
  markDeparted(id: string, at: number): void {
    if (id === this.self) return;
    this.host(id).departedAt = at;
  }

  /** Forget a host entirely (operator action). */
  forgetHost(id: string): void {
    const host = this.hosts.get(id);
    if (!host) return;
    for (const uuid of [...host.vms]) this.dropClaim(uuid, id);
    this.hosts.delete(id);
  }

  // ------------------------------------------------------------------------------------
  // Queries

  /** Resolve a fence target (UUID case-insensitively, else exact name) to VM uuids. */
  resolve(target: string): string[] {
    const lower = target.toLowerCase();
    if (this.vms.has(lower)) return [lower];
    const byName = this.names.get(target);
    if (byName === undefined) return [];
    return typeof byName === 'string' ? [byName] : [...byName];
  }

  claims(uuid: string): readonly Claim[] {
    return this.vms.get(uuid.toLowerCase())?.claims ?? [];
  }

  /** Host liveness at `now` (our clock). */
  livenessOf(id: string, now: number): Liveness {
    const host = this.hosts.get(id);
    if (id === this.self) return 'alive';
    if (!host?.heartbeat) return host?.departedAt !== undefined ? 'dead' : 'unknown';
    if (host.departedAt !== undefined && host.heartbeat.receivedAt <= host.departedAt)
      return 'dead';
    const age = now - host.heartbeat.receivedAt;
    if (age > this.liveness.deadAfterMs) return 'dead';
    if (age > 2 * this.liveness.heartbeatIntervalMs) return 'suspect';
    return 'alive';
  }

  /**
   * True when fencing evidence for the host is newer than anything it said since: the
   * evidence time is after its last heartbeat's send time, and no heartbeat arrived after the
   * evidence did (a host that heartbeats again has come back: its new inventory rules).
   *
   * With `now`, the host must also have stopped heartbeating (not `alive`): a fenced host is
   * silent, so evidence about a host that still beats is not trusted yet (a wrong or early
   * evidence message must not turn into a success without execution).
   */
  isFenced(id: string, now?: number): boolean {
    if (id === this.self) return false;
    const host = this.hosts.get(id);
    const ev = host?.evidence;
    if (!host || !ev) return false;
    const hb = host.heartbeat;
    if (!hb) return true;
    if (ev.epoch !== undefined && hb.epoch > ev.epoch) return false;
    if (!(ev.fencedAt > hb.sentAt && hb.receivedAt <= ev.receivedAt)) return false;
    return now === undefined || this.livenessOf(id, now) !== 'alive';
  }

  knownHosts(): string[] {
    return [...this.hosts.keys()].sort();
  }

  hostInfo(
    id: string,
    now: number,
  ): { liveness: Liveness; fenced: boolean; vms: number; epoch: number } {
    const host = this.hosts.get(id);
    return {
      liveness: this.livenessOf(id, now),
      fenced: this.isFenced(id, now),
      vms: host?.vms.size ?? 0,
      epoch: host?.epoch ?? 0,
    };
  }

  /** The last heartbeat of a host: its send time (its clock) and receive time (ours). */
  heartbeatOf(id: string): { sentAt: number; receivedAt: number } | undefined {
    const hb = this.hosts.get(id)?.heartbeat;
    return hb ? { sentAt: hb.sentAt, receivedAt: hb.receivedAt } : undefined;
  }

  /** Highest VM event or inventory position applied from a host (gap detection). */
  positionOf(id: string): Position | undefined {
    return this.hosts.get(id)?.maxPos;
  }

  /** Position of the last inventory snapshot applied for a host. */
  floorOf(id: string): Position | undefined {
    return this.hosts.get(id)?.floor;
  }

  /**
   * Cluster-wide list: one entry per VM. The state shown is the running claim's if any host
   * runs it, SHUTOFF if every claimant was fenced, else the first claim's.
   */
  list(now?: number): Array<{ uuid: string; name: string; state: number; hosts: string[] }> {
    const out: Array<{ uuid: string; name: string; state: number; hosts: string[] }> = [];
    for (const vm of this.vms.values()) {
      const live = vm.claims.filter((c) => !this.isFenced(c.host, now));
      const active = live.find((c) => isActiveState(c.state));
      const first = active ?? live[0] ?? vm.claims[0];
      if (!first) continue;
      out.push({
        uuid: vm.uuid,
        name: first.name,
        state: active ? active.state : DomainState.SHUTOFF,
        hosts: vm.claims.map((c) => c.host),
      });
    }
    return out;
  }

  stats(): TableStats {
    let claims = 0;
    for (const vm of this.vms.values()) claims += vm.claims.length;
    let tombstones = 0;
    for (const h of this.hosts.values()) tombstones += h.tombstones.size;
    return { hosts: this.hosts.size, vms: this.vms.size, claims, tombstones };
  }

  // ------------------------------------------------------------------------------------

  private host(id: string): HostRecord {
    let h = this.hosts.get(id);
    if (!h) {
      h = {
        id,
        epoch: 0,
        floor: { epoch: -1, seq: -1 },
        heartbeat: undefined,
        evidence: undefined,
        departedAt: undefined,
        maxPos: undefined,
        vms: new Set(),
        tombstones: new Map(),
      };
      this.hosts.set(id, h);
    }
    return h;
  }

  private raise(host: HostRecord, pos: Position): void {
    if (!host.maxPos || comparePosition(pos, host.maxPos) > 0) host.maxPos = pos;
  }

  private claimOf(uuid: string, host: string): Claim | undefined {
    return this.vms.get(uuid)?.claims.find((c) => c.host === host);
  }

  private setClaim(claim: Claim): void {
    let vm = this.vms.get(claim.uuid);
    if (!vm) {
      vm = { uuid: claim.uuid, claims: [] };
      this.vms.set(claim.uuid, vm);
    }
    const i = vm.claims.findIndex((c) => c.host === claim.host);
    const old = i >= 0 ? vm.claims[i] : undefined;
    if (i >= 0) vm.claims[i] = claim;
    else vm.claims.push(claim);
    if (old && old.name !== claim.name) this.unindexName(old.name, claim.uuid, vm);
    const indexed = this.names.get(claim.name);
    if (indexed === undefined) this.names.set(claim.name, claim.uuid);
    else if (typeof indexed === 'string') {
      if (indexed !== claim.uuid) this.names.set(claim.name, [indexed, claim.uuid]);
    } else if (!indexed.includes(claim.uuid)) indexed.push(claim.uuid);
    const host = this.host(claim.host);
    host.vms.add(claim.uuid);
    host.tombstones.delete(claim.uuid);
  }

  private removeClaim(uuid: string, hostId: string, pos: Position): void {
    this.dropClaim(uuid, hostId);
    this.host(hostId).tombstones.set(uuid, pos);
  }

  private dropClaim(uuid: string, hostId: string): void {
    const vm = this.vms.get(uuid);
    const host = this.hosts.get(hostId);
    host?.vms.delete(uuid);
    if (!vm) return;
    const i = vm.claims.findIndex((c) => c.host === hostId);
    if (i < 0) return;
    const [old] = vm.claims.splice(i, 1);
    if (old) this.unindexName(old.name, uuid, vm);
    if (vm.claims.length === 0) this.vms.delete(uuid);
  }

  /** Drop name → uuid unless another claim of the VM still uses that name. */
  private unindexName(name: string, uuid: string, vm: VmRecord): void {
    if (vm.claims.some((c) => c.name === name)) return;
    const indexed = this.names.get(name);
    if (indexed === undefined) return;
    if (typeof indexed === 'string') {
      if (indexed === uuid) this.names.delete(name);
      return;
    }
    const rest = indexed.filter((u) => u !== uuid);
    if (rest.length === 0) this.names.delete(name);
    else this.names.set(name, rest.length === 1 ? (rest[0] as string) : rest);
  }
}
