/**
 * The real state of every VM over time, and the invariants every answer is checked against:
 *
 * (a) off/reboot success only if the VM ran nowhere at some instant of the request's lifetime
 *     (off at the reply, or destroyed by the request and started again since; for a reboot the
 *     instant between its destroy and its restart);
 * (b) a status answer matches the VM's real state at some instant of the request's lifetime;
 * (c) at most one execution per request id: never twice on one host, and on several hosts
 *     only when the VM ran on several hosts (a migration);
 * (d) every request answered before its deadline;
 * (e) no exception escapes (collected by the world).
 *
 * Named allowances (`ALLOWANCES`): answers that miss an invariant's letter in a documented,
 * bounded way. They are counted and shown in the trace, never passed silently, and anything
 * beyond their bound is a violation.
 */
import { DomainState } from '../src/protocol/constants.js';

const STATE_NAMES: Record<number, string> = { 1: 'running', 3: 'paused', 5: 'shut off' };

interface Change {
  at: number;
  /** Hosts where the guest runs after the change (an incoming migration copy excluded). */
  active: number;
  /** Copies libvirt reports in any state but SHUTOFF (an incoming migration copy included). */
  present: number;
}

interface Execution {
  host: string;
  at: number;
  /** Hosts the VM was active on just before. */
  activeBefore: number;
  kind: 'destroy' | 'create';
}

/**
 * How late libvirt's lifecycle events reach a daemon's domain cache at most (ms). The libvirt
 * backend answers status ON from that cache (src/backends/libvirt/decisions.ts), so a VM
 * stopped behind our back this shortly before a request may still be answered ON.
 */
export const EVENT_LAG_MS = 10;

/** Documented departures from an invariant, each with its bound (README, "Safety model"). */
export const ALLOWANCES = {
  'stale-on-event-cache':
    `status ON from the libvirt event cache for a VM stopped behind our back at most ` +
    `${EVENT_LAG_MS} ms before the request (by design: a stale ON only delays a fence, it never ` +
    'reports a running VM off)',
} as const;

export type AllowanceName = keyof typeof ALLOWANCES;

export interface Allowance {
  name: AllowanceName;
  at: number;
  text: string;
}

export interface Violation {
  invariant: 'a' | 'b' | 'c' | 'd' | 'e';
  at: number;
  text: string;
}

export class Truth {
  /** uuid → host → state (absent: not defined there). */
  private readonly states = new Map<string, Map<string, number>>();
  private readonly history = new Map<string, Change[]>();
  /** uuid → host → when the current run on that host started. */
  private readonly runStart = new Map<string, Map<string, number>>();
  /** request id → executions (destroy/create it caused). */
  readonly executions = new Map<string, Execution[]>();
  /** uuid → host → request id → when it destroyed the VM there. */
  private readonly destroyedBy = new Map<string, Map<string, Map<string, number>>>();
  readonly violations: Violation[] = [];
  readonly allowances: Allowance[] = [];
  names = new Map<string, string>();

  /** Told every real state change (for the trace). */
  onChange: ((text: string) => void) | undefined;

  constructor(private readonly now: () => number) {}

  /** "uuid host" of incoming migration copies: paused until switch-over, the guest is not there. */
  private readonly incoming = new Set<string>();

  /** Hosts where the guest runs (an incoming migration copy does not count until switch-over). */
  activeHosts(uuid: string): string[] {
    const m = this.states.get(uuid);
    if (!m) return [];
    return [...m]
      .filter(([h, s]) => s !== DomainState.SHUTOFF && !this.incoming.has(`${uuid} ${h}`))
      .map(([h]) => h);
  }

  set(
    uuid: string,
    host: string,
    state: number | undefined,
    by: string | undefined,
    incoming = false,
  ): void {
    const now = this.now();
    let m = this.states.get(uuid);
    if (!m) {
      m = new Map();
      this.states.set(uuid, m);
    }
    const before = this.activeHosts(uuid).length;
    // Copies that exist (an incoming migration's included): a fence goes to each of them.
    const copiesBefore = [...m.values()].filter((x) => x !== DomainState.SHUTOFF).length;
    this.onChange?.(
      `REAL ${this.nameOf(uuid)} on ${host}: ${state === undefined ? 'undefined' : (STATE_NAMES[state] ?? state)}` +
        (incoming ? ' (incoming migration)' : '') +
        (by !== undefined ? ` (by ${by})` : ''),
    );
    const key = `${uuid} ${host}`;
    const wasPresent = (m.get(host) ?? DomainState.SHUTOFF) !== DomainState.SHUTOFF;
    const wasActive =
      (m.get(host) ?? DomainState.SHUTOFF) !== DomainState.SHUTOFF && !this.incoming.has(key);
    if (state === undefined) m.delete(host);
    else m.set(host, state);
    if (incoming) this.incoming.add(key);
    else this.incoming.delete(key);
    const isActive = state !== undefined && state !== DomainState.SHUTOFF && !incoming;
    let starts = this.runStart.get(uuid);
    if (!starts) {
      starts = new Map();
      this.runStart.set(uuid, starts);
    }
    if (!wasActive && isActive) starts.set(host, now);
    const isPresent = state !== undefined && state !== DomainState.SHUTOFF;
    if (by !== undefined && wasPresent !== isPresent) {
      let list = this.executions.get(by);
      if (!list) {
        list = [];
        this.executions.set(by, list);
      }
      const kind = state !== undefined && state !== DomainState.SHUTOFF ? 'create' : 'destroy';
      list.push({ host, at: now, activeBefore: copiesBefore, kind });
      if (!isPresent) {
        let perHost = this.destroyedBy.get(uuid);
        if (!perHost) {
          perHost = new Map();
          this.destroyedBy.set(uuid, perHost);
        }
        let ids = perHost.get(host);
        if (!ids) {
          ids = new Map();
          perHost.set(host, ids);
        }
        ids.set(by, now);
      }
    }
    const after = this.activeHosts(uuid).length;
    const present = [...m.values()].filter((x) => x !== DomainState.SHUTOFF).length;
    if (before !== after || copiesBefore !== present) {
      let h = this.history.get(uuid);
      if (!h) {
        h = [{ at: 0, active: 0, present: 0 }];
        this.history.set(uuid, h);
      }
      h.push({ at: now, active: after, present });
    }
  }

  private nameOf(uuid: string): string {
    for (const [name, u] of this.names) if (u === uuid) return name;
    return uuid;
  }

  /** The VM a target names (UUID or exact name); undefined for a name no VM has. */
  resolve(target: string): string | undefined {
    const lower = target.toLowerCase();
    if (this.states.has(lower)) return lower;
    return this.names.get(target);
  }

  private at(uuid: string, t: number): Change {
    let v: Change = { at: 0, active: 0, present: 0 };
    for (const c of this.history.get(uuid) ?? []) {
      if (c.at > t) break;
      v = c;
    }
    return v;
  }

  /**
   * Was the VM on (a copy libvirt reports as not shut off, as fencing's status does: a paused
   * incoming migration copy counts) or off (the guest runs nowhere) at some instant of
   * [from, to]?
   */
  private wasEver(uuid: string, from: number, to: number, on: boolean): boolean {
    const matches = (c: Change) => (on ? c.present > 0 : c.active === 0);
    if (matches(this.at(uuid, from))) return true;
    for (const c of this.history.get(uuid) ?? []) {
      if (c.at > from && c.at <= to && matches(c)) return true;
    }
    return false;
  }

  private violate(invariant: Violation['invariant'], text: string): void {
    this.violations.push({ invariant, at: this.now(), text });
  }

  /** Checks one answer (invariants a, b, d). Times are global. */
  checkAnswer(r: {
    label: string;
    id: string;
    action: string;
    target: string;
    start: number;
    deadline: number;
    code: number;
    reason: string;
  }): void {
    const now = this.now();
    const what = `${r.label}: ${r.action} ${r.target} → ${r.code} (${r.reason})`;
    if (now > r.deadline) {
      this.violate('d', `${what} answered ${now - r.deadline} ms after its deadline`);
    }
    const uuid = this.resolve(r.target);
    if (r.action === 'status' && (r.code === 0 || r.code === 2)) {
      if (uuid === undefined) {
        if (r.code === 0) this.violate('b', `${what}: ON for a VM that does not exist`);
        return;
      }
      if (!this.wasEver(uuid, r.start, now, r.code === 0)) {
        if (r.code === 0 && this.wasEver(uuid, r.start - EVENT_LAG_MS, now, true)) {
          this.allowances.push({ name: 'stale-on-event-cache', at: now, text: what });
          return;
        }
        this.violate(
          'b',
          `${what}: the VM was ${r.code === 0 ? 'off' : 'running'} during the whole request ` +
            `(running on ${this.activeHosts(uuid).join(',') || 'no host'} now)`,
        );
      }
      return;
    }
    if ((r.action === 'off' || r.action === 'reboot') && r.code === 0 && uuid !== undefined) {
      // The request's effect is an instant at which the guest ran nowhere (after the destroy,
      // for a reboot before its restart); whatever starts it later is a later request.
      if (!this.wasEver(uuid, r.start, now, false)) {
        this.violate(
          'a',
          `${what}: success, but the VM ran on ${this.activeHosts(uuid).join(',') || 'some host'} ` +
            'during the whole request',
        );
      }
    }
  }

  /** Invariant c over every execution so far. */
  checkExecutions(): void {
    for (const [id, list] of this.executions) {
      const destroys = list.filter((e) => e.kind === 'destroy');
      const creates = list.filter((e) => e.kind === 'create');
      for (const group of [destroys, creates]) {
        const hosts = new Set<string>();
        for (const e of group) {
          if (hosts.has(e.host)) {
            this.violate('c', `request ${id} executed twice on ${e.host} (${e.kind})`);
          }
          hosts.add(e.host);
        }
        const first = group[0];
        if (hosts.size > 1 && first && (first.kind === 'create' || first.activeBefore < 2)) {
          this.violate(
            'c',
            `request ${id} executed on ${[...hosts].join(' and ')} (${first.kind}) ` +
              `while the VM ran on ${first.activeBefore} host(s)`,
          );
        }
      }
    }
    this.executions.clear();
  }

  /** An exception that escaped (invariant e). */
  escaped(where: string, error: unknown): void {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    this.violate('e', `${where}: ${text.split('\n').slice(0, 4).join(' | ')}`);
  }

  /** A call that never got an answer (invariant d). */
  unanswered(text: string): void {
    this.violate('d', text);
  }
}
