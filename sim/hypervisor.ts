/**
 * Simulated hypervisors and the LocalPort (src/backends/amqp/ports.ts) a simulated daemon
 * executes through. The port follows the libvirt backend's rules with its pure half
 * (src/backends/libvirt/decisions.ts): status ON may come from the event-driven cache, OFF is
 * confirmed by a fresh lookup; off destroys, on creates, reboot destroys then creates; every
 * call has the request's deadline (a slow call fails at the deadline and may still complete
 * later, as a libvirt RPC does).
 */
import type {
  FenceAction,
  FenceOutcome,
  RequestContext,
  HostListResult,
} from '../src/backends/backend.js';
import type { DomainChange, LocalPort } from '../src/backends/amqp/ports.js';
import {
  Reason,
  classifyTarget,
  matchesTarget,
  offDecision,
  onDecision,
  outcome,
  rebootDecision,
  statusOutcome,
  type Decision,
} from '../src/backends/libvirt/decisions.js';
import { LifecycleEventType, type DomainInfo } from '../src/libvirt/hypervisor.js';
import { DomainState, Response } from '../src/protocol/constants.js';
import type { Rng } from './rng.js';
import type { Scheduler } from './scheduler.js';
import { EVENT_LAG_MS, type Truth } from './truth.js';

export interface HvFaults {
  /** Probability that one libvirt call is slow (up to `slowMs`). */
  slow: number;
  slowMs: number;
}

/** One physical host's hypervisor: the real state of its domains. */
export class SimHypervisor {
  readonly domains = new Map<string, DomainInfo>();
  private readonly listeners = new Set<
    (e: { uuid: string; name: string; event: number; detail: number }) => void
  >();
  /** false while the host is down (crashed). */
  running = true;
  private boots = 1;

  constructor(
    readonly host: string,
    private readonly scheduler: Scheduler,
    private readonly rng: Rng,
    private readonly faults: HvFaults,
    private readonly truth: Truth,
  ) {}

  get owner(): string {
    return `hv:${this.host}:${this.boots}`;
  }

  onLifecycle(
    l: (e: { uuid: string; name: string; event: number; detail: number }) => void,
  ): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  define(uuid: string, name: string): void {
    this.domains.set(uuid, { uuid, name, state: DomainState.SHUTOFF, id: -1 });
    this.emit(uuid, name, LifecycleEventType.DEFINED, 0);
  }

  /** Sets a domain's state now (an action done, or something behind our back). */
  setState(
    uuid: string,
    state: number,
    by: string | undefined,
    event: number,
    detail = 0,
    incoming = false,
  ): void {
    const d = this.domains.get(uuid);
    if (!d) return;
    d.state = state;
    d.id = state === DomainState.SHUTOFF ? -1 : 1;
    this.truth.set(uuid, this.host, state, by, incoming);
    this.emit(uuid, d.name, event, detail);
  }

  remove(uuid: string): void {
    const d = this.domains.get(uuid);
    if (!d) return;
    this.domains.delete(uuid);
    this.truth.set(uuid, this.host, undefined, undefined);
    this.emit(uuid, d.name, LifecycleEventType.UNDEFINED, 0);
  }

  /** The host lost power: every domain stops at once, nothing is reported. */
  crash(): void {
    this.running = false;
    for (const d of this.domains.values()) {
      if (d.state !== DomainState.SHUTOFF) {
        d.state = DomainState.SHUTOFF;
        d.id = -1;
        this.truth.set(d.uuid, this.host, DomainState.SHUTOFF, undefined);
      }
    }
    this.scheduler.kill(this.owner);
  }

  boot(): void {
    this.running = true;
    this.boots++;
  }

  /** A libvirt call: takes a while, and fails at `deadline` if slower. */
  call<T>(label: string, deadline: number, now: () => number, op: () => T): Promise<T> {
    const slow = this.rng.chance(this.faults.slow);
    const ms = slow ? this.rng.int(50, this.faults.slowMs) : this.rng.int(1, 15);
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const left = deadline - now();
      const timer = this.scheduler.after(Math.max(0, left), this.owner, `${label}-deadline`, () => {
        if (settled) return;
        settled = true;
        reject(new Error(`${label}: deadline passed`));
      });
      this.scheduler.after(ms, this.owner, label, () => {
        if (!this.running) return;
        let value: T;
        try {
          value = op();
        } catch (error) {
          if (!settled) {
            settled = true;
            timer.cancel();
            reject(error instanceof Error ? error : new Error(String(error)));
          }
          return;
        }
        if (settled) return;
        settled = true;
        timer.cancel();
        resolve(value);
      });
    });
  }

  private emit(uuid: string, name: string, event: number, detail: number): void {
    for (const l of [...this.listeners]) l({ uuid, name, event, detail });
  }
}

/** The local executor of one daemon instance, on its host's hypervisor. */
export class SimLocalPort implements LocalPort {
  readonly name = 'libvirt';
  private readonly cache = new Map<string, DomainInfo>();
  private readonly changeListeners = new Set<(c: DomainChange) => void>();
  private unsubscribe: (() => void) | undefined;
  private dead = false;

  constructor(
    private readonly hv: SimHypervisor,
    private readonly scheduler: Scheduler,
    private readonly owner: string,
    private readonly now: () => number,
    private readonly rng: Rng,
  ) {}

  async start(): Promise<void> {
    // Subscribe, then list (as the libvirt backend does): nothing is lost in between.
    this.unsubscribe = this.hv.onLifecycle((e) => {
      // libvirt's event thread: events reach the daemon a few ms later.
      this.scheduler.after(this.rng.int(0, EVENT_LAG_MS), this.owner, 'libvirt-event', () =>
        this.onEvent(e.uuid, e.event, e.detail),
      );
    });
    for (const d of this.hv.domains.values()) this.cache.set(d.uuid, { ...d });
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
  }

  crash(): void {
    this.dead = true;
    this.unsubscribe?.();
    this.changeListeners.clear();
  }

  domains(): DomainInfo[] {
    return [...this.cache.values()].map((d) => ({ ...d }));
  }

  findLocal(target: string): DomainInfo | undefined {
    const key = classifyTarget(target);
    for (const d of this.cache.values()) if (matchesTarget(d, key)) return { ...d };
    return undefined;
  }

  onDomainChange(listener: (change: DomainChange) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  async liveStatus(target: string, ctx: RequestContext): Promise<FenceOutcome> {
    try {
      return statusOutcome(await this.lookup(target, ctx.deadline));
    } catch {
      return outcome(Response.FAIL, Reason.UNAVAILABLE);
    }
  }

  async fence(action: FenceAction, target: string, ctx: RequestContext): Promise<FenceOutcome> {
    if (action === 'null') return outcome(Response.FAIL, Reason.NO_HANDLER);
    if (action === 'devstatus') return outcome(Response.SUCCESS, Reason.OK);
    if (action === 'status') {
      const cached = this.findLocal(target);
      if (cached && cached.state !== DomainState.SHUTOFF) return statusOutcome(cached);
      return this.liveStatus(target, ctx);
    }
    let found: DomainInfo | undefined;
    try {
      found = await this.lookup(target, ctx.deadline);
    } catch {
      return outcome(Response.FAIL, Reason.UNAVAILABLE);
    }
    const decide = { off: offDecision, on: onDecision, reboot: rebootDecision }[action];
    const decision: Decision = decide(found);
    if ('done' in decision) return decision.done;
    const uuid = (found as DomainInfo).uuid;
    const by = ctx.id;
    const hv = this.hv;
    const act = (label: string, state: number, event: number) =>
      hv.call(label, ctx.deadline, this.now, () => {
        const d = hv.domains.get(uuid);
        if (!d) throw new Error(`${label}: no domain`);
        if (state === DomainState.SHUTOFF && d.state === DomainState.SHUTOFF)
          throw new Error('destroy: domain is not running');
        if (state !== DomainState.SHUTOFF && d.state !== DomainState.SHUTOFF)
          throw new Error('create: domain is already running');
        hv.setState(uuid, state, by, event);
      });
    switch (decision.act) {
      case 'destroy':
        try {
          await act('destroy', DomainState.SHUTOFF, LifecycleEventType.STOPPED);
          return outcome(Response.SUCCESS, Reason.OK);
        } catch {
          return outcome(Response.FAIL, Reason.DESTROY_FAILED);
        }
      case 'start':
        try {
          await act('create', DomainState.RUNNING, LifecycleEventType.STARTED);
          return outcome(Response.SUCCESS, Reason.OK);
        } catch {
          return outcome(Response.FAIL, Reason.START_FAILED);
        }
      case 'reboot':
        try {
          await act('destroy', DomainState.SHUTOFF, LifecycleEventType.STOPPED);
        } catch {
          return outcome(Response.FAIL, Reason.DESTROY_FAILED);
        }
        try {
          // From here the VM is off: brought back even past the deadline (as the real one).
          await hv.call('create', this.now() + 5000, this.now, () => {
            const d = hv.domains.get(uuid);
            if (!d || d.state !== DomainState.SHUTOFF) throw new Error('create: not startable');
            hv.setState(uuid, DomainState.RUNNING, by, LifecycleEventType.STARTED);
          });
          return outcome(Response.SUCCESS, Reason.OK);
        } catch {
          return outcome(Response.SUCCESS, Reason.START_FAILED);
        }
    }
  }

  async hostlist(_ctx: RequestContext): Promise<HostListResult> {
    return {
      entries: this.domains().map(({ name, uuid, state }) => ({ name, uuid, state })),
      code: 0,
    };
  }

  private lookup(target: string, deadline: number): Promise<DomainInfo | undefined> {
    const key = classifyTarget(target);
    return this.hv.call('lookup', deadline, this.now, () => {
      for (const d of this.hv.domains.values()) if (matchesTarget(d, key)) return { ...d };
      return undefined;
    });
  }

  private onEvent(uuid: string, event: number, detail: number): void {
    if (this.dead) return;
    const real = this.hv.domains.get(uuid);
    const previous = this.cache.get(uuid);
    if (real) this.cache.set(uuid, { ...real });
    else this.cache.delete(uuid);
    if (!real && !previous) return;
    const change: DomainChange = {
      uuid,
      name: real?.name ?? previous?.name ?? uuid,
      event,
      detail,
      state: real?.state ?? DomainState.SHUTOFF,
      present: real !== undefined,
    };
    for (const l of [...this.changeListeners]) l(change);
  }
}
