/**
 * The broker-routed backend (docs/routing.md): every host runs one. It executes fence requests for its own VMs
 * through the local libvirt backend and routes the others to their owner(s) over the bus.
 *
 * - publishes a heartbeat every `heartbeatIntervalMs`, every local VM lifecycle change, and an
 *   inventory snapshot on start, after every reconnect and on request (resync);
 * - keeps the cluster ownership table (src/routing) from everyone's messages;
 * - fence(): decide the route; local → execute; remote → signed fence request to each target
 *   host, wait for the replies until the request deadline, combine them with the safety rules;
 * - answers other hosts' fence requests: validates it owns the VM now, executes once per
 *   request id (RequestLedger), replies with result, reason, executing host, state after and
 *   timings.
 */
import type {
  BackendHealth,
  FenceAction,
  FenceOutcome,
  FenceReason,
  HostListResult,
  PeerHealth,
  RequestContext,
} from '../backend.js';
import type { Backend } from '../backend.js';
import { Response, DomainState } from '../../protocol/constants.js';
import { sortHostEntries, type HostEntry } from '../../protocol/hostlist.js';
import type { FenceRequestMessage, Message } from '../../messages/schemas.js';
import { OwnershipTable, comparePosition } from '../../routing/table.js';
import { RouteReason, decideRoute, validateReply, type HostReply } from '../../routing/route.js';
import { RequestLedger, requestId } from '../../routing/ledger.js';
import type { Logger } from '../../util/logger.js';
import { LifecycleEventType } from '../../libvirt/hypervisor.js';
import type { BusPort, DomainChange, LocalPort, MembershipChange, ReplyFn } from './ports.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { errText } from '../../util/errors.js';
import { FenceOrigin } from './fence-origin.js';

export interface RoutedBackendOptions {
  hostId: string;
  heartbeatIntervalMs: number;
  deadAfterMs: number;
  /** How long an executed request's answer is served to copies and retransmissions. */
  dedupWindowMs?: number;
  /** Margin kept before a request deadline so the listener can still deliver the answer. */
  replyMarginMs?: number;
  listeners?: string[];
  /** Safety net against lost events: republish the inventory this often (ms). Default 30 s; 0: never. */
  inventoryIntervalMs?: number;
  /**
   * Minimum time after a (re)connect before an unknown VM may be answered as unknown, so the
   * heartbeats of every running host are heard first. Default 2 beats + 250 ms. Besides it, an
   * inventory from every live host must have arrived since the (re)connect.
   */
  syncSettleMs?: number;
  /**
   * The cluster's host ids (config key `hosts`). A listed host we never heard from counts as
   * unsynced (it may run anything), so answers that rest on "runs nowhere else" fail
   * `not-synced` until its inventory arrives or fencing evidence covers it. Without the list
   * a host no running daemon has heard from is invisible (README, "Safety model").
   */
  hosts?: readonly string[];
  software?: { name: string; version: string };
  logger: Logger;
  /** Current time and timers (default: the process clock). */
  clock?: Clock;
}

/** What executing a request on this host produced (the fence-reply body, reduced). */
interface Execution extends HostReply {
  /** Results of status are only shared while running, never cached (state changes). */
  cache: boolean;
  received: number;
  started: number | undefined;
  finished: number;
}

/** A request this host refuses without acting on it; never cached, so a retry is judged anew. */
function refused(reason: FenceReason, received: number, finished: number): Execution {
  return {
    cache: false,
    code: Response.FAIL,
    reason,
    state: null,
    received,
    started: undefined,
    finished,
  };
}

export interface RoutedCounters {
  executions: number;
  executionsCached: number;
  remoteRequestsSent: number;
  remoteRequestsHandled: number;
  repliesReceived: number;
  repliesUnmatched: number;
  resyncsRequested: number;
  inventoriesPublished: number;
}

export class RoutedBackend implements Backend {
  readonly name = 'amqp';
  readonly table: OwnershipTable;
  readonly counters: RoutedCounters = {
    executions: 0,
    executionsCached: 0,
    remoteRequestsSent: 0,
    remoteRequestsHandled: 0,
    repliesReceived: 0,
    repliesUnmatched: 0,
    resyncsRequested: 0,
    inventoriesPublished: 0,
  };
  private readonly self: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  /** Owner side: one execution per request id, answer cached for the window. */
  private readonly execLedger: RequestLedger<Execution>;
  /**
   * Origin side: callers with the same request id share one routed attempt; a power action
   * that did its work (success, reason ok) answers later copies from the cache, so a copy
   * that arrives after the VM moved does not execute it again elsewhere.
   */
  private readonly originLedger: RequestLedger<{ outcome: FenceOutcome; keep: boolean }>;
  /** Origin side: sends requests to other hosts, waits for and combines their replies. */
  private readonly origin: FenceOrigin;
  private readonly unsubscribe: Array<() => void> = [];
  private heartbeatTimer: TimerHandle | undefined;
  private inventoryTimer: TimerHandle | undefined;
  private inventorySeq = 0;
  private heartbeatSeq = 0;
  private readonly lastResyncAsk = new Map<string, number>();
  private inventoryInFlight: Promise<void> | undefined;
  private inventoryAgain = false;
  private started = false;
  /** When the current broker connection came up (undefined while down). */
  private connectedSince: number | undefined;
  private syncTimer: TimerHandle | undefined;
  /** Whether `synced` was logged for the current connection. */
  private syncLogged = false;
  private readonly inventoryEpochs = new Map<string, number>();
  /** Our clock when each host's latest inventory arrived (sync is judged against it). */
  private readonly inventoryAt = new Map<string, number>();
  /** Hosts heard only through messages refused for their timestamp: our clock, last time. */
  private readonly outOfWindow = new Map<string, number>();
  /** Per host: its latest heartbeat (epoch, inventory position it announced, our clock). */
  private readonly beats = new Map<
    string,
    { epoch: number; inventorySeq: number | undefined; at: number }
  >();
  /** Hosts other hosts told us of (inventory `peers`) that we never heard ourselves. */
  private readonly rumoured = new Set<string>();
  /** Per host: when it came (back) into view: first heard, new epoch, or back from dead. */
  private readonly returnedAt = new Map<string, number>();

  constructor(
    private readonly local: LocalPort,
    private readonly bus: BusPort,
    private readonly options: RoutedBackendOptions,
  ) {
    this.self = options.hostId;
    this.clock = options.clock ?? systemClock;
    this.log = options.logger.child({ backend: 'amqp', host: options.hostId });
    this.table = new OwnershipTable(this.self, {
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      deadAfterMs: options.deadAfterMs,
    });
    const windowMs = options.dedupWindowMs ?? 60_000;
    const now = (): number => this.clock.now();
    this.execLedger = new RequestLedger<Execution>({
      windowMs,
      now,
      cacheable: (e) => e.cache,
    });
    this.originLedger = new RequestLedger<{ outcome: FenceOutcome; keep: boolean }>({
      windowMs,
      now,
      cacheable: (r) => r.keep,
    });
    this.origin = new FenceOrigin({
      self: this.self,
      clock: this.clock,
      send: (host, body) => {
        this.counters.remoteRequestsSent++;
        return this.bus.sendToHost(host, 'fence-request', body);
      },
      executeLocal: (r) =>
        this.executeOnce(r.id, r.action, r.target, r.requestDeadline, r.requester, r.listener),
      liveness: (host, at) => this.table.livenessOf(host, at),
      epochOf: (host) => this.beats.get(host)?.epoch,
      deadAfterMs: options.deadAfterMs,
      checkEveryMs: Math.max(50, Math.floor(options.heartbeatIntervalMs / 2)),
      onSendFailed: (host, id, err) =>
        this.log.warn('fence-request-send-failed', { request: id, to: host, error: errText(err) }),
    });
  }

  private now(): number {
    return this.clock.now();
  }

  /**
   * After (re)connecting, the table may miss VMs other hosts started meanwhile: until their
   * inventories had time to arrive, an unknown target is `not-synced` (FAIL), not "unknown".
   */
  private get settleMs(): number {
    return this.options.syncSettleMs ?? 2 * this.options.heartbeatIntervalMs + 250;
  }

  /**
   * Synced is a fact, not a timer: connected, past the settle time (to have heard every running
   * host's heartbeat), and an inventory from every live host (alive or suspect) received since
   * the connection came up. Until then an unknown VM may be one a host we did not hear from runs.
   */
  private synced(now: number): boolean {
    return this.unsyncedHosts(now)?.length === 0;
  }

  /** The configured cluster hosts other than this one (empty without the `hosts` key). */
  private get configuredHosts(): readonly string[] {
    return (this.options.hosts ?? []).filter((h) => h !== this.self);
  }

  /**
   * Live hosts whose inventory is missing since the (re)connect, and configured hosts never
   * heard of; undefined: not settled.
   */
  private unsyncedHosts(now: number): string[] | undefined {
    const since = this.connectedSince;
    if (since === undefined || now - since < this.settleMs) return undefined;
    const known = this.table.knownHosts();
    const configured = this.configuredHosts;
    // Having heard of no other host is not knowing there is none (they may all be silent).
    const others = known.filter((h) => h !== this.self);
    if (
      others.length === 0 &&
      this.rumoured.size === 0 &&
      this.outOfWindow.size === 0 &&
      configured.length === 0
    )
      return undefined;
    const missing: string[] = [];
    // Until one of its messages verifies again, a host whose clock is off stays unsynced.
    for (const host of this.outOfWindow.keys()) missing.push(host);
    for (const host of known) {
      if (host === this.self || missing.includes(host)) continue;
      // Powered off by the host cluster and silent since: it runs nothing.
      if (this.table.isFenced(host, now)) continue;
      if (this.table.livenessOf(host, now) === 'dead') continue;
      if (!this.hostSynced(host, since)) missing.push(host);
    }
    // A listed host nobody told us anything of is unknown, not absent: it may run anything.
    for (const host of configured)
      if (!known.includes(host) && !missing.includes(host)) missing.push(host);
    return missing;
  }

  /**
   * What we hold of a host is complete: its inventory arrived after our (re)connect and after
   * it came back into view, and nothing it announced since is missing (its heartbeats carry
   * the position of its latest event or inventory).
   */
  private hostSynced(host: string, since: number): boolean {
    const at = this.inventoryAt.get(host);
    if (at === undefined || at < since || at < (this.returnedAt.get(host) ?? 0)) return false;
    const beat = this.beats.get(host);
    if (beat?.inventorySeq === undefined) return true;
    const seen = this.table.positionOf(host);
    return (
      seen !== undefined &&
      comparePosition(seen, { epoch: beat.epoch, seq: beat.inventorySeq }) >= 0
    );
  }

  get hostId(): string {
    return this.self;
  }

  /**
   * Readiness and the routing view: serving once the broker is connected and the table had
   * time to sync (settleMs), as requests for unknown VMs are refused until then.
   */
  health(): BackendHealth {
    const now = this.now();
    const local = this.local.health?.();
    const connected = this.bus.isConnected();
    const synced = this.synced(now);
    const hosts: Record<PeerHealth['liveness'], number> = {
      alive: 0,
      suspect: 0,
      dead: 0,
      unknown: 0,
    };
    const peers: PeerHealth[] = [];
    for (const host of this.table.knownHosts()) {
      const liveness = this.table.livenessOf(host, now);
      hosts[liveness]++;
      if (host === this.self) continue;
      const hb = this.table.heartbeatOf(host);
      peers.push({
        host,
        liveness,
        heartbeatAgeMs: hb ? now - hb.receivedAt : undefined,
        clockOffsetMs: hb ? hb.sentAt - hb.receivedAt : undefined,
      });
    }
    if (!this.table.knownHosts().includes(this.self)) hosts.alive++;
    const { vms, claims } = this.table.stats();
    const waitingFor = !connected
      ? 'the broker'
      : !synced
        ? 'the cluster table to sync'
        : local && !local.serving
          ? local.waitingFor
          : undefined;
    return {
      serving: waitingFor === undefined,
      ...(waitingFor !== undefined ? { waitingFor } : {}),
      libvirt: local?.libvirt ?? [],
      routing: { hosts, vms, claims, peers },
    };
  }

  async start(): Promise<void> {
    // Order that loses nothing: subscribe to local changes, then list (inventory).
    this.unsubscribe.push(this.local.onDomainChange((c) => this.onLocalChange(c)));
    await this.local.start();
    this.unsubscribe.push(this.bus.onMessage((m, reply) => this.onMessage(m, reply)));
    this.unsubscribe.push(this.bus.onConnectionChange((up) => this.onConnectionChange(up)));
    const skew = this.bus.onOutOfWindow?.((from) => this.onOutOfWindow(from));
    if (skew) this.unsubscribe.push(skew);
    if (this.bus.onMembership)
      this.unsubscribe.push(this.bus.onMembership((c) => this.onMembership(c)));
    this.started = true;
    await this.refreshInventory(undefined, false);
    try {
      await this.bus.start();
    } catch (err) {
      // The broker may be down at start: local fencing still works, the bus keeps retrying.
      this.log.warn('bus-start-failed', {
        reason: RouteReason.brokerUnavailable,
        error: errText(err),
      });
    }
    if (this.bus.isConnected()) await this.announce('start');
    this.heartbeatTimer = this.clock.setInterval(
      () => void this.heartbeat(),
      this.options.heartbeatIntervalMs,
    );
    const every = this.options.inventoryIntervalMs ?? 30_000;
    if (every > 0) {
      this.inventoryTimer = this.clock.setInterval(() => {
        if (this.bus.isConnected()) void this.refreshInventory(undefined, true);
      }, every);
    }
  }

  async stop(): Promise<void> {
    this.started = false;
    this.heartbeatTimer?.cancel();
    this.inventoryTimer?.cancel();
    this.syncTimer?.cancel();
    for (const u of this.unsubscribe.splice(0)) u();
    this.origin.stop();
    await Promise.allSettled([this.bus.stop(), this.local.stop()]);
  }

  // ------------------------------------------------------------------------------------
  // Backend

  async fence(action: FenceAction, target: string, ctx: RequestContext): Promise<FenceOutcome> {
    if (action === 'null') return { code: Response.FAIL, reason: RouteReason.nullOp };
    if (action === 'devstatus') return { code: Response.SUCCESS, reason: RouteReason.devstatus };
    const id = requestId({ action, seqno: ctx.seqno, target, source: ctx.source });
    const started = this.now();
    const { value: done, how } = await this.originLedger.run(id, async () => {
      const outcome = await this.route(id, action, target, ctx);
      const keep =
        action !== 'status' && outcome.code === Response.SUCCESS && outcome.reason === 'ok';
      return { outcome, keep };
    });
    const value = done.outcome;
    this.log.info('fence', {
      request: id,
      ctx: ctx.id,
      action,
      target,
      code: value.code,
      reason: value.reason,
      executed_by: value.executedBy,
      shared: how !== 'executed',
      ms: this.now() - started,
    });
    this.publishTrace(id, action, target, ctx, value, how !== 'executed', started);
    return value;
  }

  /** Tell observers (virtfence trace) what was answered; best effort, never delays the answer. */
  private publishTrace(
    requestId: string,
    action: FenceAction,
    target: string,
    ctx: RequestContext,
    outcome: FenceOutcome,
    shared: boolean,
    received: number,
  ): void {
    if (!this.bus.isConnected()) return;
    const code = outcome.code;
    if (code !== 0 && code !== 1 && code !== 2 && code !== 3) return;
    void this.bus
      .publish('fence-trace', {
        requestId,
        originHost: this.self,
        listener: ctx.listener,
        requester: ctx.source ?? '',
        action,
        target,
        executedBy: outcome.executedBy ? outcome.executedBy.split(',') : [],
        code,
        reason: outcome.reason,
        shared,
        received,
        answered: this.now(),
      })
      .catch((err: unknown) => this.log.debug('fence-trace-failed', { error: errText(err) }));
  }

  async hostlist(_ctx: RequestContext): Promise<HostListResult> {
    const byUuid = new Map<string, HostEntry>();
    for (const vm of this.table.list(this.now()))
      byUuid.set(vm.uuid, { name: vm.name, uuid: vm.uuid, state: vm.state });
    // Local truth for VMs the table does not know yet (e.g. before our first event lands).
    try {
      for (const d of await this.local.domains()) {
        const uuid = d.uuid.toLowerCase();
        if (!byUuid.has(uuid)) byUuid.set(uuid, { name: d.name, uuid, state: d.state });
      }
    } catch (err) {
      this.log.warn('hostlist-local-failed', { error: errText(err) });
    }
    return { entries: sortHostEntries([...byUuid.values()]), code: 0 };
  }

  /** Publish evidence that `host` was fenced (for an operator tool or the host cluster). */
  async publishHostFenced(
    host: string,
    fencedAt: number,
    by: string,
    evidence: string,
  ): Promise<void> {
    const body = { host, fencedAt, by, evidence };
    this.table.applyEvidence(body, this.now());
    await this.bus.publish('host-fenced', body);
  }

  // ------------------------------------------------------------------------------------
  // Routing (origin side)

  /** A route refused before any host was asked: logged with what was missing, answered FAIL. */
  private refuseRoute(
    fields: { request: string; action: FenceAction; target: string; route: string },
    reason: typeof RouteReason.brokerUnavailable | typeof RouteReason.notSynced,
    missing?: string[],
  ): FenceOutcome {
    this.log.warn('route', { ...fields, reason, missing: missing?.join(',') });
    return { code: Response.FAIL, reason };
  }

  private async route(
    id: string,
    action: FenceAction,
    target: string,
    ctx: RequestContext,
    fresh = false,
  ): Promise<FenceOutcome> {
    const now = this.now();
    let decision = decideRoute(this.table, target, now, action);
    if (decision.kind === 'unknown') {
      // Our own libvirt is the truth for this host, table or not.
      const mine = await Promise.resolve()
        .then(() => this.local.findLocal(target))
        .catch(() => undefined);
      if (mine)
        decision = {
          ...decision,
          kind: 'local',
          hosts: [this.self],
          uuid: mine.uuid,
          reason: 'local-untracked',
        };
    }
    const remote = decision.hosts.filter((h) => h !== this.self);
    // Starting a VM needs the whole cluster's view: it may run on a host we cannot hear.
    const needsBus =
      decision.kind === 'unknown' ||
      decision.kind === 'owner-dead' ||
      decision.kind === 'owner-fenced' ||
      action === 'on' ||
      remote.length > 0;
    const refused = { request: id, action, target, route: decision.kind };
    if (needsBus && !this.bus.isConnected()) {
      // Without the broker we cannot know what other hosts run or whether they came back.
      return this.refuseRoute(refused, RouteReason.brokerUnavailable);
    }
    const unsynced = this.unsyncedHosts(now);
    const blind = unsynced === undefined || unsynced.some((h) => !decision.hosts.includes(h));
    // A host that went silent without fencing evidence may run anything, unknown VMs included.
    const known = this.table.knownHosts();
    const silent = known
      .filter((h) => this.table.livenessOf(h, now) === 'dead' && !this.table.isFenced(h, now))
      .concat([...this.rumoured].filter((h) => !known.includes(h)));
    if (
      (decision.kind === 'unknown' && (blind || silent.length > 0)) ||
      (action === 'on' && blind)
    ) {
      const missing = [...(unsynced ?? ['settling']), ...silent.map((h) => `${h}(dead)`)];
      return this.refuseRoute(refused, RouteReason.notSynced, missing);
    }
    if (decision.kind === 'unknown' && !fresh) {
      // "No host runs it" needs every live host to have spoken since the question: a VM
      // started just before on a host whose messages stopped would be unknown, not absent.
      const margin = this.options.replyMarginMs ?? 100;
      const quiet = await this.waitForHeartbeats(now, ctx.deadline - margin);
      if (quiet.length > 0) {
        const missing = quiet.map((h) => `${h}(no heartbeat)`);
        return this.refuseRoute(refused, RouteReason.notSynced, missing);
      }
      return this.route(id, action, target, ctx, true);
    }
    this.log.info('route', {
      request: id,
      action,
      target,
      route: decision.kind,
      hosts: decision.hosts.join(','),
      fenced: decision.fenced.join(','),
      reason: decision.reason,
    });
    const margin = this.options.replyMarginMs ?? 100;
    // A running (not paused: an incoming migration is paused) copy here that we destroy
    // ourselves is off whatever other hosts run: that success needs no cluster view.
    const ownRunning =
      blind &&
      decision.hosts.length === 1 &&
      decision.hosts[0] === this.self &&
      (await this.localState(target)) === DomainState.RUNNING;
    const { outcome, replies } = await this.origin.run({
      id,
      action,
      target,
      decision,
      waitUntil: ctx.deadline - margin,
      requestDeadline: ctx.deadline - margin,
      listener: ctx.listener,
      requester: ctx.source ?? '',
      seqno: ctx.seqno,
    });
    if (outcome.reason === 'not-owner') this.requestResync(outcome.executedBy ?? '', 'not-owner');
    if (blind && this.claimsAbsence(action, outcome, replies, ownRunning)) {
      // The answer says "not running", but a host we hold no complete picture of may run it.
      this.log.warn('route-unconfirmed', {
        request: id,
        action,
        target,
        code: outcome.code,
        reason: RouteReason.notSynced,
        answered: outcome.reason,
        missing: unsynced?.join(',') ?? (this.bus.isConnected() ? 'settling' : 'disconnected'),
      });
      const reason = this.bus.isConnected() ? RouteReason.notSynced : RouteReason.brokerUnavailable;
      return {
        code: Response.FAIL,
        reason,
        ...(outcome.executedBy ? { executedBy: outcome.executedBy } : {}),
      };
    }
    return outcome;
  }

  /**
   * Whether an answer rests on the VM running nowhere else: status OFF, and off/reboot
   * success unless this host destroyed its own running copy (reason ok).
   */
  private claimsAbsence(
    action: FenceAction,
    outcome: FenceOutcome,
    replies: ReadonlyArray<{ host: string; reply: HostReply | undefined }>,
    ownRunning: boolean,
  ): boolean {
    if (action === 'status') return outcome.code === Response.OFF;
    if (action !== 'off' && action !== 'reboot') return false;
    if (outcome.code !== Response.SUCCESS) return false;
    return !(ownRunning && replies.every((r) => r.reply?.reason === 'ok'));
  }

  private async localState(target: string): Promise<number | undefined> {
    const d = await Promise.resolve()
      .then(() => this.local.findLocal(target))
      .catch(() => undefined);
    return d?.state;
  }

  // ------------------------------------------------------------------------------------
  // Execution (owner side)

  private async executeOnce(
    id: string,
    action: FenceAction,
    target: string,
    deadline: number,
    source: string,
    listener: string,
  ): Promise<Execution> {
    const received = this.now();
    const { value, how } = await this.execLedger.run(id, async () => {
      this.counters.executions++;
      const started = this.now();
      if (started >= deadline) {
        return refused(RouteReason.deadlinePassed, received, started);
      }
      // A paused copy is what an incoming migration looks like: a reboot powers it off but
      // does not start it, or the VM could end up running here and at its source.
      const act =
        action === 'reboot' && (await this.localState(target)) === DomainState.PAUSED
          ? 'off'
          : action;
      let out: FenceOutcome;
      try {
        out = await this.local.fence(act, target, { id, listener, source, seqno: 0, deadline });
      } catch (err) {
        this.log.warn('local-error', { request: id, action, target, error: errText(err) });
        out = { code: Response.FAIL, reason: 'local-error' };
      }
      // status answers its own question; the power actions are checked with a live lookup.
      const after =
        action === 'status'
          ? await this.stateFromStatus(out, target)
          : await this.liveState(target, deadline);
      const saysOff =
        (action === 'status' && out.code === Response.OFF) || out.reason === 'already-off';
      if (saysOff && this.migratedAwayFromHere(target)) {
        // Off here because it just migrated to another host (our own event says so): it runs.
        out = { code: Response.FAIL, reason: RouteReason.migratedAway };
      }
      const result: Execution = {
        // Only what this request did is replayed to its copies; "already off/on" is a fact of
        // the moment (the VM may start a second later) and is judged again.
        cache: action !== 'status' && out.reason !== 'already-off' && out.reason !== 'already-on',
        ...validateReply(action, {
          code: out.code,
          reason: out.reason,
          state: after.state,
        }),
        received,
        started,
        finished: this.now(),
      };
      this.log.info('execute', {
        request: id,
        action,
        target,
        code: result.code,
        reason: result.reason,
        state: result.state ?? 'gone',
      });
      return result;
    });
    if (how !== 'executed') {
      this.counters.executionsCached++;
      this.log.info('execute-deduplicated', { request: id, action, target, how, code: value.code });
    }
    return value;
  }

  private migratedAwayFromHere(target: string): boolean {
    return this.table
      .resolve(target)
      .some((uuid) =>
        this.table.claims(uuid).some((c) => c.host === this.self && c.migratedAway === true),
      );
  }

  /**
   * A live lookup through the local backend's status (the domain cache may lag behind an
   * action that just happened). ON → the cached state if it is an active one, else RUNNING.
   */
  /** The state a status outcome implies (the same mapping as liveState). */
  private async stateFromStatus(s: FenceOutcome, target: string): Promise<LiveState> {
    if (s.code === Response.OFF) {
      return s.reason === 'not-found'
        ? { found: false, state: null }
        : { found: true, state: DomainState.SHUTOFF };
    }
    if (s.code === Response.SUCCESS) {
      const cached = await Promise.resolve()
        .then(() => this.local.findLocal(target))
        .catch(() => undefined);
      const state =
        cached && cached.state !== DomainState.SHUTOFF ? cached.state : DomainState.RUNNING;
      return { found: true, state };
    }
    return { found: undefined, state: DomainState.NOSTATE };
  }

  private async liveState(target: string, deadline: number): Promise<LiveState> {
    try {
      const s = await this.local.liveStatus(target, {
        id: 'live-state',
        listener: 'amqp',
        source: undefined,
        seqno: 0,
        deadline: Math.max(deadline, this.now() + 2000),
      });
      return await this.stateFromStatus(s, target);
    } catch (err) {
      this.log.warn('live-state-failed', { target, error: errText(err) });
      return { found: undefined, state: DomainState.NOSTATE };
    }
  }

  private async onFenceRequest(message: FenceRequestMessage, reply: ReplyFn): Promise<void> {
    const b = message.body;
    this.counters.remoteRequestsHandled++;
    const received = this.now();
    let result: Execution;
    if (b.toHost !== this.self) {
      this.log.warn('fence-request-misaddressed', {
        request: b.requestId,
        to: b.toHost,
        from: message.from,
      });
      return;
    }
    const cached = this.execLedger.peek(b.requestId);
    if (cached) {
      result = cached;
      this.counters.executionsCached++;
    } else if (b.deadline <= received) {
      result = refused(RouteReason.deadlinePassed, received, received);
    } else if (b.toEpoch !== undefined && b.toEpoch !== this.bus.epoch) {
      // Sent to an earlier run of this daemon (queued while it restarted): whether that run
      // executed it is unknown here, so it is not executed again.
      result = refused(RouteReason.staleRequest, received, received);
    } else {
      // Ownership: the domain cache first (no libvirt call), a live lookup when it says no.
      const cachedHere = await Promise.resolve()
        .then(() => this.local.findLocal(b.target))
        .catch(() => undefined);
      const mine: LiveState = cachedHere
        ? { found: true, state: cachedHere.state }
        : await this.liveState(b.target, b.deadline);
      if (mine.found === false) {
        // Whoever sent this has a stale table: tell everyone what we really run.
        result = refused(RouteReason.notOwner, received, this.now());
        void this.refreshInventory('not-owner', true);
      } else {
        result = await this.executeOnce(
          b.requestId,
          b.action,
          b.target,
          b.deadline,
          b.requester,
          b.listener,
        );
      }
    }
    this.log.info('fence-request-handled', {
      request: b.requestId,
      from: message.from,
      action: b.action,
      target: b.target,
      code: result.code,
      reason: result.reason,
    });
    try {
      await reply('fence-reply', {
        requestId: b.requestId,
        code: result.code as 0 | 1 | 2 | 3,
        reason: result.reason,
        executingHost: this.self,
        vmState: result.state,
        timings: {
          received,
          ...(result.started !== undefined ? { started: result.started } : {}),
          finished: result.finished,
        },
      });
    } catch (err) {
      this.log.warn('fence-reply-send-failed', {
        request: b.requestId,
        to: message.from,
        error: errText(err),
      });
    }
  }

  // ------------------------------------------------------------------------------------
  // Cluster state

  private onMessage(message: Message, reply: ReplyFn): void {
    if (message.from === this.self) return;
    const now = this.now();
    switch (message.type) {
      case 'heartbeat':
      case 'announce': {
        const b = message.body;
        this.outOfWindow.delete(b.host);
        const prev = this.beats.get(b.host);
        if (prev && (prev.epoch !== b.epoch || this.table.livenessOf(b.host, now) === 'dead'))
          this.returnedAt.set(b.host, now);
        if (
          !prev ||
          b.epoch > prev.epoch ||
          (b.epoch === prev.epoch && (b.inventorySeq ?? 0) >= (prev.inventorySeq ?? 0))
        )
          this.beats.set(b.host, { epoch: b.epoch, inventorySeq: b.inventorySeq, at: now });
        this.table.applyHeartbeat(
          { host: b.host, epoch: b.epoch, seq: b.seq, sentAt: message.ts },
          now,
        );
        if (b.inventorySeq !== undefined) {
          const seen = this.table.positionOf(b.host);
          if (!seen || comparePosition(seen, { epoch: b.epoch, seq: b.inventorySeq }) < 0) {
            this.requestResync(b.host, 'gap');
          }
        }
        const since = this.connectedSince;
        // Its inventory since our (re)connect or its return was lost: ask again.
        if (since !== undefined && !this.hostSynced(b.host, since) && now - since >= this.settleMs)
          this.requestResync(b.host, 'sync');
        if (message.type === 'announce')
          this.log.info('host-announced', {
            peer: b.host,
            epoch: b.epoch,
            listeners: b.listeners.join(','),
          });
        // The settle timer may fire a millisecond before the settle time by the clock; every
        // heartbeat checks again, so `synced` is logged within one interval of becoming true.
        this.noteSync();
        break;
      }
      case 'vm-event':
        if (this.table.applyVmEvent(message.body, now) === 'applied') this.noteSync();
        break;
      case 'inventory': {
        const b = message.body;
        const known = this.inventoryEpochs.get(b.host);
        const applied = this.table.applyInventory(b, now);
        for (const peer of b.peers ?? []) if (peer !== this.self) this.rumoured.add(peer);
        // A stale copy still proves the host's newer snapshot was applied before: only the
        // ones that change the table count towards being synced.
        if (applied === 'applied') this.inventoryAt.set(b.host, now);
        if (applied === 'applied' && known !== b.epoch) {
          this.inventoryEpochs.set(b.host, b.epoch);
          this.log.info('peer-inventory', { peer: b.host, epoch: b.epoch, vms: b.vms.length });
        }
        if (applied === 'applied') this.noteSync();
        break;
      }
      case 'resync-request':
        if (message.body.target === undefined || message.body.target === this.self) {
          void this.refreshInventory(message.id, true);
        }
        break;
      case 'fence-request':
        void this.onFenceRequest(message, reply).catch((err) =>
          this.log.error('fence-request-failed', {
            request: message.body.requestId,
            error: errText(err),
          }),
        );
        break;
      case 'fence-reply': {
        const ok = this.origin.deliver(message, now);
        if (ok) this.counters.repliesReceived++;
        else this.counters.repliesUnmatched++;
        break;
      }
      case 'host-fenced': {
        const r = this.table.applyEvidence(message.body, now);
        this.log.warn('host-fenced-evidence', {
          peer: message.body.host,
          by: message.body.by,
          fenced_at: message.body.fencedAt,
          applied: r,
          fenced: this.table.isFenced(message.body.host, now),
        });
        break;
      }
      case 'fence-trace':
        // For observers only (docs/routing.md §2): never acted upon.
        break;
    }
  }

  /**
   * Waits until every live host has heartbeated after `since` (at most two intervals, and not
   * past `until`); returns the hosts that did not.
   */
  private async waitForHeartbeats(since: number, until: number): Promise<string[]> {
    const quiet = (): string[] =>
      this.table
        .knownHosts()
        .filter(
          (h) =>
            h !== this.self &&
            this.table.livenessOf(h, this.now()) !== 'dead' &&
            !this.table.isFenced(h, this.now()) &&
            (this.beats.get(h)?.at ?? -Infinity) <= since,
        );
    const limit = Math.min(until, since + 2 * this.options.heartbeatIntervalMs + 100);
    let left = quiet();
    while (left.length > 0 && this.now() < limit) {
      await new Promise<void>((resolve) =>
        this.clock.setTimeout(resolve, Math.min(50, Math.max(1, limit - this.now()))),
      );
      left = quiet();
    }
    return left;
  }

  /** Logs `synced` once per connection, when it becomes true (tests and operators wait on it). */
  private noteSync(): void {
    if (this.syncLogged || !this.synced(this.now())) return;
    this.syncLogged = true;
    this.log.info('synced', { hosts: this.table.knownHosts().join(',') });
  }

  private onOutOfWindow(from: string): void {
    if (from === this.self) return;
    const now = this.now();
    const last = this.outOfWindow.get(from);
    this.outOfWindow.set(from, now);
    if (last === undefined || now - last > this.options.deadAfterMs)
      this.log.warn('peer-clock-skew', {
        peer: from,
        reason: RouteReason.notSynced,
        detail: 'its messages are outside the timestamp window; unknown VMs are not-synced',
      });
  }

  private onConnectionChange(up: boolean): void {
    this.log.info('bus-connection', { up });
    this.syncTimer?.cancel();
    this.connectedSince = up ? this.now() : undefined;
    this.syncLogged = false;
    if (up) {
      this.syncTimer = this.clock.setTimeout(() => {
        this.log.info('settled', {
          hosts: this.table.knownHosts().join(','),
          missing: this.unsyncedHosts(this.now())?.join(',') ?? '',
        });
        this.noteSync();
      }, this.settleMs);
    }
    if (!up) {
      // Requests in flight can no longer be answered reliably: fail them now (never success).
      this.origin.failAll(RouteReason.brokerUnavailable);
      return;
    }
    if (this.started) void this.announce('connected');
  }

  // ------------------------------------------------------------------------------------
  // Membership (buses that have one, e.g. CPG): a host that left is dead now.

  private onMembership(change: MembershipChange): void {
    const now = this.now();
    for (const host of change.left) {
      if (host === this.self) continue;
      this.table.markDeparted(host, now);
    }
    // A departed host is dead: its answers can no longer come, so what waits on it fails now
    // (owner-dead, never success).
    if (change.left.some((host) => host !== this.self)) this.origin.checkOwners();
    for (const host of change.left) {
      if (host === this.self) continue;
      this.log.warn('host-left-membership', {
        peer: host,
        reason: change.reasons?.[host],
        fenced: this.table.isFenced(host, now),
      });
    }
  }

  private async announce(why: string): Promise<void> {
    try {
      await this.bus.publish('announce', this.statusBody());
      await this.refreshInventory(undefined, true);
      await this.bus.publish('resync-request', { reason: why });
    } catch (err) {
      this.log.warn('announce-failed', { why, error: errText(err) });
    }
  }

  private statusBody() {
    this.heartbeatSeq++;
    return {
      host: this.self,
      epoch: this.bus.epoch,
      seq: this.heartbeatSeq,
      software: this.options.software ?? { name: 'virtfence', version: '0.1.0' },
      protocolVersion: 1,
      vmCount: this.table.hostInfo(this.self, this.now()).vms,
      listeners: this.options.listeners ?? [],
      intervalMs: this.options.heartbeatIntervalMs,
      inventorySeq: this.inventorySeq,
    };
  }

  private async heartbeat(): Promise<void> {
    if (!this.bus.isConnected()) return;
    this.origin.checkOwners();
    try {
      await this.bus.publish('heartbeat', this.statusBody());
    } catch (err) {
      this.log.debug('heartbeat-failed', { error: errText(err) });
    }
  }

  private onLocalChange(change: DomainChange): void {
    this.inventorySeq++;
    const body = {
      uuid: change.uuid.toLowerCase(),
      name: change.name,
      state: change.present ? change.state : DomainState.SHUTOFF,
      // A domain that vanished (transient stopped, undefined) leaves this host's claims.
      event: change.present ? change.event : LifecycleEventType.UNDEFINED,
      detail: change.detail,
      host: this.self,
      epoch: this.bus.epoch,
      seq: this.inventorySeq,
    };
    this.table.applyVmEvent(body, this.now());
    if (!this.bus.isConnected()) return;
    this.bus
      .publish('vm-event', body)
      .catch((err) => this.log.warn('vm-event-publish-failed', { error: errText(err) }));
  }

  /** Snapshot local domains into our table and (optionally) publish it; coalesces calls. */
  private async refreshInventory(inReplyTo: string | undefined, publish: boolean): Promise<void> {
    if (this.inventoryInFlight) {
      this.inventoryAgain = true;
      return this.inventoryInFlight;
    }
    this.inventoryInFlight = (async () => {
      do {
        this.inventoryAgain = false;
        // The sequence is taken before listing: events during the listing are newer.
        this.inventorySeq++;
        const seq = this.inventorySeq;
        const domains = await this.local.domains();
        const body = {
          host: this.self,
          epoch: this.bus.epoch,
          seq,
          vms: domains.map((d) => ({ uuid: d.uuid.toLowerCase(), name: d.name, state: d.state })),
          ...(inReplyTo ? { inReplyTo: inReplyTo.slice(0, 128) } : {}),
          peers: [...new Set([...this.table.knownHosts(), ...this.outOfWindow.keys()])]
            .filter((h) => h !== this.self)
            .slice(0, 1024),
        };
        this.table.applyInventory(body, this.now());
        if (publish && this.bus.isConnected()) {
          await this.bus.publish('inventory', body);
          this.counters.inventoriesPublished++;
        }
      } while (this.inventoryAgain);
    })().finally(() => {
      this.inventoryInFlight = undefined;
    });
    return this.inventoryInFlight.catch((err) =>
      this.log.warn('inventory-failed', { error: errText(err) }),
    );
  }

  private requestResync(host: string, why: string): void {
    if (!host || !this.bus.isConnected()) return;
    const now = this.now();
    const last = this.lastResyncAsk.get(host) ?? 0;
    if (now - last < 2000) return;
    this.lastResyncAsk.set(host, now);
    this.counters.resyncsRequested++;
    this.bus
      .publish('resync-request', { target: host, reason: why })
      .catch((err) => this.log.debug('resync-request-failed', { error: errText(err) }));
  }
}

/** What a live lookup (the local backend's status) says about a target right now. */
interface LiveState {
  /** undefined when libvirt could not tell. */
  found: boolean | undefined;
  /** State for the reply: null when gone, NOSTATE when unknown (never counts as off). */
  state: number | null;
}
