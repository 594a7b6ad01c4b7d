/**
 * One simulated cluster: hosts with hypervisors, a daemon (the real RoutedBackend) on each,
 * an in-memory broker, agents sending fence requests, and faults, all drawn from one seed and
 * run on virtual time. `runSchedule(seed)` returns the invariant violations and, when asked,
 * a readable trace that replays them.
 */
import { RoutedBackend } from '../src/backends/amqp/routed-backend.js';
import type { FenceAction } from '../src/backends/backend.js';
import { LifecycleEventType } from '../src/libvirt/hypervisor.js';
import { DomainState } from '../src/protocol/constants.js';
import type { LogFields, Logger } from '../src/util/logger.js';
import { SimBroker, SimBusPort, type NetFaults } from './broker.js';
import { SimHypervisor, SimLocalPort, type HvFaults } from './hypervisor.js';
import { Rng } from './rng.js';
import { Scheduler, T0 } from './scheduler.js';
import { Truth, type Allowance, type Violation } from './truth.js';

export interface ScheduleOptions {
  /** Keep a readable trace (a replay); off for bulk runs. */
  trace?: boolean;
  /** Virtual seconds during which faults and requests happen. */
  seconds?: number;
  /**
   * Give every daemon the cluster's host list (config key `hosts`). Default true; false runs
   * the residual case without it (README, "Safety model").
   */
  configureHosts?: boolean;
}

export interface ScheduleResult {
  seed: number;
  violations: Violation[];
  /** Documented, bounded departures (sim/truth.ts ALLOWANCES). */
  allowances: Allowance[];
  trace: string[];
  /** What the seed drew, one line. */
  summary: string;
  requests: number;
  answers: number;
  steps: number;
}

interface Daemon {
  instance: number;
  owner: string;
  backend: RoutedBackend;
  port: SimBusPort;
  local: SimLocalPort;
  alive: boolean;
}

interface Host {
  id: string;
  skew: number;
  hv: SimHypervisor;
  daemon: Daemon | undefined;
  instances: number;
  /** Physical host up (false after a crash until it boots). */
  up: boolean;
}

interface Vm {
  uuid: string;
  name: string;
}

const HEARTBEAT_MS = 1000;
const DEAD_AFTER_MS = 5000;
const ACTIONS: FenceAction[] = ['status', 'status', 'status', 'off', 'off', 'reboot', 'on'];

export async function runSchedule(
  seed: number,
  options: ScheduleOptions = {},
): Promise<ScheduleResult> {
  const world = new World(seed >>> 0, options);
  return world.run();
}

class World {
  private readonly rng: Rng;
  private readonly scheduler = new Scheduler();
  private readonly truth: Truth;
  private readonly broker: SimBroker;
  private readonly hosts: Host[] = [];
  private readonly vms: Vm[] = [];
  private readonly lines: string[] = [];
  private readonly tracing: boolean;
  private readonly summary: string[] = [];
  private requests = 0;
  private answers = 0;
  private readonly pending = new Map<number, { text: string; owner: string; deadline: number }>();
  private callIds = 0;
  /** The latest deadline of any request so far. */
  private lastDeadline = 0;
  /** Requests (by seqno) some daemon has answered: the agent has its answer. */
  private readonly answered = new Set<number>();
  private vmCount = 0;
  private readonly seconds: number;
  private readonly inventoryIntervalMs: number;
  private readonly configureHosts: boolean;

  constructor(
    readonly seed: number,
    options: ScheduleOptions,
  ) {
    this.rng = new Rng(seed);
    this.tracing = options.trace ?? false;
    this.seconds = options.seconds ?? 30;
    this.configureHosts = options.configureHosts ?? true;
    this.truth = new Truth(() => this.scheduler.time);
    if (this.tracing) this.truth.onChange = (text) => this.log(text);
    const r = this.rng.fork();
    const faults: NetFaults = {
      loss: r.pick([0, 0, 0.01, 0.05, 0.2]),
      duplicate: r.pick([0, 0.02, 0.1]),
      slow: r.pick([0, 0.02, 0.1]),
      slowMs: r.pick([500, 3000]),
      inventoryLoss: new Map(),
    };
    const hv: HvFaults = { slow: r.pick([0, 0.02, 0.1]), slowMs: r.pick([200, 3000]) };
    this.inventoryIntervalMs = r.pick([5000, 30_000]);
    const hostCount = r.pick([2, 3, 3, 4]);
    this.broker = new SimBroker(
      this.scheduler,
      this.rng.fork(),
      faults,
      this.tracing ? (l) => this.log(l) : undefined,
    );
    const validate = r.chance(0.1); // drawn in every mode, so a trace replays the same run
    this.broker.validate = this.tracing || validate;
    this.scheduler.onError = (owner, label, error) =>
      this.truth.escaped(`${owner} ${label}`, error);
    for (let i = 1; i <= hostCount; i++) {
      const id = `h${i}`;
      const skew = r.chance(0.25) ? r.int(-60_000, 60_000) : 0;
      this.hosts.push({
        id,
        skew,
        hv: new SimHypervisor(id, this.scheduler, this.rng.fork(), hv, this.truth),
        daemon: undefined,
        instances: 0,
        up: true,
      });
    }
    if (r.chance(0.25)) faults.inventoryLoss.set(r.pick(this.hosts).id, 1);
    this.summary.push(
      `hosts=${hostCount} loss=${faults.loss} dup=${faults.duplicate} slow=${faults.slow}/${faults.slowMs}ms ` +
        `libvirt-slow=${hv.slow}/${hv.slowMs}ms inventory-every=${this.inventoryIntervalMs}ms`,
      `skew: ${this.hosts.map((h) => `${h.id}=${h.skew}ms`).join(' ')}`,
      ...[...faults.inventoryLoss].map(([h]) => `inventories of ${h} are all lost`),
      this.configureHosts ? 'hosts key: every host' : 'hosts key: absent (residual case)',
    );
  }

  private get t(): string {
    return `+${((this.scheduler.time - T0) / 1000).toFixed(3)}s`;
  }

  private log(line: string): void {
    if (this.tracing) this.lines.push(`${this.t.padStart(9)}  ${line}`);
  }

  async run(): Promise<ScheduleResult> {
    const onRejection = (reason: unknown): void =>
      this.truth.escaped('unhandled rejection', reason);
    process.on('unhandledRejection', onRejection);
    try {
      this.populate();
      for (const h of this.hosts) this.startDaemon(h, this.rng.int(0, 500));
      this.plan();
      const end = T0 + this.seconds * 1000;
      await this.scheduler.runUntil(end);
      // Then until every request's deadline has passed (invariant d needs each answer).
      await this.scheduler.runUntil(Math.max(end, this.lastDeadline) + 1000);
      for (const [, p] of this.pending) {
        if (!this.scheduler.isDead(p.owner)) this.truth.unanswered(`${p.text}: never answered`);
      }
      this.truth.checkExecutions();
      for (const text of this.broker.invalid) this.truth.escaped('message refused', text);
    } finally {
      process.off('unhandledRejection', onRejection);
    }
    for (const a of this.truth.allowances) this.log(`ALLOWED (${a.name}) ${a.text}`);
    for (const v of this.truth.violations) this.log(`VIOLATION (${v.invariant}) ${v.text}`);
    return {
      seed: this.seed,
      violations: this.truth.violations,
      allowances: this.truth.allowances,
      trace: this.lines,
      summary: this.summary.join('; '),
      requests: this.requests,
      answers: this.answers,
      steps: this.scheduler.steps,
    };
  }

  // ------------------------------------------------------------------------------------
  // Set-up

  private newVm(): Vm {
    this.vmCount++;
    const n = this.vmCount.toString(16).padStart(12, '0');
    const vm = { uuid: `5e000000-0000-4000-8000-${n}`, name: `vm${this.vmCount}` };
    this.truth.names.set(vm.name, vm.uuid);
    this.vms.push(vm);
    return vm;
  }

  private populate(): void {
    for (const h of this.hosts) {
      const n = this.rng.int(1, 3);
      for (let i = 0; i < n; i++) {
        const vm = this.newVm();
        h.hv.define(vm.uuid, vm.name);
        if (this.rng.chance(0.8))
          h.hv.setState(vm.uuid, DomainState.RUNNING, undefined, LifecycleEventType.STARTED);
      }
    }
    const where = this.hosts
      .map(
        (h) =>
          `${h.id}: ${[...h.hv.domains.values()].map((d) => `${d.name}${d.state === DomainState.SHUTOFF ? '(off)' : ''}`).join(' ')}`,
      )
      .join('; ');
    this.summary.push(`vms: ${where}`);
  }

  private logger(host: string): Logger {
    if (!this.tracing) return noLogger;
    const make = (base: string): Logger => {
      const line = (level: string) => (event: string, fields?: LogFields) => {
        if (level === 'debug') return;
        const rest = Object.entries(fields ?? {})
          .filter(([k, v]) => v !== undefined && v !== '' && k !== 'backend' && k !== 'host')
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(' ');
        this.log(`${base}  ${level === 'info' ? '' : level + ' '}${event} ${rest}`);
      };
      return {
        debug: line('debug'),
        info: line('info'),
        warn: line('warn'),
        error: line('error'),
        child: () => make(base),
      };
    };
    return make(host);
  }

  private startDaemon(h: Host, delay: number): void {
    this.scheduler.after(delay, 'world', 'daemon-start', () => {
      if (!h.up || h.daemon?.alive) return;
      h.instances++;
      const owner = `${h.id}#${h.instances}`;
      const clock = this.scheduler.clock(owner, () => h.skew);
      const port = new SimBusPort(this.broker, h.id, h.instances, clock.now(), () => clock.now());
      const local = new SimLocalPort(
        h.hv,
        this.scheduler,
        owner,
        () => clock.now(),
        this.rng.fork(),
      );
      const backend = new RoutedBackend(local, port, {
        hostId: h.id,
        heartbeatIntervalMs: HEARTBEAT_MS,
        deadAfterMs: DEAD_AFTER_MS,
        ...(this.configureHosts ? { hosts: this.hosts.map((x) => x.id) } : {}),
        inventoryIntervalMs: this.inventoryIntervalMs,
        listeners: ['multicast'],
        logger: this.logger(h.id),
        clock,
      });
      h.daemon = { instance: h.instances, owner, backend, port, local, alive: true };
      this.log(`${h.id}  daemon starts (instance ${h.instances}, epoch ${port.epoch})`);
      backend.start().catch((e: unknown) => this.truth.escaped(`${owner} start`, e));
    });
  }

  private killDaemon(h: Host, why: string): void {
    const d = h.daemon;
    if (!d?.alive) return;
    d.alive = false;
    this.log(`${h.id}  daemon dies (${why})`);
    this.scheduler.kill(d.owner);
    d.port.crash();
    d.local.crash();
  }

  // ------------------------------------------------------------------------------------
  // The plan: requests and faults

  private plan(): void {
    const r = this.rng.fork();
    const span = this.seconds * 1000;
    const at = () => r.int(1500, span);
    const requests = r.int(6, 16);
    for (let i = 0; i < requests; i++)
      this.scheduler.at(T0 + at(), 'world', 'agent', () => this.agent(r.fork()));
    const faults = r.int(0, 6);
    for (let i = 0; i < faults; i++) {
      const kind = r.pick([
        'broker-outage',
        'host-crash',
        'daemon-restart',
        'partition',
        'migrate',
        'migrate',
        'behind-back',
        'behind-back',
        'new-vm',
      ] as const);
      const when = T0 + at();
      const fr = r.fork();
      this.scheduler.at(when, 'world', kind, () => this.fault(kind, fr));
    }
  }

  private fault(kind: string, r: Rng): void {
    switch (kind) {
      case 'broker-outage': {
        const ms = r.int(500, 10_000);
        this.log(`FAULT broker down for ${ms} ms`);
        this.broker.setUp(false);
        this.scheduler.after(ms, 'world', 'broker-up', () => {
          this.log('FAULT broker back');
          this.broker.setUp(true);
        });
        return;
      }
      case 'host-crash': {
        const h = r.pick(this.hosts);
        if (!h.up) return;
        const ms = r.int(2000, 15_000);
        this.log(`FAULT ${h.id} crashes (power loss; its VMs stop), boots after ${ms} ms`);
        h.up = false;
        this.killDaemon(h, 'host crash');
        h.hv.crash();
        this.scheduler.after(ms, 'world', 'host-boot', () => {
          this.log(`FAULT ${h.id} boots`);
          h.up = true;
          h.hv.boot();
          this.startDaemon(h, r.int(100, 1000));
        });
        return;
      }
      case 'daemon-restart': {
        const h = r.pick(this.hosts);
        if (!h.up) return;
        this.log(`FAULT ${h.id} daemon restarts (VMs keep running)`);
        this.killDaemon(h, 'restart');
        this.startDaemon(h, r.int(200, 3000));
        return;
      }
      case 'partition': {
        const h = r.pick(this.hosts);
        const ms = r.int(1000, 20_000);
        this.log(`FAULT ${h.id} cut off from the broker for ${ms} ms (VMs keep running)`);
        this.broker.partition(h.id, true);
        this.scheduler.after(ms, 'world', 'heal', () => {
          this.log(`FAULT ${h.id} reconnected to the broker`);
          this.broker.partition(h.id, false);
        });
        return;
      }
      case 'migrate':
        return this.migrate(r);
      case 'behind-back': {
        const h = r.pick(this.hosts);
        if (!h.up) return;
        const doms = [...h.hv.domains.values()];
        if (doms.length === 0) return;
        const d = r.pick(doms);
        if (d.state === DomainState.SHUTOFF) {
          if (this.truth.activeHosts(d.uuid).length > 0) return; // never two copies by hand
          this.log(`FAULT ${d.name} started on ${h.id} behind our back`);
          h.hv.setState(d.uuid, DomainState.RUNNING, undefined, LifecycleEventType.STARTED);
        } else {
          this.log(`FAULT ${d.name} stopped on ${h.id} behind our back`);
          h.hv.setState(d.uuid, DomainState.SHUTOFF, undefined, LifecycleEventType.STOPPED);
        }
        return;
      }
      case 'new-vm': {
        const h = r.pick(this.hosts);
        if (!h.up) return;
        const vm = this.newVm();
        this.log(`FAULT new VM ${vm.name} defined and started on ${h.id}`);
        h.hv.define(vm.uuid, vm.name);
        h.hv.setState(vm.uuid, DomainState.RUNNING, undefined, LifecycleEventType.STARTED);
        return;
      }
    }
  }

  /** Live migration: the VM on two hosts (incoming copy paused), then on the destination. */
  private migrate(r: Rng): void {
    const running = this.vms.filter((v) => this.truth.activeHosts(v.uuid).length === 1);
    if (running.length === 0) return;
    const vm = r.pick(running);
    const from = this.hosts.find((h) => h.id === this.truth.activeHosts(vm.uuid)[0]);
    const targets = this.hosts.filter((h) => h !== from && h.up);
    if (!from || targets.length === 0) return;
    const to = r.pick(targets);
    const ms = r.int(300, 5000);
    const defined = to.hv.domains.has(vm.uuid);
    this.log(`FAULT ${vm.name} migrates ${from.id} → ${to.id} (switch-over in ${ms} ms)`);
    if (!defined) to.hv.define(vm.uuid, vm.name);
    to.hv.setState(vm.uuid, DomainState.PAUSED, undefined, LifecycleEventType.STARTED, 1, true);
    this.scheduler.after(ms, 'world', 'migration-end', () => {
      const src = from.hv.domains.get(vm.uuid);
      const dst = to.hv.domains.get(vm.uuid);
      if (!dst || dst.state !== DomainState.PAUSED || !to.up) {
        this.log(`FAULT migration of ${vm.name} failed (destination gone)`);
        return;
      }
      if (!src || src.state === DomainState.SHUTOFF || !from.up) {
        this.log(`FAULT migration of ${vm.name} aborted (source stopped); destination torn down`);
        to.hv.setState(vm.uuid, DomainState.SHUTOFF, undefined, LifecycleEventType.STOPPED, 2);
        if (!defined) to.hv.remove(vm.uuid);
        return;
      }
      this.log(`FAULT migration of ${vm.name} switches over to ${to.id}`);
      from.hv.setState(vm.uuid, DomainState.SHUTOFF, undefined, LifecycleEventType.STOPPED, 3);
      to.hv.setState(vm.uuid, DomainState.RUNNING, undefined, LifecycleEventType.RESUMED, 1);
    });
  }

  /** A fence_xvm-like agent: one request, copies to several hosts, maybe a retransmission. */
  private agent(r: Rng): void {
    const live = this.hosts.filter((h) => h.daemon?.alive);
    if (live.length === 0) return;
    const action = r.pick(ACTIONS);
    let target: string;
    if (r.chance(0.1)) target = `ghost${r.int(1, 3)}`;
    else {
      const vm = r.pick(this.vms);
      target = r.chance(0.2) ? vm.uuid : vm.name;
    }
    const timeout = r.pick([3000, 10_000, 20_000, 30_000]);
    const seqno = r.int(1, 0x7fffffff);
    const start = this.scheduler.time;
    const deadline = start + timeout;
    this.lastDeadline = Math.max(this.lastDeadline, deadline);
    this.requests++;
    const multicast = r.chance(0.6);
    const first = multicast ? live : [r.pick(live)];
    this.log(
      `AGENT ${action} ${target} seqno=${seqno} timeout=${timeout}ms → ${first.map((h) => h.id).join(',')}`,
    );
    for (const h of first) {
      this.scheduler.after(r.int(0, 5), 'world', 'agent-copy', () =>
        this.call(h, action, target, seqno, start, deadline),
      );
    }
    if (r.chance(0.3)) {
      const h = r.pick(this.hosts);
      const retrans = r.int(2000, 4000);
      this.scheduler.after(retrans, 'world', 'agent-retransmit', () => {
        // fence_xvm retransmits until the first answer reaches it, never after.
        if (this.scheduler.time >= deadline || this.answered.has(seqno)) return;
        this.log(`AGENT retransmits ${action} ${target} seqno=${seqno} → ${h.id}`);
        this.call(h, action, target, seqno, start, deadline);
      });
    }
  }

  /** One copy of a request reaching a daemon; the request's lifetime began at `start`. */
  private call(
    h: Host,
    action: FenceAction,
    target: string,
    seqno: number,
    start: number,
    deadline: number,
  ): void {
    const d = h.daemon;
    if (!d?.alive) return;
    const callId = ++this.callIds;
    const arrived = this.scheduler.time;
    const label = `${h.id} answer to ${action} ${target} seqno=${seqno}`;
    const id = `${action}:${seqno}:${target.toLowerCase()}`;
    this.pending.set(callId, { text: label, owner: d.owner, deadline });
    const ctx = {
      id: `agent-${callId}`,
      listener: 'multicast',
      source: '10.0.0.9',
      seqno,
      deadline: deadline + h.skew,
    };
    d.backend.fence(action, target, ctx).then(
      (outcome) => {
        this.pending.delete(callId);
        if (this.scheduler.isDead(d.owner)) return; // the process died: nobody got this
        this.answers++;
        this.answered.add(seqno);
        this.log(
          `${h.id}  ANSWER ${action} ${target} seqno=${seqno}: ${outcome.code} (${outcome.reason})` +
            (outcome.executedBy ? ` by ${outcome.executedBy}` : '') +
            ` after ${this.scheduler.time - arrived} ms`,
        );
        this.truth.checkAnswer({
          label,
          id,
          action,
          target,
          start,
          deadline,
          code: outcome.code,
          reason: outcome.reason,
        });
      },
      (error: unknown) => {
        this.pending.delete(callId);
        this.truth.escaped(`${label} (fence rejected)`, error);
      },
    );
  }
}

const noop = (): void => undefined;
const noLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => noLogger,
};

export type { Violation };
