/**
 * The broker-routed backend: every host runs one. It executes fence requests for its own VMs
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
import type { FenceAction, FenceOutcome, HostListResult, RequestContext } from '../backend.js';
import type { Backend } from '../backend.js';
import { Response, DomainState } from '../../protocol/constants.js';
import { sortHostEntries, type HostEntry } from '../../protocol/hostlist.js';
import { isUuid } from '../../protocol/uuid.js';
import type { FenceRequestMessage, Message } from '../../messages/schemas.js';
import { receivedReplyKey, replyKey } from '../../messages/reply.js';
import { OwnershipTable, comparePosition } from '../../routing/table.js';
import {
  RouteReason,
  combineReplies,
  decideRoute,
  outcomeWithoutExecution,
  validateReply,
  type HostReply,
} from '../../routing/route.js';
import { RequestLedger, requestId } from '../../routing/ledger.js';
import type { Logger } from '../../util/logger.js';
import { LifecycleEventType } from '../../libvirt/hypervisor.js';
import type { BusPort, DomainChange, LocalPort, ReplyFn } from './ports.js';
import { errText } from '../../util/errors.js';

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
  /** Time after a (re)connect before an unknown VM is answered as unknown. Default 2 beats + 250 ms. */
  syncSettleMs?: number;
  software?: { name: string; version: string };
  logger: Logger;
  now?: () => number;
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
function refused(reason: string, received: number, finished: number): Execution {
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

interface Waiter {
  resolve: (reply: HostReply | undefined) => void;
  timer: NodeJS.Timeout;
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
  private readonly now: () => number;
  private readonly log: Logger;
  /** Owner side: one execution per request id, answer cached for the window. */
  private readonly execLedger: RequestLedger<Execution>;
  /** Origin side: callers with the same request id share one routed attempt. */
  private readonly originLedger: RequestLedger<FenceOutcome>;
  private readonly waiters = new Map<string, Waiter>();
  private readonly unsubscribe: Array<() => void> = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private inventoryTimer: NodeJS.Timeout | undefined;
  private inventorySeq = 0;
  private heartbeatSeq = 0;
  private readonly lastResyncAsk = new Map<string, number>();
  private inventoryInFlight: Promise<void> | undefined;
  private inventoryAgain = false;
  private started = false;
  /** When the current broker connection came up (undefined while down). */
  private connectedSince: number | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private readonly inventoryEpochs = new Map<string, number>();

  constructor(
    private readonly local: LocalPort,
    private readonly bus: BusPort,
    private readonly options: RoutedBackendOptions,
  ) {
    this.self = options.hostId;
    this.now = options.now ?? Date.now;
    this.log = options.logger.child({ backend: 'amqp', host: options.hostId });
    this.table = new OwnershipTable(this.self, {
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      deadAfterMs: options.deadAfterMs,
    });
    const windowMs = options.dedupWindowMs ?? 60_000;
    this.execLedger = new RequestLedger<Execution>({
      windowMs,
      now: this.now,
      cacheable: (e) => e.cache,
    });
    this.originLedger = new RequestLedger<FenceOutcome>({
      windowMs,
      now: this.now,
      cacheable: () => false,
    });
  }

  /**
   * After (re)connecting, the table may miss VMs other hosts started meanwhile: until their
   * inventories had time to arrive, an unknown target is `not-synced` (FAIL), not "unknown".
   */
  private get settleMs(): number {
    return this.options.syncSettleMs ?? 2 * this.options.heartbeatIntervalMs + 250;
  }

  private synced(now: number): boolean {
    return this.connectedSince !== undefined && now - this.connectedSince >= this.settleMs;
  }

  get hostId(): string {
    return this.self;
  }

  async start(): Promise<void> {
    // Order that loses nothing: subscribe to local changes, then list (inventory).
    this.unsubscribe.push(this.local.onDomainChange((c) => this.onLocalChange(c)));
    await this.local.start();
    this.unsubscribe.push(this.bus.onMessage((m, reply) => this.onMessage(m, reply)));
    this.unsubscribe.push(this.bus.onConnectionChange((up) => this.onConnectionChange(up)));
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
    this.heartbeatTimer = setInterval(
      () => void this.heartbeat(),
      this.options.heartbeatIntervalMs,
    );
    this.heartbeatTimer.unref?.();
    const every = this.options.inventoryIntervalMs ?? 30_000;
    if (every > 0) {
      this.inventoryTimer = setInterval(() => {
        if (this.bus.isConnected()) void this.refreshInventory(undefined, true);
      }, every);
      this.inventoryTimer.unref?.();
    }
  }

  async stop(): Promise<void> {
    this.started = false;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.inventoryTimer) clearInterval(this.inventoryTimer);
    if (this.syncTimer) clearTimeout(this.syncTimer);
    for (const u of this.unsubscribe.splice(0)) u();
    for (const [key, w] of this.waiters) {
      clearTimeout(w.timer);
      w.resolve({ code: Response.FAIL, reason: 'shutdown', state: null });
      this.waiters.delete(key);
    }
    await Promise.allSettled([this.bus.stop(), this.local.stop()]);
  }

  // ------------------------------------------------------------------------------------
  // Backend

  async fence(action: FenceAction, target: string, ctx: RequestContext): Promise<FenceOutcome> {
    if (action === 'null') return { code: Response.FAIL, reason: RouteReason.nullOp };
    if (action === 'devstatus') return { code: Response.SUCCESS, reason: RouteReason.devstatus };
    const id = requestId({ action, seqno: ctx.seqno, target, source: ctx.source });
    const started = this.now();
    const { value, how } = await this.originLedger.run(id, () =>
      this.route(id, action, target, ctx),
    );
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

  private async route(
    id: string,
    action: FenceAction,
    target: string,
    ctx: RequestContext,
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
    const needsBus =
      decision.kind === 'unknown' ||
      decision.kind === 'owner-dead' ||
      decision.kind === 'owner-fenced' ||
      remote.length > 0;
    if (needsBus && !this.bus.isConnected()) {
      // Without the broker we cannot know what other hosts run or whether they came back.
      this.log.warn('route', {
        request: id,
        action,
        target,
        route: decision.kind,
        reason: RouteReason.brokerUnavailable,
      });
      return { code: Response.FAIL, reason: RouteReason.brokerUnavailable };
    }
    if (decision.kind === 'unknown' && !this.synced(now)) {
      this.log.warn('route', {
        request: id,
        action,
        target,
        route: decision.kind,
        reason: RouteReason.notSynced,
      });
      return { code: Response.FAIL, reason: RouteReason.notSynced };
    }
    const fixed = outcomeWithoutExecution(decision, action);
    this.log.info('route', {
      request: id,
      action,
      target,
      route: decision.kind,
      hosts: decision.hosts.join(','),
      fenced: decision.fenced.join(','),
      reason: decision.reason,
    });
    if (fixed) return fixed; // answered without execution: nobody executed it

    const replies = new Map<string, HostReply | undefined>();
    await Promise.all(
      decision.hosts.map(async (host) => {
        const reply =
          host === this.self
            ? await this.executeOnce(
                id,
                action,
                target,
                ctx.deadline,
                ctx.source ?? '',
                ctx.listener,
              )
            : await this.ask(host, id, action, target, ctx);
        replies.set(host, reply);
      }),
    );
    const outcome = combineReplies(action, decision.hosts, replies);
    if (outcome.reason === 'not-owner') this.requestResync(outcome.executedBy ?? '', 'not-owner');
    return outcome;
  }

  /** Send a fence request to one host and wait for its reply until the deadline. */
  private async ask(
    host: string,
    id: string,
    action: FenceAction,
    target: string,
    ctx: RequestContext,
  ): Promise<HostReply | undefined> {
    const key = replyKey(id, host);
    const margin = this.options.replyMarginMs ?? 100;
    const waitMs = ctx.deadline - margin - this.now();
    if (waitMs <= 0) return undefined;
    const existing = this.waiters.get(key);
    if (existing) {
      // Same request already waiting on this host (should be shared by the ledger already).
      return new Promise((resolve) => {
        const prev = existing.resolve;
        existing.resolve = (r) => {
          prev(r);
          resolve(r);
        };
      });
    }
    const reply = new Promise<HostReply | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        resolve(undefined);
      }, waitMs);
      this.waiters.set(key, { resolve, timer });
    });
    this.counters.remoteRequestsSent++;
    try {
      await this.bus.sendToHost(host, 'fence-request', {
        requestId: id,
        originHost: this.self,
        listener: ctx.listener,
        requester: ctx.source ?? '',
        target,
        targetKind: isUuid(target) ? 'uuid' : 'name',
        action,
        deadline: ctx.deadline - margin,
        toHost: host,
        fenceSeqno: ctx.seqno >>> 0,
      });
    } catch (err) {
      this.log.warn('fence-request-send-failed', { request: id, to: host, error: errText(err) });
      this.settle(key, { code: Response.FAIL, reason: RouteReason.brokerUnavailable, state: null });
    }
    return reply;
  }

  private settle(key: string, reply: HostReply | undefined): boolean {
    const w = this.waiters.get(key);
    if (!w) return false;
    clearTimeout(w.timer);
    this.waiters.delete(key);
    w.resolve(reply);
    return true;
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
      let out: FenceOutcome;
      try {
        out = await this.local.fence(action, target, { id, listener, source, seqno: 0, deadline });
      } catch (err) {
        out = { code: Response.FAIL, reason: `local-error: ${errText(err)}` };
      }
      // status answers its own question; the power actions are checked with a live lookup.
      const after =
        action === 'status'
          ? await this.stateFromStatus(out, target)
          : await this.liveState(target, deadline);
      const result: Execution = {
        cache: action !== 'status',
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
        if (message.type === 'announce')
          this.log.info('host-announced', {
            peer: b.host,
            epoch: b.epoch,
            listeners: b.listeners.join(','),
          });
        break;
      }
      case 'vm-event':
        this.table.applyVmEvent(message.body, now);
        break;
      case 'inventory': {
        const b = message.body;
        const known = this.inventoryEpochs.get(b.host);
        if (this.table.applyInventory(b, now) === 'applied' && known !== b.epoch) {
          this.inventoryEpochs.set(b.host, b.epoch);
          this.log.info('peer-inventory', { peer: b.host, epoch: b.epoch, vms: b.vms.length });
        }
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
        const b = message.body;
        const key = receivedReplyKey(message);
        if (key === undefined) {
          this.counters.repliesUnmatched++;
          break;
        }
        const ok = this.settle(key, {
          code: b.code,
          reason: b.reason,
          state: b.vmState,
        });
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

  private onConnectionChange(up: boolean): void {
    this.log.info('bus-connection', { up });
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.connectedSince = up ? this.now() : undefined;
    if (up) {
      this.syncTimer = setTimeout(() => {
        this.log.info('synced', { hosts: this.table.knownHosts().join(',') });
      }, this.settleMs);
      this.syncTimer.unref?.();
    }
    if (!up) {
      // Requests in flight can no longer be answered reliably: fail them now (never success).
      for (const key of [...this.waiters.keys()]) {
        this.settle(key, {
          code: Response.FAIL,
          reason: RouteReason.brokerUnavailable,
          state: null,
        });
      }
      return;
    }
    if (this.started) void this.announce('connected');
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
