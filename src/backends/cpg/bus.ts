/**
 * The cluster bus carried over a corosync CPG group instead of a broker: the routed backend's
 * BusPort (../amqp/ports.ts). Messages are the same signed envelopes as on AMQP
 * (src/messages); CPG adds agreed ordering, and membership, which becomes liveness.
 *
 * Frame on the wire (opaque to corosync): `VF1 <to>\n<message JSON>`, `<to>` being `*` for the
 * fan-out or the one host a request or reply is meant for (every member receives every frame;
 * the others drop it). Nothing here resembles the C fence_virtd's CPG structs, and the group is
 * our own (`virtfence` by default), so C daemons and ours never read each other's traffic.
 *
 * Identity: a sender is bound to the CPG address (node id, pid) its first verified message came
 * from; a message claiming that host from another address while the first is still a member is
 * dropped (`identity-conflict`). When an address leaves the group, the host bound to it is
 * reported through onMembership() (the routed backend counts it dead at once).
 */
import {
  MessageFactory,
  MessageVerifier,
  REJECT_REASONS,
  encodeMessage,
  type RejectReason,
} from '../../messages/sign.js';
import type { BodyOf, Message, MessageType } from '../../messages/schemas.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import type { BusPort, MembershipChange, ReplyFn } from '../amqp/ports.js';
import { CpgReason, type CpgAddress, type CpgEvent, type CpgGroupHandle } from './native.js';
import { Backoff } from '../../util/backoff.js';
import { errText } from '../../util/errors.js';

export type CpgOpen = (
  group: string,
  onEvent: (event: CpgEvent) => void,
) => Promise<CpgGroupHandle>;

export interface CpgBusOptions {
  group: string;
  hostId: string;
  /** Signing key (raw bytes). */
  key: Uint8Array;
  open: CpgOpen;
  logger?: Logger;
  /** Reconnect backoff (src/util/backoff.ts): 500 ms doubling up to this. Default 5000. */
  maxReconnectDelayMs?: number;
  /** Largest frame we send (CPG allows about 1 MiB). */
  maxFrameBytes?: number;
  now?: () => number;
}

export class CpgSendError extends Error {
  constructor(
    readonly reason: 'not-connected' | 'not-a-member' | 'too-big' | 'cpg-error',
    detail?: string,
  ) {
    super(detail ? `send failed: ${reason} (${detail})` : `send failed: ${reason}`);
    this.name = 'CpgSendError';
  }
}

const PREFIX = 'VF1 ';
const BROADCAST = '*';

export function encodeFrame(to: string, json: string): Buffer {
  return Buffer.from(`${PREFIX}${to}\n${json}`, 'utf8');
}

export function decodeFrame(data: Buffer): { to: string; json: Buffer } | undefined {
  if (data.length < PREFIX.length + 2 || data.toString('latin1', 0, 4) !== PREFIX) return undefined;
  const nl = data.indexOf(0x0a, PREFIX.length);
  if (nl < 0 || nl - PREFIX.length > 128) return undefined;
  return { to: data.toString('utf8', PREFIX.length, nl), json: data.subarray(nl + 1) };
}

const addressKey = (a: { nodeid: number; pid: number }): string => `${a.nodeid}:${a.pid}`;

export const CPG_REASON_NAMES: Record<number, string> = {
  [CpgReason.join]: 'join',
  [CpgReason.leave]: 'leave',
  [CpgReason.nodeDown]: 'node-down',
  [CpgReason.nodeUp]: 'node-up',
  [CpgReason.procDown]: 'process-down',
};

export class CpgBus implements BusPort {
  readonly messages: MessageFactory;
  readonly verifier: MessageVerifier;
  readonly dropped: Record<RejectReason | 'identity-conflict' | 'bad-frame', number>;
  private handle: CpgGroupHandle | undefined;
  private attempt: symbol | undefined;
  private joined = false;
  private stopped = true;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private readonly log: Logger;
  /** CPG address → host id, learned from verified messages. */
  private readonly hostAt = new Map<string, string>();
  /** host id → its CPG address. */
  private readonly addressOf = new Map<string, string>();
  /** Current group members' addresses. */
  private members = new Set<string>();
  private readonly messageHandlers = new Set<(m: Message, reply: ReplyFn) => void>();
  private readonly connectionHandlers = new Set<(up: boolean) => void>();
  private readonly membershipHandlers = new Set<(c: MembershipChange) => void>();

  constructor(private readonly options: CpgBusOptions) {
    this.log = (options.logger ?? silentLogger).child({ bus: 'cpg', group: options.group });
    this.backoff = new Backoff({ minMs: 500, maxMs: options.maxReconnectDelayMs ?? 5000 });
    const now = options.now ?? Date.now;
    this.messages = new MessageFactory({
      cluster: options.group,
      hostId: options.hostId,
      key: options.key,
      now,
    });
    this.verifier = new MessageVerifier(options.key, options.group, { now });
    const dropped: Partial<Record<RejectReason | 'identity-conflict' | 'bad-frame', number>> = {
      'identity-conflict': 0,
      'bad-frame': 0,
    };
    for (const reason of REJECT_REASONS) dropped[reason] = 0;
    this.dropped = dropped as Record<RejectReason | 'identity-conflict' | 'bad-frame', number>;
  }

  get epoch(): number {
    return this.messages.epoch;
  }

  /** Our corosync node id (0 before the first join). */
  get nodeId(): number {
    return this.handle?.nodeId ?? 0;
  }

  /** Host ids currently known to be members (bound to a member address), us included. */
  memberHosts(): string[] {
    const out = new Set<string>();
    for (const key of this.members) {
      const host = this.hostAt.get(key);
      if (host) out.add(host);
    }
    if (this.joined) out.add(this.options.hostId);
    return [...out].sort();
  }

  isConnected(): boolean {
    return this.joined;
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const h = this.handle;
    this.handle = undefined;
    this.attempt = undefined;
    this.setJoined(false);
    if (h) await h.close().catch(() => undefined);
  }

  onMessage(handler: (message: Message, reply: ReplyFn) => void): () => void {
    this.messageHandlers.add(handler);
    return () => this.messageHandlers.delete(handler);
  }

  onConnectionChange(handler: (up: boolean) => void): () => void {
    this.connectionHandlers.add(handler);
    return () => this.connectionHandlers.delete(handler);
  }

  onMembership(handler: (change: MembershipChange) => void): () => void {
    this.membershipHandlers.add(handler);
    return () => this.membershipHandlers.delete(handler);
  }

  async publish<T extends MessageType>(type: T, body: BodyOf<T>): Promise<void> {
    await this.send(BROADCAST, this.messages.create(type, body));
  }

  async sendToHost<T extends MessageType>(host: string, type: T, body: BodyOf<T>): Promise<void> {
    if (host !== this.options.hostId && !this.isMemberHost(host))
      throw new CpgSendError('not-a-member', host);
    await this.send(host, this.messages.create(type, body));
  }

  private isMemberHost(host: string): boolean {
    const at = this.addressOf.get(host);
    return at !== undefined && this.members.has(at);
  }

  private async send(to: string, message: Message): Promise<void> {
    const h = this.handle;
    if (!h || !this.joined) throw new CpgSendError('not-connected');
    const frame = encodeFrame(to, encodeMessage(message));
    if (frame.length > (this.options.maxFrameBytes ?? 1_000_000))
      throw new CpgSendError('too-big', `${frame.length} bytes`);
    try {
      await h.mcast(frame);
    } catch (err) {
      throw new CpgSendError('cpg-error', errText(err));
    }
  }

  // ------------------------------------------------------------------------------------

  private async connect(): Promise<void> {
    if (this.stopped || this.handle) return;
    // Events may reach us before open() resolves: keep them until the handle is ours.
    const attempt = Symbol('cpg-open');
    this.attempt = attempt;
    let ready = false;
    const early: CpgEvent[] = [];
    try {
      const handle = await this.options.open(this.options.group, (e) => {
        if (this.attempt !== attempt) return;
        if (ready) this.onEvent(e);
        else early.push(e);
      });
      if (this.stopped || this.attempt !== attempt) {
        await handle.close();
        return;
      }
      this.handle = handle;
      ready = true;
      for (const e of early.splice(0)) this.onEvent(e);
      this.backoff.reset();
      this.log.info('cpg-joining', { nodeid: handle.nodeId });
    } catch (err) {
      this.log.warn('cpg-unavailable', { error: errText(err) });
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const delay = this.backoff.next();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect();
    }, delay);
    this.reconnectTimer.unref?.();
  }

  private setJoined(up: boolean): void {
    if (this.joined === up) return;
    this.joined = up;
    if (!up) {
      // Everyone else is unknown now; bindings are learned again from fresh messages.
      const gone = this.memberHosts().filter((h) => h !== this.options.hostId);
      this.members.clear();
      this.hostAt.clear();
      this.addressOf.clear();
      if (gone.length > 0) this.emitMembership({ left: gone, joined: [], reasons: {} });
    }
    this.log.info('cpg-membership', { joined: up });
    for (const h of this.connectionHandlers) h(up);
  }

  private onEvent(event: CpgEvent): void {
    switch (event.type) {
      case 'deliver':
        this.onDeliver(event.nodeid, event.pid, event.data);
        break;
      case 'confchg':
        this.onConfchg(event.members, event.left);
        break;
      case 'closed': {
        this.log.warn('cpg-closed', { error: event.message, code: event.error });
        const h = this.handle;
        this.handle = undefined;
        this.attempt = undefined;
        this.setJoined(false);
        if (h) void h.close().catch(() => undefined);
        this.scheduleReconnect();
        break;
      }
    }
  }

  private onConfchg(members: CpgAddress[], left: CpgAddress[]): void {
    const selfNode = this.handle?.nodeId;
    this.members = new Set(members.map(addressKey));
    const leftHosts: string[] = [];
    const reasons: Record<string, string> = {};
    for (const a of left) {
      const key = addressKey(a);
      const host = this.hostAt.get(key);
      this.hostAt.delete(key);
      if (host && this.addressOf.get(host) === key) {
        this.addressOf.delete(host);
        leftHosts.push(host);
        reasons[host] = CPG_REASON_NAMES[a.reason] ?? String(a.reason);
      }
    }
    const inGroup = members.some((m) => m.nodeid === selfNode && m.pid === process.pid);
    if (leftHosts.length > 0) this.emitMembership({ left: leftHosts, joined: [], reasons });
    this.setJoined(inGroup);
  }

  private emitMembership(change: MembershipChange): void {
    this.log.warn('cpg-left', {
      hosts: change.left.join(','),
      reasons: Object.entries(change.reasons ?? {})
        .map(([h, r]) => `${h}:${r}`)
        .join(','),
    });
    for (const h of this.membershipHandlers) h(change);
  }

  private onDeliver(nodeid: number, pid: number, data: Buffer): void {
    const frame = decodeFrame(data);
    if (!frame) {
      this.dropped['bad-frame']++;
      return;
    }
    if (frame.to !== BROADCAST && frame.to !== this.options.hostId) return;
    const result = this.verifier.verify(frame.json);
    if (!result.ok) {
      this.dropped[result.reason]++;
      this.log.warn('message-dropped', { reason: result.reason, detail: result.detail, nodeid });
      return;
    }
    const message = result.message;
    const key = addressKey({ nodeid, pid });
    const self = nodeid === this.handle?.nodeId && pid === process.pid;
    if (self !== (message.from === this.options.hostId)) {
      // Our host id from another process, or another host id from us: a misconfiguration
      // (two daemons with one host_id) or a forgery; never act on it.
      this.dropped['identity-conflict']++;
      this.log.warn('message-dropped', { reason: 'identity-conflict', from: message.from, nodeid });
      return;
    }
    if (self) return;
    const bound = this.addressOf.get(message.from);
    if (bound !== undefined && bound !== key) {
      if (this.members.has(bound)) {
        this.dropped['identity-conflict']++;
        this.log.warn('message-dropped', {
          reason: 'identity-conflict',
          from: message.from,
          nodeid,
          bound,
        });
        return;
      }
      this.hostAt.delete(bound);
    }
    this.addressOf.set(message.from, key);
    this.hostAt.set(key, message.from);
    const reply: ReplyFn = async (type, body) => this.sendToHost(message.from, type, body);
    for (const h of this.messageHandlers) h(message, reply);
  }
}
