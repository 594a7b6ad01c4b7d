/**
 * The cluster bus: one AMQP 1.0 connection per host (rhea), carrying signed cluster messages.
 *
 * - publish(): fan-out to every host (events, heartbeats, inventories, host-fenced).
 * - sendToHost(): to one host's request queue. sendReply()/reply(): to a host's reply queue
 *   (or the dynamic reply address the request carried, on brokers that support it).
 * - Every send is judged by its outcome: the promise resolves only on `accepted`, and rejects
 *   on released/rejected/modified, on the send timeout, and when the connection drops while
 *   the delivery is unsettled (BusSendError.reason). Nothing is queued while disconnected.
 * - onMessage() delivers only verified messages (sign.ts); the rest are dropped, counted and
 *   logged. Our own fan-out messages come back flagged `self: true`.
 * - Any connection, session or link error tears the whole connection down and builds a new
 *   one (fresh container id, next URL of the failover list, backoff capped at
 *   maxReconnectDelayMs). RabbitMQ pitfalls 1, 5 and 7 of docs/brokers.md §2: rhea's own
 *   reconnect is off because it re-attaches no link after a graceful broker shutdown.
 */
import { randomUUID } from 'node:crypto';
import rhea from 'rhea';
import type {
  Connection,
  ConnectionOptions,
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
import { expandAddress, type AddressProfile } from './profiles.js';
import { errText } from '../util/errors.js';
import { Backoff } from '../util/backoff.js';

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
}

export type BusSendFailure =
  'not-connected' | 'released' | 'rejected' | 'modified' | 'timeout' | 'disconnected' | 'stopped';

export class BusSendError extends Error {
  constructor(
    readonly reason: BusSendFailure,
    detail?: string,
  ) {
    super(detail ? `send failed: ${reason} (${detail})` : `send failed: ${reason}`);
    this.name = 'BusSendError';
  }
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
  /** Container id prefix; a unique suffix is added per connection. */
  containerId?: string;
  /** AMQP idle time-out we announce, ms (0: none). Default 5000. */
  idleTimeoutMs?: number;
  /** Reconnect backoff: 100 ms doubling up to this. Default 2000. */
  maxReconnectDelayMs?: number;
  /** How long a send may wait for its outcome. Default 5000. */
  sendTimeoutMs?: number;
  /** Time to attach every link after the connection opens. Default 10000. */
  linkTimeoutMs?: number;
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
  /** AMQP header ttl, ms (RabbitMQ honours it; absolute expiry is ignored there). */
  ttlMs?: number;
  /** AMQP header durable: the broker keeps the message across its restart (queues only).
   *  Default: true for sendToHost/sendReply/reply, false for publish. */
  durable?: boolean;
}

export interface BusStats {
  connected: boolean;
  url: string | undefined;
  containerId: string | undefined;
  connects: number;
  reconnects: number;
  disconnects: number;
  lastError: string | undefined;
  sent: Record<'accepted' | BusSendFailure, number>;
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

interface Pending {
  resolve: () => void;
  reject: (err: BusSendError) => void;
  timer: NodeJS.Timeout;
}

interface Waiting {
  message: AmqpMessage;
  pending: Pending;
}

interface SenderEntry {
  sender: Sender;
  address: string;
  waiting: Waiting[];
  lastUsed: number;
  /** Not closed when idle. */
  pinned: boolean;
}

/** One connection attempt with everything attached to it. */
interface Generation {
  n: number;
  url: string;
  containerId: string;
  container: Container;
  conn: Connection;
  senders: Map<string, SenderEntry>;
  anonymous: SenderEntry | undefined;
  receivers: Map<Receiver, BusVia>;
  /** Links we closed ourselves: their close events are not errors. */
  closing: WeakSet<object>;
  pending: Map<Delivery, Pending>;
  openLinks: number;
  linksNeeded: number;
  ready: boolean;
  dead: boolean;
  dynamicReplyAddress: string | undefined;
  linkTimer: NodeJS.Timeout | undefined;
}

const INITIAL_RECONNECT_DELAY_MS = 100;

/** What an address is, for the terminus we attach with. */
type NodeKind = 'event' | 'queue' | 'plain';
const DROP_LOG_INTERVAL_MS = 10_000;

/**
 * Drops the socket through rhea's own abort path, which also clears its idle/heartbeat timers
 * (a bare socket.destroy() leaves them running and keeps the process alive).
 */
/** The peer's attach carried no source/target: rhea gives undefined, null or a described
 *  AMQP null (`{ type: Null, value: null }`); a real terminus holds a list of fields. */
function absentTerminus(terminus: unknown): boolean {
  if (terminus === null || terminus === undefined) return true;
  return typeof terminus === 'object' && (terminus as { value?: unknown }).value === null;
}

function abortSocket(conn: Connection | undefined): void {
  const c = conn as unknown as
    { socket?: unknown; abort_socket?: (socket: unknown) => void } | undefined;
  if (!c?.socket) return;
  try {
    c.abort_socket?.(c.socket);
  } catch {
    // the socket is gone already
  }
}

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

export class ClusterBus {
  readonly hostId: string;
  readonly cluster: string;
  readonly profile: AddressProfile;
  /** Builds signed messages from this host (seq, ts, id, sig filled in). */
  readonly messages: MessageFactory;

  private readonly options: Required<
    Pick<
      ClusterBusOptions,
      'idleTimeoutMs' | 'maxReconnectDelayMs' | 'sendTimeoutMs' | 'linkTimeoutMs' | 'senderIdleMs'
    >
  >;
  private readonly verifier: MessageVerifier;
  private readonly log: Logger;
  private readonly messageListeners = new Set<MessageListener>();
  private readonly skewListeners = new Set<(from: string) => void>();
  private readonly connectionListeners = new Set<ConnectionListener>();
  private gen: Generation | undefined;
  private generations = 0;
  private urlIndex = 0;
  private readonly backoff: Backoff;
  private everConnected = false;
  private running = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly counters = {
    connects: 0,
    reconnects: 0,
    disconnects: 0,
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
    },
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
    if (config.profile.requiresUsername && !config.username && !this.urlHasUser()) {
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
    };
    this.backoff = new Backoff({
      minMs: INITIAL_RECONNECT_DELAY_MS,
      maxMs: this.options.maxReconnectDelayMs,
    });
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
   * it rejects but keeps trying in the background until stop().
   */
  async start(options: { wait?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (!this.running) {
      this.running = true;
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
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.reject(new Error('ClusterBus stopped'));
    const gen = this.gen;
    if (!gen) return;
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

  /** To one host's request queue. Fence requests carry our reply address as reply-to. */
  sendToHost(hostId: string, message: Message, options: SendOptions = {}): Promise<void> {
    const refused = this.foreign(message);
    if (refused) return refused;
    return this.send(
      this.requestAddressOf(hostId),
      'queue',
      message,
      { durable: true, ...options },
      true,
    );
  }

  /** To one host's reply queue (named-reply profiles). */
  sendReply(hostId: string, message: Message, options: SendOptions = {}): Promise<void> {
    const refused = this.foreign(message);
    if (refused) return refused;
    return this.send(this.replyAddressOf(hostId), 'queue', message, {
      durable: true,
      ...options,
    });
  }

  /** Answers a delivered request: to its dynamic reply-to if the profile uses those, else to
   *  the sender's named reply queue. */
  reply(to: BusDelivery, message: Message, options: SendOptions = {}): Promise<void> {
    const refused = this.foreign(message);
    if (refused) return refused;
    if (this.profile.dynamicReply && to.replyTo) {
      return this.send(to.replyTo, 'plain', message, { durable: true, ...options });
    }
    return this.sendReply(to.message.from, message, options);
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
      lastError: this.counters.lastError,
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
    const parsed = new URL(url);
    const n = ++this.generations;
    const prefix = this.config.containerId ?? 'virtfence';
    const containerId = `${prefix}-${this.hostId}-${n}-${randomUUID().slice(0, 8)}`;
    const container = rhea.create_container({ id: containerId });
    const tls = parsed.protocol === 'amqps:' || this.config.tls === true;
    const username =
      this.config.username ?? (parsed.username ? decodeURIComponent(parsed.username) : undefined);
    const password =
      this.config.password ?? (parsed.password ? decodeURIComponent(parsed.password) : undefined);
    const connectOptions: Record<string, unknown> = {
      host: parsed.hostname,
      port: Number(parsed.port || (tls ? 5671 : 5672)),
      transport: tls ? 'tls' : 'tcp',
      reconnect: false,
      container_id: containerId,
      idle_time_out: this.options.idleTimeoutMs || undefined,
      tcp_no_delay: true,
    };
    if (username !== undefined) connectOptions.username = username;
    if (password !== undefined) connectOptions.password = password;
    if (tls) {
      connectOptions.servername = parsed.hostname;
      if (this.config.ca) connectOptions.ca = this.config.ca;
    }

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
      pending: new Map(),
      openLinks: 0,
      linksNeeded: 0,
      ready: false,
      dead: false,
      dynamicReplyAddress: undefined,
      linkTimer: undefined,
    };
    this.gen = gen;
    // Errors rhea emits straight on the container when nothing handles them.
    container.on('error', (err: unknown) => this.fail(gen, `container error: ${errText(err)}`));
    this.log.debug('amqp-connecting', { url: this.safeUrl(url), container: containerId });
    try {
      gen.conn = container.connect(connectOptions as unknown as ConnectionOptions);
    } catch (err) {
      this.fail(gen, `connect: ${errText(err)}`);
      return;
    }
    this.wire(gen);
  }

  private safeUrl(url: string): string {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  }

  private wire(gen: Generation): void {
    const conn = gen.conn;
    const on = (event: string, handler: (ctx: EventContext) => void) =>
      conn.on(event, (ctx: EventContext) => {
        if (gen.dead) return;
        try {
          handler(ctx);
        } catch (err) {
          this.fail(gen, `handler ${event}: ${errText(err)}`);
        }
      });

    on('connection_open', () => this.openLinks(gen));
    // A SASL failure (refused credentials) is in ctx.error only; connection.error stays empty.
    on('connection_error', (ctx) =>
      this.fail(
        gen,
        `connection error: ${errText((ctx as { error?: unknown }).error ?? ctx.connection.error)}`,
      ),
    );
    on('connection_close', (ctx) =>
      this.fail(gen, `connection closed: ${errText(ctx.connection.error)}`),
    );
    on('disconnected', (ctx) =>
      this.fail(gen, `disconnected: ${errText((ctx as { error?: unknown }).error)}`),
    );
    on('protocol_error', (ctx) =>
      this.fail(gen, `protocol error: ${errText((ctx as { error?: unknown }).error)}`),
    );
    on('error', (ctx) =>
      this.fail(gen, `error: ${errText((ctx as { error?: unknown }).error ?? ctx)}`),
    );
    // Pitfall 1: a rejected attach ends the whole session; pitfall 5: after a graceful broker
    // shutdown links silently stop. Any session or link trouble rebuilds the connection.
    on('session_error', (ctx) => this.fail(gen, `session error: ${errText(ctx.session?.error)}`));
    on('session_close', (ctx) => this.fail(gen, `session closed: ${errText(ctx.session?.error)}`));
    on('sender_error', (ctx) => this.linkTrouble(gen, ctx.sender, 'sender error'));
    on('sender_close', (ctx) => this.linkTrouble(gen, ctx.sender, 'sender closed'));
    on('receiver_error', (ctx) => this.linkTrouble(gen, ctx.receiver, 'receiver error'));
    on('receiver_close', (ctx) => this.linkTrouble(gen, ctx.receiver, 'receiver closed'));

    // A refused attach is answered with an attach carrying no source (to our receiver) or no
    // target (to our sender), then a detach with the error (qpidd does this); rhea still
    // reports it as opened. It is not counted: the detach fails this connection, which never
    // became ready, so the backoff keeps growing.
    on('sender_open', (ctx) => {
      const entry = this.entryOf(gen, ctx.sender);
      if (entry !== gen.anonymous && ctx.sender && absentTerminus(ctx.sender.target)) return;
      if (entry?.pinned) this.linkOpened(gen);
    });
    on('receiver_open', (ctx) => {
      if (ctx.receiver && absentTerminus(ctx.receiver.source)) return;
      const via = ctx.receiver ? gen.receivers.get(ctx.receiver) : undefined;
      if (via === 'reply' && this.profile.dynamicReply) {
        const address = ctx.receiver?.source?.address;
        if (!address) {
          this.fail(gen, 'broker gave no dynamic reply address');
          return;
        }
        gen.dynamicReplyAddress = address;
      }
      if (via) this.linkOpened(gen);
    });
    on('sendable', (ctx) => {
      const entry = this.entryOf(gen, ctx.sender);
      if (entry) this.flush(gen, entry);
    });
    on('accepted', (ctx) => this.settle(gen, ctx.delivery, 'accepted'));
    on('released', (ctx) => this.settle(gen, ctx.delivery, 'released'));
    on('rejected', (ctx) =>
      this.settle(
        gen,
        ctx.delivery,
        'rejected',
        (ctx.delivery?.remote_state as { error?: unknown } | undefined)?.error,
      ),
    );
    on('modified', (ctx) => this.settle(gen, ctx.delivery, 'modified'));
    on('settled', (ctx) => this.settle(gen, ctx.delivery, 'released', 'settled without outcome'));
    on('message', (ctx) => {
      // One message never costs the link: whatever it throws, it alone is dropped.
      try {
        this.receive(gen, ctx);
      } catch (err) {
        this.drop('fanout', 'malformed', errText(err));
        ctx.delivery?.reject({ condition: 'amqp:internal-error', description: 'malformed' });
      }
    });
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
      () => this.fail(gen, `links not attached within ${this.options.linkTimeoutMs} ms`),
      this.options.linkTimeoutMs,
    );
  }

  private linkOpened(gen: Generation): void {
    gen.openLinks++;
    if (gen.ready || gen.openLinks < gen.linksNeeded) return;
    if (gen.linkTimer) clearTimeout(gen.linkTimer);
    gen.ready = true;
    this.backoff.reset();
    this.counters.connects++;
    const reconnected = this.everConnected;
    if (reconnected) this.counters.reconnects++;
    this.everConnected = true;
    const anonymousRelay = this.peerOffers(gen, 'ANONYMOUS-RELAY');
    this.log.info(reconnected ? 'amqp-reconnected' : 'amqp-connected', {
      url: this.safeUrl(gen.url),
      profile: this.profile.name,
      anonymous_relay: anonymousRelay,
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

  private peerOffers(gen: Generation, capability: string): boolean {
    const offered = (gen.conn as unknown as { offered_capabilities?: unknown })
      .offered_capabilities;
    const list = Array.isArray(offered) ? offered : offered === undefined ? [] : [offered];
    return list.some((c) => String(c) === capability);
  }

  private linkTrouble(gen: Generation, link: Sender | Receiver | undefined, what: string): void {
    if (link && gen.closing.has(link)) return;
    const error = link?.error;
    this.fail(gen, `${what}: ${errText(error)}`);
  }

  /** Ends a generation: fails its sends, schedules the next connection. */
  private fail(gen: Generation, reason: string): void {
    if (gen.dead || this.gen !== gen) return;
    const wasReady = gen.ready;
    this.counters.lastError = reason;
    this.log.warn('amqp-connection-lost', {
      url: this.safeUrl(gen.url),
      reason,
      was_ready: wasReady,
    });
    this.retire(gen, 'disconnected', reason);
    this.hardClose(gen);
    if (wasReady) {
      this.counters.disconnects++;
      this.emitConnection({
        connected: false,
        reconnected: false,
        url: gen.url,
        containerId: gen.containerId,
        reason,
      });
    }
    this.scheduleReconnect();
  }

  private retire(gen: Generation, failure: BusSendFailure, detail: string): void {
    gen.dead = true;
    gen.ready = false;
    if (gen.linkTimer) clearTimeout(gen.linkTimer);
    const pending = [...gen.pending.values()];
    for (const entry of this.allEntries(gen)) {
      for (const w of entry.waiting) pending.push(w.pending);
      entry.waiting = [];
    }
    gen.pending.clear();
    for (const p of pending) this.finish(p, failure, detail);
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

  private scheduleReconnect(): void {
    if (!this.running) return;
    this.urlIndex++;
    const delay = this.backoff.next();
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
        this.log.error('amqp-listener-failed', { kind: 'connection', error: errText(err) });
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

  private allEntries(gen: Generation): SenderEntry[] {
    const entries = [...gen.senders.values()];
    if (gen.anonymous) entries.push(gen.anonymous);
    return entries;
  }

  private entryOf(gen: Generation, sender: Sender | undefined): SenderEntry | undefined {
    if (!sender) return undefined;
    if (gen.anonymous?.sender === sender) return gen.anonymous;
    for (const entry of gen.senders.values()) if (entry.sender === sender) return entry;
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

  private senderFor(gen: Generation, address: string, kind: NodeKind, pinned = false): SenderEntry {
    const existing = gen.senders.get(address);
    if (existing) return existing;
    const sender = gen.conn.open_sender({
      target: this.terminus(address, kind),
      autosettle: true,
    });
    const entry: SenderEntry = { sender, address, waiting: [], lastUsed: Date.now(), pinned };
    gen.senders.set(address, entry);
    return entry;
  }

  private anonymousSender(gen: Generation): SenderEntry {
    if (gen.anonymous) return gen.anonymous;
    const sender = gen.conn.open_sender({ target: {} as never, autosettle: true });
    gen.anonymous = { sender, address: '', waiting: [], lastUsed: Date.now(), pinned: true };
    return gen.anonymous;
  }

  private send(
    address: string,
    kind: NodeKind,
    message: Message,
    options: SendOptions,
    withReplyTo = false,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const gen = this.gen;
      if (!this.running) {
        this.counters.sent.stopped++;
        reject(new BusSendError('stopped'));
        return;
      }
      if (!gen || !gen.ready) {
        this.counters.sent['not-connected']++;
        reject(new BusSendError('not-connected', this.counters.lastError));
        return;
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
      const pending: Pending = {
        resolve,
        reject,
        timer: setTimeout(() => {
          for (const [delivery, p] of gen.pending) if (p === pending) gen.pending.delete(delivery);
          for (const entry of this.allEntries(gen))
            entry.waiting = entry.waiting.filter((w) => w.pending !== pending);
          this.finish(pending, 'timeout', `no outcome within ${this.options.sendTimeoutMs} ms`);
        }, this.options.sendTimeoutMs),
      };
      let entry: SenderEntry;
      const useAnonymous =
        this.profile.anonymousRelay &&
        address !== this.eventAddress &&
        this.peerOffers(gen, 'ANONYMOUS-RELAY');
      try {
        if (useAnonymous) {
          entry = this.anonymousSender(gen);
          amqp.to = address;
        } else {
          entry = this.senderFor(gen, address, kind);
        }
      } catch (err) {
        this.finish(pending, 'disconnected', errText(err));
        this.fail(gen, `open sender: ${errText(err)}`);
        return;
      }
      entry.lastUsed = Date.now();
      entry.waiting.push({ message: amqp, pending });
      this.flush(gen, entry);
    });
  }

  private flush(gen: Generation, entry: SenderEntry): void {
    while (entry.waiting.length > 0 && !gen.dead && entry.sender.sendable()) {
      const next = entry.waiting.shift() as Waiting;
      const delivery = entry.sender.send(next.message);
      gen.pending.set(delivery, next.pending);
    }
  }

  private settle(
    gen: Generation,
    delivery: Delivery | undefined,
    outcome: 'accepted' | BusSendFailure,
    detail?: unknown,
  ): void {
    if (!delivery) return;
    const pending = gen.pending.get(delivery);
    if (!pending) return;
    gen.pending.delete(delivery);
    if (outcome === 'accepted') {
      clearTimeout(pending.timer);
      this.counters.sent.accepted++;
      pending.resolve();
    } else {
      this.finish(pending, outcome, detail === undefined ? undefined : errText(detail));
    }
  }

  private finish(pending: Pending, failure: BusSendFailure, detail?: string): void {
    clearTimeout(pending.timer);
    this.counters.sent[failure]++;
    pending.reject(new BusSendError(failure, detail));
  }

  private sweepIdleSenders(): void {
    const gen = this.gen;
    if (!gen || gen.dead) return;
    const cutoff = Date.now() - this.options.senderIdleMs;
    for (const [address, entry] of gen.senders) {
      if (entry.pinned || entry.lastUsed > cutoff || entry.waiting.length > 0) continue;
      if (
        [...gen.pending.keys()].some(
          (d) => (d as unknown as { link?: unknown }).link === entry.sender,
        )
      )
        continue;
      gen.senders.delete(address);
      gen.closing.add(entry.sender);
      try {
        entry.sender.close();
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
          error: errText(err),
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
