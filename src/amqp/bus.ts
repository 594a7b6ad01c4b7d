/**
 * The cluster bus: one AMQP 1.0 connection per host (rhea), carrying signed cluster messages.
 *
 * - publish(): fan-out to every host (events, heartbeats, inventories, host-fenced).
 * - sendToHost(): to one host's request queue. sendReply()/reply(): to a host's reply queue
 *   (or the dynamic reply address the request carried, on profiles that use those).
 *   Fence requests and their replies carry an AMQP ttl equal to the time left before the
 *   request's deadline, so a broker drops them once they are useless.
 * - Every send is judged by its outcome (sender.ts): accepted, or a BusSendError.
 *   Nothing is queued while disconnected.
 * - onMessage() delivers only verified messages (sign.ts); the rest are dropped, counted and
 *   logged. Our own fan-out messages come back flagged `self: true`.
 * - Any connection, session or link error tears the whole connection down and builds a new
 *   one (connection.ts: fresh container id, next URL of the failover list, backoff). A link
 *   the broker answers without a terminus is a refusal, not an attached link. Refused
 *   credentials are not retried forever (errors.ts keeps every cause). rhea's own reconnect is
 *   off: after a graceful RabbitMQ shutdown it re-attaches no link (pitfalls 1, 5 and 7 of
 *   docs/brokers.md §2).
 */
import { randomUUID } from 'node:crypto';
import rhea from 'rhea';
import type {
  Connection,
  Container,
  Delivery,
  EventContext,
  Message as AmqpMessage,
  Receiver,
  Sender,
} from 'rhea';
import {
  MessageFactory,
  MessageVerifier,
  encodeMessage,
  type RejectReason,
  type VerifyCounters,
} from '../messages/sign.js';
import type { BodyOf, Message, MessageOf, MessageType } from '../messages/schemas.js';
import { silentLogger, type Logger } from '../util/logger.js';
import {
  ReconnectBackoff,
  abortSocket,
  attachRefused,
  connectionOptions,
  peerOffers,
  safeUrl,
} from './connection.js';
import {
  BusConnectionError,
  BusSendError,
  connectionFailure,
  errorText,
  type BusFailureKind,
  type BusSendFailure,
} from './errors.js';
import { PROFILES_REQUIRING_USERNAME } from '../config/plugins/backends.js';
import { expandAddress, type AddressProfile } from './profiles.js';
import { AwaitableSender, type SendOutcome } from './sender.js';

export { BusConnectionError, BusSendError, type BusSendFailure } from './errors.js';

export type BusVia = 'fanout' | 'request' | 'reply';

export interface BusDelivery {
  message: Message;
  /** Our own message, echoed by the fan-out. */
  self: boolean;
  via: BusVia;
  /** The AMQP reply-to of the delivery (dynamic reply profiles only). */
  replyTo: string | undefined;
  receivedAt: number;
}

export interface ConnectionChange {
  connected: boolean;
  /** True on a connection after the first one: the routing layer should resync. */
  reconnected: boolean;
  url: string;
  /** AMQP container id of this connection (unique per connection). */
  containerId: string;
  reason: string | undefined;
  /** The failure, with its AMQP condition, when the connection was lost to one. */
  error?: BusConnectionError;
  /** The bus stopped trying (credentials refused again and again): only stop() follows. */
  gaveUp?: boolean;
}

export interface ClusterBusOptions {
  /** Failover list, tried in order. amqp:// or amqps:// */
  urls: string[];
  hostId: string;
  cluster: string;
  /** Cluster key (raw key file bytes). */
  key: Uint8Array;
  profile: AddressProfile;
  username?: string;
  password?: string;
  /** TLS (also implied by amqps://). */
  tls?: boolean;
  ca?: Buffer;
  /** Container id prefix: each connection's id is `<prefix>-<host>-<n>-<random>`. Default
   *  "virtfence". */
  containerId?: string;
  /** AMQP idle time-out we announce, ms (0: none). Default 5000. */
  idleTimeoutMs?: number;
  /** Reconnect backoff: 100 ms doubling up to this. Default 2000. */
  maxReconnectDelayMs?: number;
  /** How long a send may wait for its outcome. Default 5000. */
  sendTimeoutMs?: number;
  /** Time to attach every link after the connection opens. Default 10000. */
  linkTimeoutMs?: number;
  /** Connection attempts whose credentials are refused before the bus gives up. Default 3. */
  authAttempts?: number;
  /** Message acceptance window, ms. Default 30000. */
  windowMs?: number;
  replayCapacity?: number;
  /** Boot epoch for messages built with create(). Default: now. */
  epoch?: number;
  logger?: Logger;
  /** Per-host senders unused this long are closed. Default 60000. */
  senderIdleMs?: number;
  /**
   * Which of this member's own queues to attach (default both). An observer that only listens
   * attaches neither, so it leaves no durable queue behind on the broker.
   */
  queues?: { request: boolean; reply: boolean };
}

export interface SendOptions {
  /** AMQP header ttl, ms. Default for fence requests and replies: the time left before the
   *  request's deadline. */
  ttlMs?: number;
  /** AMQP header durable: the broker keeps the message across its restart (queues only).
   *  Default: the profile's durableSends for sendToHost/sendReply/reply, false for publish. */
  durable?: boolean;
}

export interface BusStats {
  connected: boolean;
  url: string | undefined;
  containerId: string | undefined;
  connects: number;
  reconnects: number;
  disconnects: number;
  /** Connection attempts that failed before every link was attached. */
  failedAttempts: number;
  lastError: string | undefined;
  /** The kind of the last connection failure (auth, refused, transport, …). */
  lastFailure: BusFailureKind | undefined;
  /** The bus stopped retrying (refused credentials). */
  gaveUp: boolean;
  sent: Record<SendOutcome, number>;
  received: Record<BusVia, number>;
  verify: VerifyCounters;
  /** Deliveries that were not a readable message body at all. */
  undecodable: number;
  /** Per-address senders currently open besides the fan-out sender (closed when idle). */
  addressSenders: number;
  listenerErrors: number;
}

type MessageListener = (delivery: BusDelivery) => void;
type ConnectionListener = (change: ConnectionChange) => void;

/** One connection attempt with everything attached to it. */
interface Generation {
  n: number;
  url: string;
  containerId: string;
  container: Container;
  conn: Connection;
  senders: Map<string, AwaitableSender>;
  anonymous: AwaitableSender | undefined;
  receivers: Map<Receiver, BusVia>;
  /** Links we closed ourselves: their close events are not errors. */
  closing: WeakSet<object>;
  openLinks: number;
  linksNeeded: number;
  ready: boolean;
  dead: boolean;
  dynamicReplyAddress: string | undefined;
  linkTimer: NodeJS.Timeout | undefined;
}

/** What an address is, for the terminus we attach with. */
type NodeKind = 'event' | 'queue' | 'plain';
const DROP_LOG_INTERVAL_MS = 10_000;
/** A refused attach is followed by a detach naming the reason; wait this long for it. */
const REFUSAL_DETAIL_MS = 300;

/** The text body of a delivery (string, or a data section holding UTF-8). */
export function bodyText(body: unknown): string | undefined {
  if (typeof body === 'string') return body;
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  if (body && typeof body === 'object' && 'content' in body) {
    const content = body.content;
    if (Buffer.isBuffer(content)) return content.toString('utf8');
    if (typeof content === 'string') return content;
  }
  return undefined;
}

/** Time left before a fence request's deadline, as an AMQP ttl (at least 1 ms). */
function ttlUntil(deadline: number): number {
  return Math.max(1, Math.round(deadline - Date.now()));
}

export class ClusterBus {
  readonly hostId: string;
  readonly cluster: string;
  readonly profile: AddressProfile;
  /** Builds signed messages from this host (seq, ts, id, sig filled in). */
  readonly messages: MessageFactory;

  private readonly options: Required<
    Pick<
      ClusterBusOptions,
      | 'idleTimeoutMs'
      | 'maxReconnectDelayMs'
      | 'sendTimeoutMs'
      | 'linkTimeoutMs'
      | 'senderIdleMs'
      | 'authAttempts'
    >
  >;
  private readonly verifier: MessageVerifier;
  private readonly log: Logger;
  private readonly messageListeners = new Set<MessageListener>();
  private readonly skewListeners = new Set<(from: string) => void>();
  private readonly connectionListeners = new Set<ConnectionListener>();
  private readonly backoff: ReconnectBackoff;
  private gen: Generation | undefined;
  private generations = 0;
  private urlIndex = 0;
  private everConnected = false;
  private running = false;
  private gaveUp = false;
  private lastFailure: BusConnectionError | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly counters = {
    connects: 0,
    reconnects: 0,
    disconnects: 0,
    failedAttempts: 0,
    lastError: undefined as string | undefined,
    sent: {
      accepted: 0,
      'not-connected': 0,
      released: 0,
      rejected: 0,
      modified: 0,
      timeout: 0,
      disconnected: 0,
      stopped: 0,
    } as Record<SendOutcome, number>,
    received: { fanout: 0, request: 0, reply: 0 },
    undecodable: 0,
    listenerErrors: 0,
  };
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private readonly dropLog = new Map<
    RejectReason | 'undecodable-body',
    { at: number; suppressed: number }
  >();

  constructor(private readonly config: ClusterBusOptions) {
    if (config.urls.length === 0) throw new Error('ClusterBus: no broker URL');
    for (const url of config.urls) {
      const protocol = new URL(url).protocol;
      if (protocol !== 'amqp:' && protocol !== 'amqps:')
        throw new Error(`ClusterBus: not an AMQP URL: ${url}`);
    }
    if (
      PROFILES_REQUIRING_USERNAME.includes(config.profile.name) &&
      !config.username &&
      !this.urlHasUser()
    ) {
      throw new Error(`ClusterBus: profile ${config.profile.name} needs a username`);
    }
    this.hostId = config.hostId;
    this.cluster = config.cluster;
    this.profile = config.profile;
    this.options = {
      idleTimeoutMs: config.idleTimeoutMs ?? 5000,
      maxReconnectDelayMs: config.maxReconnectDelayMs ?? 2000,
      sendTimeoutMs: config.sendTimeoutMs ?? 5000,
      linkTimeoutMs: config.linkTimeoutMs ?? 10_000,
      senderIdleMs: config.senderIdleMs ?? 60_000,
      authAttempts: config.authAttempts ?? 3,
    };
    // A connection is established once it stayed up for one maximum backoff (at least 1 s).
    this.backoff = new ReconnectBackoff(
      this.options.maxReconnectDelayMs,
      Math.max(1000, this.options.maxReconnectDelayMs),
      this.options.authAttempts,
    );
    this.verifier = new MessageVerifier(config.key, config.cluster, {
      windowMs: config.windowMs,
      replayCapacity: config.replayCapacity,
    });
    this.messages = new MessageFactory({
      cluster: config.cluster,
      hostId: config.hostId,
      key: config.key,
      epoch: config.epoch,
    });
    this.log = (config.logger ?? silentLogger).child({
      component: 'amqp-bus',
      host: config.hostId,
    });
  }

  private urlHasUser(): boolean {
    return this.config.urls.every((u) => new URL(u).username !== '');
  }

  // -------------------------------------------------------------------------------------
  // Public API

  get connected(): boolean {
    return this.gen?.ready === true;
  }

  /** Address helpers (also for tests and diagnostics). */
  requestAddressOf(hostId: string): string {
    return expandAddress(this.profile.requestAddress, { cluster: this.cluster, host: hostId });
  }

  replyAddressOf(hostId: string): string {
    return expandAddress(this.profile.replyAddress, { cluster: this.cluster, host: hostId });
  }

  get eventAddress(): string {
    return expandAddress(this.profile.eventAddress, { cluster: this.cluster, host: this.hostId });
  }

  /** A signed message from this host. */
  create<T extends MessageType>(type: T, body: BodyOf<T>): MessageOf<T> {
    return this.messages.create(type, body);
  }

  /**
   * Connects. Resolves once every link is attached; with `wait: false` at once. On timeout
   * it rejects but keeps trying in the background until stop(); once the bus gives up
   * (credentials refused) it rejects with that BusConnectionError.
   */
  async start(options: { wait?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (!this.running) {
      this.running = true;
      this.gaveUp = false;
      this.sweepTimer = setInterval(
        () => this.sweepIdleSenders(),
        Math.max(1000, this.options.senderIdleMs / 2),
      );
      this.sweepTimer.unref();
      this.connect();
    }
    if (options.wait === false) return;
    await this.whenConnected(options.timeoutMs ?? 30_000);
  }

  /** Resolves when the bus is (or becomes) connected; rejects after timeoutMs. */
  whenConnected(timeoutMs: number): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.gaveUp && this.lastFailure) return Promise.reject(this.lastFailure);
    if (!this.running) return Promise.reject(new Error('ClusterBus is not running'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== waiter);
        reject(
          new Error(
            `ClusterBus: not connected after ${timeoutMs} ms (${this.counters.lastError ?? 'no error'})`,
          ),
        );
      }, timeoutMs);
      this.readyWaiters.push(waiter);
    });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.reconnectTimer = undefined;
    this.sweepTimer = undefined;
    this.rejectWaiters(new Error('ClusterBus stopped'));
    const gen = this.gen;
    if (!gen || gen.dead) return;
    const wasReady = gen.ready;
    this.retire(gen, 'stopped', 'stopped');
    await this.closeGracefully(gen);
    if (wasReady)
      this.emitConnection({
        connected: false,
        reconnected: false,
        url: gen.url,
        containerId: gen.containerId,
        reason: 'stopped',
      });
  }

  /** Fan-out to every host (ourselves included). */
  publish(message: Message, options: SendOptions = {}): Promise<void> {
    const refused = this.foreign(message);
    if (refused) return refused;
    return this.send(this.eventAddress, 'event', message, options);
  }

  /** To one host's request queue. Fence requests carry our reply address as reply-to and a
   *  ttl until their deadline. */
  sendToHost(hostId: string, message: Message, options: SendOptions = {}): Promise<void> {
    const refused = this.foreign(message);
    if (refused) return refused;
    return this.send(
      this.requestAddressOf(hostId),
      'queue',
      message,
      {
        durable: this.profile.durableSends === true,
        ...(message.type === 'fence-request' ? { ttlMs: ttlUntil(message.body.deadline) } : {}),
        ...options,
      },
      true,
    );
  }

  /** To one host's reply queue (named-reply profiles). */
  sendReply(hostId: string, message: Message, options: SendOptions = {}): Promise<void> {
    const refused = this.foreign(message);
    if (refused) return refused;
    return this.send(this.replyAddressOf(hostId), 'queue', message, {
      durable: this.profile.durableSends === true,
      ...options,
    });
  }

  /** Answers a delivered request: to its dynamic reply-to if the profile uses those, else to
   *  the sender's named reply queue. A reply to a fence request lives until its deadline. */
  reply(to: BusDelivery, message: Message, options: SendOptions = {}): Promise<void> {
    const refused = this.foreign(message);
    if (refused) return refused;
    const request = to.message;
    const withTtl: SendOptions =
      request.type === 'fence-request'
        ? { ttlMs: ttlUntil(request.body.deadline), ...options }
        : options;
    if (this.profile.dynamicReply && to.replyTo) {
      return this.send(to.replyTo, 'plain', message, {
        durable: this.profile.durableSends === true,
        ...withTtl,
      });
    }
    return this.sendReply(request.from, message, withTtl);
  }

  onMessage(listener: MessageListener): () => void {
    this.messageListeners.add(listener);
    return () => this.messageListeners.delete(listener);
  }

  /**
   * Signed messages refused only for their timestamp: the sender (authenticated by the
   * signature, which is checked first) exists but its clock is outside the window.
   */
  onOutOfWindow(listener: (from: string) => void): () => void {
    this.skewListeners.add(listener);
    return () => this.skewListeners.delete(listener);
  }

  onConnectionChange(listener: ConnectionListener): () => void {
    this.connectionListeners.add(listener);
    return () => this.connectionListeners.delete(listener);
  }

  /** Called after every reconnect (not the first connect): time to resync. */
  onReconnected(listener: () => void): () => void {
    return this.onConnectionChange((c) => {
      if (c.connected && c.reconnected) listener();
    });
  }

  stats(): BusStats {
    return {
      connected: this.connected,
      url: this.gen?.url,
      containerId: this.gen?.containerId,
      connects: this.counters.connects,
      reconnects: this.counters.reconnects,
      disconnects: this.counters.disconnects,
      failedAttempts: this.counters.failedAttempts,
      lastError: this.counters.lastError,
      lastFailure: this.lastFailure?.kind,
      gaveUp: this.gaveUp,
      sent: { ...this.counters.sent },
      received: { ...this.counters.received },
      verify: { ...this.verifier.counters },
      undecodable: this.counters.undecodable,
      addressSenders: this.gen ? [...this.gen.senders.values()].filter((e) => !e.pinned).length : 0,
      listenerErrors: this.counters.listenerErrors,
    };
  }

  // -------------------------------------------------------------------------------------
  // Connection management

  private connect(): void {
    if (!this.running) return;
    const url = this.config.urls[this.urlIndex % this.config.urls.length] as string;
    const n = ++this.generations;
    const prefix = this.config.containerId ?? 'virtfence';
    const containerId = `${prefix}-${this.hostId}-${n}-${randomUUID().slice(0, 8)}`;
    const container = rhea.create_container({ id: containerId });
    const hostname =
      this.profile.openHostname !== undefined
        ? expandAddress(this.profile.openHostname, { cluster: this.cluster, host: this.hostId })
        : undefined;
    const options = connectionOptions({
      url,
      containerId,
      username: this.config.username,
      password: this.config.password,
      tls: this.config.tls === true,
      ca: this.config.ca,
      idleTimeoutMs: this.options.idleTimeoutMs,
      hostname,
    });

    const gen: Generation = {
      n,
      url,
      containerId,
      container,
      conn: undefined as unknown as Connection,
      senders: new Map(),
      anonymous: undefined,
      receivers: new Map(),
      closing: new WeakSet(),
      openLinks: 0,
      linksNeeded: 0,
      ready: false,
      dead: false,
      dynamicReplyAddress: undefined,
      linkTimer: undefined,
    };
    this.gen = gen;
    // Errors rhea emits straight on the container when nothing handles them.
    container.on('error', (err: unknown) =>
      this.fail(gen, connectionFailure('container error', err, 'protocol')),
    );
    this.log.debug('amqp-connecting', { url: safeUrl(url), container: containerId });
    try {
      gen.conn = container.connect(options);
    } catch (err) {
      this.fail(gen, connectionFailure('connect', err, 'transport'));
      return;
    }
    this.wire(gen);
  }

  private wire(gen: Generation): void {
    const conn = gen.conn;
    const on = (event: string, handler: (ctx: EventContext) => void) =>
      conn.on(event, (ctx: EventContext) => {
        if (gen.dead) return;
        try {
          handler(ctx);
        } catch (err) {
          this.fail(gen, connectionFailure(`handler ${event}`, err, 'protocol'));
        }
      });
    /** rhea puts a connection failure in ctx.error (SASL, transport), or in the close frame. */
    const connectionError = (ctx: EventContext): unknown => {
      const c = ctx as unknown as { error?: unknown; connection?: { error?: unknown } };
      return c.error ?? c.connection?.error ?? conn.get_error?.();
    };

    on('connection_open', () => this.openLinks(gen));
    on('connection_error', (ctx) =>
      this.fail(gen, connectionFailure('connection error', connectionError(ctx), 'refused')),
    );
    on('connection_close', (ctx) =>
      this.fail(gen, connectionFailure('connection closed', connectionError(ctx), 'closed')),
    );
    on('disconnected', (ctx) =>
      this.fail(gen, connectionFailure('disconnected', connectionError(ctx), 'transport')),
    );
    // rhea passes the Error itself (not a context) for frames it cannot read or write.
    on('protocol_error', (ctx) =>
      this.fail(
        gen,
        connectionFailure(
          'protocol error',
          ctx instanceof Error ? ctx : connectionError(ctx),
          'protocol',
        ),
      ),
    );
    on('error', (ctx) =>
      this.fail(
        gen,
        connectionFailure('error', ctx instanceof Error ? ctx : connectionError(ctx), 'protocol'),
      ),
    );
    // A rejected attach ends the whole session on RabbitMQ; after a graceful RabbitMQ shutdown
    // links silently stop. Any session or link trouble rebuilds the connection.
    on('session_error', (ctx) =>
      this.fail(gen, connectionFailure('session error', ctx.session?.error, 'refused', 'link')),
    );
    on('session_close', (ctx) =>
      this.fail(gen, connectionFailure('session closed', ctx.session?.error, 'closed', 'link')),
    );
    on('sender_error', (ctx) => this.linkTrouble(gen, ctx.sender, 'sender error'));
    on('sender_close', (ctx) => this.linkTrouble(gen, ctx.sender, 'sender closed'));
    on('receiver_error', (ctx) => this.linkTrouble(gen, ctx.receiver, 'receiver error'));
    on('receiver_close', (ctx) => this.linkTrouble(gen, ctx.receiver, 'receiver closed'));

    on('sender_open', (ctx) => {
      const entry = this.entryOf(gen, ctx.sender);
      if (attachRefused(ctx.sender, 'sender')) {
        this.refused(gen, `attach of sender to ${entry?.address || '(anonymous)'}`);
        return;
      }
      if (entry?.pinned) this.linkOpened(gen);
    });
    on('receiver_open', (ctx) => {
      const via = ctx.receiver ? gen.receivers.get(ctx.receiver) : undefined;
      if (attachRefused(ctx.receiver, 'receiver')) {
        this.refused(gen, `attach of ${via ?? 'a'} receiver`);
        return;
      }
      if (via === 'reply' && this.profile.dynamicReply) {
        const address = ctx.receiver?.source?.address;
        if (!address) {
          this.fail(
            gen,
            new BusConnectionError('refused', 'dynamic reply', undefined, true, 'no address given'),
          );
          return;
        }
        gen.dynamicReplyAddress = address;
      }
      if (via) this.linkOpened(gen);
    });
    on('sendable', (ctx) => this.entryOf(gen, ctx.sender)?.flush());
    on('accepted', (ctx) => this.settle(gen, ctx, 'accepted'));
    on('released', (ctx) => this.settle(gen, ctx, 'released'));
    on('rejected', (ctx) =>
      this.settle(
        gen,
        ctx,
        'rejected',
        (ctx.delivery?.remote_state as { error?: unknown } | undefined)?.error,
      ),
    );
    on('modified', (ctx) => this.settle(gen, ctx, 'modified'));
    on('settled', (ctx) => this.settle(gen, ctx, 'released', 'settled without outcome'));
    on('message', (ctx) => {
      // One message never costs the link: whatever it throws, it alone is dropped.
      try {
        this.receive(gen, ctx);
      } catch (err) {
        this.drop('fanout', 'malformed', errorText(err));
        ctx.delivery?.reject({ condition: 'amqp:internal-error', description: 'malformed' });
      }
    });
  }

  /**
   * An attach answered without a terminus: a refusal. The broker's detach right after names
   * the reason (and fails the generation through linkTrouble); without one, fail anyway.
   */
  private refused(gen: Generation, what: string): void {
    const timer = setTimeout(
      () =>
        this.fail(
          gen,
          new BusConnectionError('refused', what, undefined, true, 'refused by the broker'),
        ),
      REFUSAL_DETAIL_MS,
    );
    timer.unref();
  }

  private openLinks(gen: Generation): void {
    const subscribe = expandAddress(this.profile.eventSubscribeAddress, {
      cluster: this.cluster,
      host: this.hostId,
    });
    const receiverOptions = (address: string, kind: NodeKind) => ({
      source: this.terminus(address, kind),
      autoaccept: false,
      credit_window: 500,
    });
    const open = (via: BusVia, options: Parameters<Connection['open_receiver']>[0]) => {
      const receiver = gen.conn.open_receiver(options);
      gen.receivers.set(receiver, via);
      gen.linksNeeded++;
    };
    const queues = this.config.queues ?? { request: true, reply: true };
    open('fanout', receiverOptions(subscribe, 'event'));
    if (queues.request) {
      open('request', receiverOptions(this.requestAddressOf(this.hostId), 'queue'));
    }
    if (queues.reply && this.profile.dynamicReply) {
      open('reply', {
        source: { dynamic: true, address: undefined as unknown as string },
        autoaccept: false,
      });
    } else if (queues.reply) {
      open('reply', receiverOptions(this.replyAddressOf(this.hostId), 'queue'));
    }
    // The fan-out sender is attached up front so the first publish is not slowed by an attach.
    this.senderFor(gen, this.eventAddress, 'event', true);
    gen.linksNeeded++;
    gen.linkTimer = setTimeout(
      () =>
        this.fail(
          gen,
          new BusConnectionError(
            'timeout',
            'attach',
            undefined,
            true,
            `links not attached within ${this.options.linkTimeoutMs} ms`,
          ),
        ),
      this.options.linkTimeoutMs,
    );
  }

  private linkOpened(gen: Generation): void {
    gen.openLinks++;
    if (gen.ready || gen.openLinks < gen.linksNeeded) return;
    if (gen.linkTimer) clearTimeout(gen.linkTimer);
    gen.ready = true;
    this.backoff.connected();
    this.lastFailure = undefined;
    this.counters.connects++;
    const reconnected = this.everConnected;
    if (reconnected) this.counters.reconnects++;
    this.everConnected = true;
    this.log.info(reconnected ? 'amqp-reconnected' : 'amqp-connected', {
      url: safeUrl(gen.url),
      profile: this.profile.name,
      anonymous_relay: peerOffers(gen.conn, 'ANONYMOUS-RELAY'),
    });
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.resolve();
    this.emitConnection({
      connected: true,
      reconnected,
      url: gen.url,
      containerId: gen.containerId,
      reason: undefined,
    });
  }

  private linkTrouble(gen: Generation, link: Sender | Receiver | undefined, what: string): void {
    if (link && gen.closing.has(link)) return;
    const address =
      (link as unknown as { target?: { address?: string }; source?: { address?: string } })?.target
        ?.address ?? (link as unknown as { source?: { address?: string } })?.source?.address;
    this.fail(
      gen,
      connectionFailure(address ? `${what} (${address})` : what, link?.error, 'closed', 'link'),
    );
  }

  /** Ends a generation: fails its sends, schedules the next connection (or gives up). */
  private fail(gen: Generation, error: BusConnectionError): void {
    if (gen.dead || this.gen !== gen) return;
    const wasReady = gen.ready;
    const reason = error.message;
    this.counters.lastError = reason;
    this.lastFailure = error;
    if (!wasReady) this.counters.failedAttempts++;
    this.retire(gen, 'disconnected', reason);
    this.hardClose(gen);
    const delay = this.running ? this.backoff.failed(error) : undefined;
    const gaveUp = this.running && delay === undefined;
    const fields = {
      url: safeUrl(gen.url),
      reason,
      kind: error.kind,
      condition: error.amqp?.condition,
      was_ready: wasReady,
    };
    if (gaveUp) {
      this.log.error('amqp-gave-up', {
        ...fields,
        attempts: this.options.authAttempts,
        hint: 'the broker refused the credentials; fix username/password and restart',
      });
    } else {
      this.log.warn('amqp-connection-lost', fields);
    }
    if (wasReady) this.counters.disconnects++;
    if (wasReady || gaveUp) {
      this.emitConnection({
        connected: false,
        reconnected: false,
        url: gen.url,
        containerId: gen.containerId,
        reason,
        error,
        ...(gaveUp ? { gaveUp: true } : {}),
      });
    }
    if (gaveUp) {
      this.gaveUp = true;
      this.rejectWaiters(error);
      return;
    }
    if (delay !== undefined) this.scheduleReconnect(delay);
  }

  private rejectWaiters(error: Error): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.reject(error);
  }

  private retire(gen: Generation, failure: BusSendFailure, detail: string): void {
    gen.dead = true;
    gen.ready = false;
    if (gen.linkTimer) clearTimeout(gen.linkTimer);
    for (const entry of this.allEntries(gen)) entry.failAll(failure, detail);
  }

  private hardClose(gen: Generation): void {
    try {
      gen.conn?.close();
    } catch {
      // already broken
    }
    const conn = gen.conn;
    const timer = setTimeout(() => abortSocket(conn), 500);
    timer.unref();
  }

  private async closeGracefully(gen: Generation): Promise<void> {
    const conn = gen.conn;
    if (!conn) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, 2000);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      conn.once('connection_close', done);
      conn.once('disconnected', done);
      try {
        conn.close();
      } catch {
        done();
      }
    });
    abortSocket(conn);
  }

  private scheduleReconnect(delay: number): void {
    if (!this.running) return;
    this.urlIndex++;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
  }

  private emitConnection(change: ConnectionChange): void {
    for (const listener of this.connectionListeners) {
      try {
        listener(change);
      } catch (err) {
        this.counters.listenerErrors++;
        this.log.error('amqp-listener-failed', { kind: 'connection', error: errorText(err) });
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // Sending

  /** Our own message, or a reason to refuse it (returned as a rejected send, never thrown). */
  private foreign(message: Message): Promise<never> | undefined {
    if (message.from === this.hostId && message.cluster === this.cluster) return undefined;
    return Promise.reject(
      new Error(`ClusterBus: message from ${message.from}/${message.cluster} is not ours`),
    );
  }

  private allEntries(gen: Generation): AwaitableSender[] {
    const entries = [...gen.senders.values()];
    if (gen.anonymous) entries.push(gen.anonymous);
    return entries;
  }

  private entryOf(gen: Generation, sender: Sender | undefined): AwaitableSender | undefined {
    if (!sender) return undefined;
    if (gen.anonymous?.link === sender) return gen.anonymous;
    for (const entry of gen.senders.values()) if (entry.link === sender) return entry;
    return undefined;
  }

  /**
   * Source/target of a link: capabilities from the profile, and for queues of a
   * durableQueues profile a durable terminus (RabbitMQ 3.x then declares the queue durable,
   * so accepted durable messages survive a broker restart). Every link to a queue must ask
   * the same durability, or RabbitMQ refuses the attach (PRECONDITION_FAILED).
   */
  private terminus(
    address: string,
    kind: NodeKind,
  ): string | { address: string; capabilities?: string[]; durable?: number } {
    const capabilities =
      kind === 'event'
        ? this.profile.eventCapabilities
        : kind === 'queue'
          ? this.profile.queueCapabilities
          : [];
    const durable = kind === 'queue' && this.profile.durableQueues;
    if (!capabilities.length && !durable) return address;
    return {
      address,
      ...(capabilities.length ? { capabilities } : {}),
      ...(durable ? { durable: 1 } : {}),
    };
  }

  private count = (outcome: SendOutcome): void => {
    this.counters.sent[outcome]++;
  };

  private senderFor(
    gen: Generation,
    address: string,
    kind: NodeKind,
    pinned = false,
  ): AwaitableSender {
    const existing = gen.senders.get(address);
    if (existing) return existing;
    const link = gen.conn.open_sender({ target: this.terminus(address, kind), autosettle: true });
    const entry = new AwaitableSender(
      link,
      address,
      pinned,
      this.options.sendTimeoutMs,
      this.count,
    );
    gen.senders.set(address, entry);
    return entry;
  }

  private anonymousSender(gen: Generation): AwaitableSender {
    if (gen.anonymous) return gen.anonymous;
    const link = gen.conn.open_sender({ target: {} as never, autosettle: true });
    gen.anonymous = new AwaitableSender(link, '', true, this.options.sendTimeoutMs, this.count);
    return gen.anonymous;
  }

  private send(
    address: string,
    kind: NodeKind,
    message: Message,
    options: SendOptions,
    withReplyTo = false,
  ): Promise<void> {
    const gen = this.gen;
    if (!this.running) {
      this.counters.sent.stopped++;
      return Promise.reject(new BusSendError('stopped'));
    }
    if (!gen || !gen.ready) {
      this.counters.sent['not-connected']++;
      return Promise.reject(new BusSendError('not-connected', this.counters.lastError));
    }
    const amqp: AmqpMessage = {
      body: encodeMessage(message),
      message_id: message.id,
      subject: message.type,
      content_type: 'application/json',
    };
    if (options.durable) amqp.durable = true;
    if (options.ttlMs !== undefined) amqp.ttl = Math.max(1, Math.round(options.ttlMs));
    if (withReplyTo) {
      amqp.reply_to =
        this.profile.dynamicReply && gen.dynamicReplyAddress
          ? gen.dynamicReplyAddress
          : this.replyAddressOf(this.hostId);
    }
    // Anonymous relay only where the profile trusts the broker's relay to refuse what it
    // cannot deliver (a relay that accepts and drops would turn "accepted" into a lie).
    const useAnonymous =
      this.profile.anonymousRelay &&
      address !== this.eventAddress &&
      peerOffers(gen.conn, 'ANONYMOUS-RELAY');
    let entry: AwaitableSender;
    try {
      if (useAnonymous) {
        entry = this.anonymousSender(gen);
        amqp.to = address;
      } else {
        entry = this.senderFor(gen, address, kind);
      }
    } catch (err) {
      this.counters.sent.disconnected++;
      this.fail(gen, connectionFailure('open sender', err, 'protocol'));
      return Promise.reject(new BusSendError('disconnected', errorText(err)));
    }
    return entry.send(amqp);
  }

  private settle(gen: Generation, ctx: EventContext, outcome: SendOutcome, detail?: unknown): void {
    const delivery: Delivery | undefined = ctx.delivery;
    if (!delivery) return;
    const entry = this.entryOf(gen, ctx.sender);
    if (entry) {
      entry.settle(delivery, outcome, detail);
      return;
    }
    for (const e of this.allEntries(gen)) if (e.settle(delivery, outcome, detail)) return;
  }

  private sweepIdleSenders(): void {
    const gen = this.gen;
    if (!gen || gen.dead) return;
    const cutoff = Date.now() - this.options.senderIdleMs;
    for (const [address, entry] of gen.senders) {
      if (entry.pinned || entry.lastUsed > cutoff || entry.busy) continue;
      gen.senders.delete(address);
      gen.closing.add(entry.link);
      try {
        entry.link.close();
      } catch {
        // the connection is going away anyway
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // Receiving

  private receive(gen: Generation, ctx: EventContext): void {
    const via = ctx.receiver ? gen.receivers.get(ctx.receiver) : undefined;
    const delivery = ctx.delivery;
    if (!via || !ctx.message) {
      delivery?.release();
      return;
    }
    this.counters.received[via]++;
    const text = bodyText(ctx.message.body);
    if (text === undefined) {
      this.counters.undecodable++;
      this.drop(via, 'undecodable-body', 'body is not a JSON string');
      delivery?.reject({
        condition: 'amqp:decode-error',
        description: 'body is not a JSON string',
      });
      return;
    }
    const result = this.verifier.verify(text);
    if (!result.ok) {
      this.drop(via, result.reason, result.detail, result.from, result.id);
      delivery?.reject({ condition: 'amqp:not-allowed', description: result.reason });
      const from = result.from;
      if (result.reason === 'out-of-window' && from !== undefined)
        for (const listener of this.skewListeners) listener(from);
      return;
    }
    delivery?.accept();
    const replyTo = typeof ctx.message.reply_to === 'string' ? ctx.message.reply_to : undefined;
    const out: BusDelivery = {
      message: result.message,
      self: result.message.from === this.hostId,
      via,
      replyTo,
      receivedAt: Date.now(),
    };
    for (const listener of this.messageListeners) {
      try {
        listener(out);
      } catch (err) {
        this.counters.listenerErrors++;
        this.log.error('amqp-listener-failed', {
          kind: 'message',
          type: out.message.type,
          error: errorText(err),
        });
      }
    }
  }

  private drop(
    via: BusVia,
    reason: RejectReason | 'undecodable-body',
    detail: string,
    from?: string,
    id?: string,
  ): void {
    // Every drop is counted (stats().verify); logging is limited to one line per reason per
    // DROP_LOG_INTERVAL_MS so a flood of forged traffic cannot flood the log.
    const now = Date.now();
    const last = this.dropLog.get(reason);
    if (last && now - last.at < DROP_LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.dropLog.set(reason, { at: now, suppressed: 0 });
    this.log.warn('amqp-message-dropped', {
      via,
      reason,
      detail,
      from,
      id,
      suppressed_since_last: suppressed || undefined,
    });
  }
}
