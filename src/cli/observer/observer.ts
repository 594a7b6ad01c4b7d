/**
 * The CLI's view of a cluster: a ClusterBus with an observer id (it owns no VM and executes
 * nothing), plus everything it hears on the fan-out, replayable into the same ownership
 * table the daemons keep (src/routing). Optionally a firehose tap (firehose.ts) for the fence
 * requests and replies that travel between hosts' private queues.
 */
import { randomInt } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { ClusterBus, bodyText, type BusDelivery } from '../../amqp/bus.js';
import type { FenceAction } from '../../backends/backend.js';
import type { FenceReplyBody, HostFencedBody, Message } from '../../messages/schemas.js';
import { verifyMessage } from '../../messages/sign.js';
import { expandAddress } from '../../amqp/profiles.js';
import { openTap, type Tap } from './tap.js';
import { requestId as ledgerRequestId } from '../../routing/ledger.js';
import { decideRoute, type RouteDecision } from '../../routing/route.js';
import { FenceOrigin } from '../../backends/amqp/fence-origin.js';
import { systemClock } from '../../backends/amqp/clock.js';
import { OwnershipTable, type LivenessOptions } from '../../routing/table.js';
import type { FenceOutcome } from '../../backends/backend.js';
import type { BrokerSettings } from './settings.js';
import { compactInputs, type CacheContent } from './cache.js';
import type {
  ObservedHost,
  ObservedVmEvent,
  TableInput,
  TraceListener,
  TraceSource,
} from './types.js';
import { errText } from '../../util/errors.js';

export type { ObservedHost, ObservedVmEvent, TableInput, TraceListener, TraceSource };

/** Bounds for long-running traces. */
const MAX_SEEN = 50_000;
const MAX_INPUTS = 20_000;

/** Why the observer could not do its job (one line for the user). */
export class ObserverError extends Error {
  constructor(
    message: string,
    readonly kind: 'broker-unreachable' | 'send-failed' | 'other' = 'other',
  ) {
    super(message);
    this.name = 'ObserverError';
  }
}

export interface HostReplyRecord {
  host: string;
  code: number;
  reason: string;
  vmState: number | null;
  /** Request sent → reply received, our clock. */
  latencyMs: number;
  timings: FenceReplyBody['timings'];
}

export interface FenceResult {
  requestId: string;
  decision: RouteDecision;
  /** The combined answer (the daemons' rules: combineReplies). */
  outcome: FenceOutcome;
  /** One per host the request went to; `undefined` reply: none before the deadline. */
  replies: Array<{ host: string; reply: HostReplyRecord | undefined }>;
  sent: boolean;
}

export class ClusterObserver {
  readonly bus: ClusterBus;
  readonly hosts = new Map<string, ObservedHost>();
  readonly lastEvents = new Map<string, ObservedVmEvent>();
  /** Rejections whose sender could not be read at all. */
  anonymousRejections = 0;
  private inputs: TableInput[] = [];
  private readonly traceListeners = new Set<TraceListener>();
  private readonly seen = new Set<string>();
  /** The origin side of `fence`, shared with the daemons (src/backends/amqp/fence-origin.ts). */
  private readonly origin: FenceOrigin;
  private started = false;
  private verifyTap: Tap | undefined;

  constructor(
    readonly settings: BrokerSettings,
    /** Only `fence` waits for replies; other commands attach no queue of their own. */
    options: { replyQueue?: boolean } = {},
  ) {
    const a = settings.amqp;
    this.bus = new ClusterBus({
      urls: a.urls,
      hostId: settings.observerId,
      cluster: a.cluster,
      key: settings.key,
      profile: settings.profile,
      ...(a.username !== undefined ? { username: a.username } : {}),
      ...(settings.password !== undefined ? { password: settings.password } : {}),
      tls: a.tls,
      ...(settings.ca !== undefined ? { ca: settings.ca } : {}),
      containerId: 'virtfence-cli',
      idleTimeoutMs: a.idleTimeout,
      maxReconnectDelayMs: Math.min(a.maxReconnectDelay, 1000),
      sendTimeoutMs: a.sendTimeout,
      queues: { request: false, reply: options.replyQueue ?? false },
    });
    this.bus.onMessage((d) => this.onDelivery(d));
    this.origin = new FenceOrigin({
      self: settings.observerId,
      clock: systemClock,
      send: async (host, body) => {
        const message = this.bus.create('fence-request', body);
        this.accept(message, 'reply', Date.now());
        await this.bus.sendToHost(host, message);
      },
      liveness: (host, at) => this.table().livenessOf(host, at),
      deadAfterMs: settings.amqp.deadAfter,
      checkEveryMs: 1000,
    });
  }

  get liveness(): { heartbeatIntervalMs: number; deadAfterMs: number } {
    return {
      heartbeatIntervalMs: this.settings.amqp.heartbeatInterval,
      deadAfterMs: this.settings.amqp.deadAfter,
    };
  }

  /** Connects; a broker that cannot be reached within the connect timeout is an error. */
  async start(): Promise<void> {
    this.started = true;
    try {
      await this.bus.start({ timeoutMs: this.settings.connectTimeoutMs });
    } catch (error) {
      const stats = this.bus.stats();
      await this.bus.stop().catch(() => undefined);
      const urls = this.settings.amqp.urls.map(safeUrl).join(', ');
      const why = stats.lastError ?? errText(error);
      throw new ObserverError(`broker unreachable: ${urls} (${why})`, 'broker-unreachable');
    }
  }

  /**
   * Opens a second, read-only receiver on the fan-out and verifies every message itself, to
   * count per sender what verifies with our key and what does not (the bus only hands out
   * verified messages). The sender of a failed message is read from its unverified envelope
   * and used for nothing but this count.
   */
  async startVerifyTap(): Promise<void> {
    const address = expandAddress(this.settings.profile.eventSubscribeAddress, {
      cluster: this.settings.amqp.cluster,
      host: this.settings.observerId,
    });
    const tap = openTap(
      this.settings,
      address,
      (body) => this.countVerification(body),
      this.settings.connectTimeoutMs,
      'verify',
      this.bus.stats().url,
    );
    this.verifyTap = tap;
    try {
      await tap.ready;
    } catch (error) {
      throw new ObserverError(
        `cannot attach to ${address}: ${errText(error)}`,
        'broker-unreachable',
      );
    }
  }

  private countVerification(body: unknown): void {
    const text = bodyText(body);
    if (text === undefined) {
      this.anonymousRejections++;
      return;
    }
    const r = verifyMessage(text, this.settings.key, { cluster: this.settings.amqp.cluster });
    if (r.ok) {
      if (r.message.from !== this.settings.observerId) this.host(r.message.from).verified++;
      return;
    }
    if (r.from === undefined) {
      this.anonymousRejections++;
      return;
    }
    const h = this.host(r.from);
    h.rejected[r.reason] = (h.rejected[r.reason] ?? 0) + 1;
  }

  /** Asks every host (or one) for an inventory now instead of waiting for changes. */
  async requestResync(target?: string): Promise<void> {
    const body = { reason: 'virtfence-cli', ...(target !== undefined ? { target } : {}) };
    try {
      await this.bus.publish(this.bus.create('resync-request', body));
    } catch (error) {
      throw new ObserverError(`cannot publish a resync request: ${errText(error)}`, 'send-failed');
    }
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.origin.stop();
    await this.verifyTap?.close();
    await this.bus.stop();
  }

  onTrace(listener: TraceListener): () => void {
    this.traceListeners.add(listener);
    return () => this.traceListeners.delete(listener);
  }

  /** A message from another source (the firehose tap), already verified. */
  ingest(message: Message, source: TraceSource, receivedAt: number): void {
    this.accept(message, source, receivedAt);
  }

  /** The ownership table as host `self` (or the observer, owning nothing) would see it. */
  table(self: string = this.settings.observerId): OwnershipTable {
    return replayInputs(this.inputs, self, this.liveness);
  }

  /** Replays what an earlier run heard (cache.ts) before listening. */
  restore(content: CacheContent): void {
    this.inputs.push(...content.inputs);
    for (const h of content.hosts) this.hosts.set(h.id, { ...h, verified: 0, rejected: {} });
    for (const e of content.events) this.lastEvents.set(e.uuid, e);
  }

  /** What to keep for the next run. */
  snapshot(): CacheContent {
    return {
      inputs: [...this.inputs],
      hosts: [...this.hosts.values()].filter((h) => h.id !== this.settings.observerId),
      events: [...this.lastEvents.values()],
    };
  }

  host(id: string): ObservedHost {
    let h = this.hosts.get(id);
    if (!h) {
      h = {
        id,
        status: undefined,
        statusType: undefined,
        lastStatusAt: undefined,
        verified: 0,
        rejected: {},
        evidence: undefined,
      };
      this.hosts.set(id, h);
    }
    return h;
  }

  // ------------------------------------------------------------------------------------
  // Acting

  /**
   * Sends a signed fence request to the host(s) the routing code names, exactly as a daemon
   * would (their request queues, our reply queue), and combines the replies with the daemons'
   * rules. Decisions that execute nowhere (unknown VM, dead or fenced owner) send nothing.
   */
  async fence(target: string, action: FenceAction, timeoutMs: number): Promise<FenceResult> {
    const now = Date.now();
    const table = this.table();
    const decision = decideRoute(table, target, now, action);
    const seqno = randomInt(1, 0xffffffff);
    const id = ledgerRequestId({ action, seqno, target });
    const deadline = now + timeoutMs;
    const r = await this.origin.run({
      id,
      action,
      target,
      decision,
      waitUntil: deadline,
      requestDeadline: deadline,
      listener: 'virtfence-cli',
      requester: operatorName(),
      seqno,
    });
    return {
      requestId: id,
      decision,
      outcome: r.outcome,
      replies: r.replies.map((x) => ({
        host: x.host,
        reply: x.reply
          ? {
              host: x.host,
              code: x.reply.code,
              reason: x.reply.reason,
              vmState: x.reply.state,
              latencyMs: x.reply.latencyMs,
              timings: x.reply.timings ?? { received: 0, finished: 0 },
            }
          : undefined,
      })),
      sent: r.sent,
    };
  }

  /** Publishes signed evidence that `host` was fenced, as an operator or fencing hook. */
  async publishHostFenced(body: HostFencedBody): Promise<Message> {
    const message = this.bus.create('host-fenced', body);
    try {
      await this.bus.publish(message);
    } catch (error) {
      throw new ObserverError(
        `evidence not accepted by the broker: ${errText(error)}`,
        'send-failed',
      );
    }
    return message;
  }

  // ------------------------------------------------------------------------------------
  // Hearing

  private onDelivery(d: BusDelivery): void {
    this.accept(d.message, d.via === 'reply' ? 'reply' : 'fanout', d.receivedAt);
  }

  private accept(message: Message, source: TraceSource, at: number): void {
    const key = `${message.from}\u0000${message.id}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.seen.size > MAX_SEEN) {
      // A long trace: forget the oldest ids (copies arrive within moments of each other).
      for (const old of this.seen) {
        this.seen.delete(old);
        if (this.seen.size <= MAX_SEEN / 2) break;
      }
    }
    if (this.inputs.length > MAX_INPUTS) this.inputs = compactInputs(this.inputs);
    switch (message.type) {
      case 'heartbeat':
      case 'announce': {
        const b = message.body;
        const h = this.host(b.host);
        h.status = b;
        h.statusType = message.type;
        h.lastStatusAt = at;
        this.inputs.push({
          kind: 'heartbeat',
          v: { host: b.host, epoch: b.epoch, seq: b.seq, sentAt: message.ts },
          at,
        });
        break;
      }
      case 'vm-event': {
        const b = message.body;
        this.inputs.push({ kind: 'event', v: b, at });
        this.lastEvents.set(b.uuid.toLowerCase(), {
          uuid: b.uuid.toLowerCase(),
          name: b.name,
          host: b.host,
          event: b.event,
          detail: b.detail,
          state: b.state,
          receivedAt: at,
        });
        break;
      }
      case 'inventory':
        this.inputs.push({ kind: 'inventory', v: message.body, at });
        break;
      case 'host-fenced': {
        const b = message.body;
        this.inputs.push({ kind: 'evidence', v: b, at });
        this.host(b.host).evidence = { ...b, publishedBy: message.from, receivedAt: at };
        break;
      }
      case 'fence-reply': {
        this.origin.deliver(message, at);
        break;
      }
      default:
        break;
    }
    this.emitTrace(message, source, at);
  }

  private emitTrace(message: Message, source: TraceSource, at: number): void {
    for (const l of this.traceListeners) l(message, source, at);
  }
}

export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

export { errText };

/** An ownership table built from recorded inputs, in order (what the daemons did live). */
export function replayInputs(
  inputs: readonly TableInput[],
  self: string,
  liveness: LivenessOptions,
): OwnershipTable {
  const t = new OwnershipTable(self, liveness);
  for (const input of inputs) {
    switch (input.kind) {
      case 'event':
        t.applyVmEvent(input.v, input.at);
        break;
      case 'inventory':
        t.applyInventory(input.v, input.at);
        break;
      case 'heartbeat':
        t.applyHeartbeat(input.v, input.at);
        break;
      case 'evidence':
        t.applyEvidence(input.v, input.at);
        break;
    }
  }
  return t;
}

/** Who asked, for the executing host's log: `operator:<user>@<hostname>`. */
export function operatorName(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry
  }
  return `operator:${user}@${hostname()}`.slice(0, 256);
}
