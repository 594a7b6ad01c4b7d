/**
 * An in-memory broker and the BusPort (src/backends/amqp/ports.ts) each simulated daemon
 * uses. It behaves like the real ClusterBus over a broker, faults included:
 *
 * - fan-out (`publish`) reaches every other connected host; a host that is not connected
 *   misses it (topic subscriptions are not durable);
 * - `sendToHost` and replies go to per-host queues that keep messages (up to their TTL) while
 *   the host is away, across broker outages, and hand them to the next daemon instance;
 * - every delivery may be lost, duplicated or delayed (which reorders), as the schedule says;
 * - the receiving side checks what the real bus checks before handing a message over: the
 *   timestamp window (±30 s of its own clock) and the replay cache (per daemon instance).
 *
 * Signatures are not computed: every simulated host holds the cluster key, and signing is
 * tested on its own (test/unit/messages-sign.test.ts).
 */
import type { BusPort, ReplyFn } from '../../src/backends/amqp/ports.js';
import {
  MESSAGE_VERSION,
  MessageSchemas,
  type BodyOf,
  type Message,
  type MessageType,
} from '../../src/messages/schemas.js';
import type { Rng } from './rng.js';
import type { Scheduler } from './scheduler.js';

export interface NetFaults {
  /** Probability that one delivery is lost. */
  loss: number;
  /** Probability that one delivery arrives twice. */
  duplicate: number;
  /** Probability that a delivery is slow (up to `slowMs`) rather than 1–20 ms. */
  slow: number;
  slowMs: number;
  /** Per host: probability that its inventories are lost (a misrouted fan-out). */
  inventoryLoss: Map<string, number>;
}

/** The timestamp window of the real bus (src/messages/sign.ts). */
const WINDOW_MS = 30_000;
/** Request and reply queues keep messages this long (broker/rabbitmq/definitions.json). */
const QUEUE_TTL_MS = 60_000;

interface Queued {
  message: Message;
  enqueuedAt: number;
}

export type TraceFn = (line: string) => void;

export class SimBroker {
  up = true;
  private readonly ports = new Map<string, SimBusPort>();
  /** Host → number of partitions in force (they may overlap). */
  private readonly partitioned = new Map<string, number>();
  private readonly queues = new Map<string, Queued[]>();
  private messageIds = 0;
  /** Off by default: schema checks of every body cost time; on in replay and tests. */
  validate = true;
  /** Bodies that failed their schema (a bug: the real bus refuses to build them). */
  invalid: string[] = [];

  constructor(
    readonly scheduler: Scheduler,
    readonly rng: Rng,
    readonly faults: NetFaults,
    readonly trace: TraceFn | undefined,
  ) {}

  nextId(): string {
    return `m${++this.messageIds}`;
  }

  attach(port: SimBusPort): void {
    this.ports.set(port.host, port);
  }

  /** Link state of a host's daemon (broker up, not partitioned). */
  reachable(host: string): boolean {
    return this.up && !this.partitioned.has(host);
  }

  setUp(up: boolean): void {
    this.up = up;
    for (const p of this.ports.values()) p.linkChanged();
  }

  partition(host: string, cut: boolean): void {
    const n = (this.partitioned.get(host) ?? 0) + (cut ? 1 : -1);
    if (n > 0) this.partitioned.set(host, n);
    else this.partitioned.delete(host);
    this.ports.get(host)?.linkChanged();
  }

  /** What the real bus refuses to build: a body that fails its schema or its envelope. */
  check<T extends MessageType>(type: T, body: BodyOf<T>, from: string, epoch: number): void {
    if (!this.validate) return;
    const r = MessageSchemas[type].shape.body.safeParse(body);
    let problem: string | undefined;
    if (!r.success) {
      const issue = r.error.issues[0];
      problem = `${issue?.path.join('.')} ${issue?.message}`;
    } else {
      const b = body as Record<string, unknown>;
      const sender = b.host ?? b.originHost ?? b.executingHost;
      if (type !== 'host-fenced' && sender !== undefined && sender !== from)
        problem = 'sender differs from envelope from';
      if ('epoch' in b && type !== 'host-fenced' && b.epoch !== epoch)
        problem = 'epoch differs from envelope epoch';
    }
    if (problem) {
      const text = `${from} built an invalid ${type}: ${problem}`;
      this.invalid.push(text);
      throw new Error(text);
    }
  }

  fanOut(message: Message): void {
    const invLoss =
      message.type === 'inventory' ? (this.faults.inventoryLoss.get(message.from) ?? 0) : 0;
    for (const port of this.ports.values()) {
      if (port.host === message.from || !port.connected) continue;
      if (this.rng.chance(invLoss)) {
        this.trace?.(
          `broker  lost ${message.type} ${message.from} → ${port.host} (inventory fault)`,
        );
        continue;
      }
      this.transmit(
        message,
        () => port.connected,
        (m) => port.deliver(m, false),
      );
    }
  }

  enqueue(host: string, message: Message): void {
    let q = this.queues.get(host);
    if (!q) {
      q = [];
      this.queues.set(host, q);
    }
    q.push({ message, enqueuedAt: this.scheduler.time });
    this.flush(host);
  }

  /** Hands what waits in a host's queue to its daemon, if connected. */
  flush(host: string): void {
    const port = this.ports.get(host);
    const q = this.queues.get(host);
    if (!port || !port.connected || !q || q.length === 0) return;
    const now = this.scheduler.time;
    for (const item of q.splice(0)) {
      if (now - item.enqueuedAt > QUEUE_TTL_MS) continue;
      // Lost from a queue means lost on the consumer's link: at-least-once puts it back.
      this.transmit(
        item.message,
        () => port.connected,
        (m) => port.deliver(m, true),
        () => this.requeue(host, item),
      );
    }
  }

  private requeue(host: string, item: Queued): void {
    let q = this.queues.get(host);
    if (!q) {
      q = [];
      this.queues.set(host, q);
    }
    q.push(item);
  }

  /** One delivery with the schedule's faults; `alive` is checked on arrival. */
  private transmit(
    message: Message,
    alive: () => boolean,
    deliver: (m: Message) => void,
    onLost?: () => void,
  ): void {
    const f = this.faults;
    if (this.rng.chance(f.loss)) {
      this.trace?.(`broker  lost ${describe(message)}`);
      if (onLost) this.scheduler.after(this.rng.int(200, 2000), 'broker', 'requeue', onLost);
      return;
    }
    const copies = this.rng.chance(f.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.rng.chance(f.slow) ? this.rng.int(20, f.slowMs) : this.rng.int(1, 20);
      this.scheduler.after(delay, 'broker', 'deliver', () => {
        if (!alive()) {
          if (onLost) onLost();
          return;
        }
        deliver(message);
      });
    }
  }
}

export function describe(m: Message): string {
  const b = m.body as Record<string, unknown>;
  switch (m.type) {
    case 'fence-request':
      return `fence-request ${m.from} → ${String(b.toHost)} ${String(b.action)} ${String(b.target)} id=${String(b.requestId)}`;
    case 'fence-reply':
      return `fence-reply ${m.from} code=${String(b.code)} ${String(b.reason)} id=${String(b.requestId)}`;
    case 'vm-event':
      return `vm-event ${m.from} ${String(b.name)} event=${String(b.event)} state=${String(b.state)} seq=${String(b.seq)}`;
    case 'inventory':
      return `inventory ${m.from} seq=${String(b.seq)} vms=${(b.vms as unknown[]).length}`;
    default:
      return `${m.type} ${m.from}`;
  }
}

/** One daemon instance's bus (a new one after every daemon restart). */
export class SimBusPort implements BusPort {
  readonly owner: string;
  private handlers = new Set<(message: Message, reply: ReplyFn) => void>();
  private connHandlers = new Set<(up: boolean) => void>();
  private skewHandlers = new Set<(from: string) => void>();
  private started = false;
  private dead = false;
  private up = false;
  private seq = 0;
  private readonly seen = new Set<string>();
  private reconnectPending = false;

  constructor(
    readonly broker: SimBroker,
    readonly host: string,
    readonly instance: number,
    readonly epoch: number,
    private readonly now: () => number,
    readonly cluster = 'sim',
  ) {
    this.owner = `${host}#${instance}`;
  }

  get connected(): boolean {
    return this.up && !this.dead;
  }

  async start(): Promise<void> {
    this.started = true;
    this.broker.attach(this);
    this.linkChanged();
  }

  async stop(): Promise<void> {
    this.started = false;
    this.setUp(false, false);
  }

  /** The process died: nothing more is sent or received. */
  crash(): void {
    this.dead = true;
    this.up = false;
    this.handlers.clear();
    this.connHandlers.clear();
    this.skewHandlers.clear();
  }

  isConnected(): boolean {
    return this.connected;
  }

  onMessage(handler: (message: Message, reply: ReplyFn) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  onOutOfWindow(handler: (from: string) => void): () => void {
    this.skewHandlers.add(handler);
    return () => this.skewHandlers.delete(handler);
  }

  onConnectionChange(handler: (up: boolean) => void): () => void {
    this.connHandlers.add(handler);
    return () => this.connHandlers.delete(handler);
  }

  async publish<T extends MessageType>(type: T, body: BodyOf<T>): Promise<void> {
    const m = this.create(type, body);
    this.broker.fanOut(m);
  }

  async sendToHost<T extends MessageType>(host: string, type: T, body: BodyOf<T>): Promise<void> {
    const m = this.create(type, body);
    this.broker.trace?.(`${this.host}  send ${describe(m)}`);
    this.broker.enqueue(host, m);
  }

  /** The broker's link to this daemon changed (outage, partition, recovery). */
  linkChanged(): void {
    if (!this.started || this.dead) return;
    const reachable = this.broker.reachable(this.host);
    if (!reachable) {
      this.setUp(false, true);
      return;
    }
    if (this.up || this.reconnectPending) return;
    // The real bus reconnects with a backoff of up to max_reconnect_delay (2 s).
    this.reconnectPending = true;
    const delay = this.broker.rng.int(50, 2000);
    this.broker.scheduler.after(delay, this.owner, 'reconnect', () => {
      this.reconnectPending = false;
      if (this.started && !this.dead && this.broker.reachable(this.host)) this.setUp(true, true);
    });
  }

  deliver(message: Message, queued: boolean): void {
    if (!this.connected) return;
    const now = this.now();
    if (Math.abs(message.ts - now) > WINDOW_MS) {
      this.broker.trace?.(
        `${this.host}  drop ${describe(message)} (out-of-window: sent ${message.ts - now} ms from our clock)`,
      );
      for (const h of [...this.skewHandlers]) h(message.from);
      return;
    }
    if (this.seen.has(message.id)) {
      this.broker.trace?.(`${this.host}  drop ${describe(message)} (replay)`);
      return;
    }
    this.seen.add(message.id);
    if (queued || message.type === 'fence-reply')
      this.broker.trace?.(`${this.host}  recv ${describe(message)}`);
    const reply: ReplyFn = async (type, body) => {
      if (!this.connected) throw new Error('disconnected');
      const m = this.create(type, body);
      this.broker.trace?.(`${this.host}  reply ${describe(m)}`);
      this.broker.enqueue(message.from, m);
    };
    for (const h of [...this.handlers]) h(message, reply);
  }

  private setUp(up: boolean, notify: boolean): void {
    if (this.up === up) return;
    this.up = up;
    this.broker.trace?.(`${this.host}  bus ${up ? 'connected' : 'disconnected'}`);
    if (notify) for (const h of [...this.connHandlers]) h(up);
    if (up) this.broker.flush(this.host);
  }

  private create<T extends MessageType>(type: T, body: BodyOf<T>): Message {
    if (!this.connected) throw new Error(`not connected (${type})`);
    this.broker.check(type, body, this.host, this.epoch);
    this.seq++;
    return {
      v: MESSAGE_VERSION,
      type,
      cluster: this.cluster,
      from: this.host,
      epoch: this.epoch,
      seq: this.seq,
      ts: this.now(),
      id: this.broker.nextId(),
      body,
      sig: '',
    } as unknown as Message;
  }
}
