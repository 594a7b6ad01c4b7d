/**
 * Multicast listener, byte-compatible with fence_xvm (docs/protocol.md §3–§7). Unlike the C daemon every
 * request runs concurrently: a callback that never connects or never answers delays nobody else.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import type { MulticastListenerConfig } from '../../config/types.js';
import { AF_INET, AF_INET6, opName } from '../../protocol/constants.js';
import {
  FENCE_REQ_SIZE,
  decodeFenceRequest,
  verifyFenceRequest,
  type FenceRequest,
} from '../../protocol/fence-request.js';
import { RequestHistory } from '../../protocol/history.js';
import { ReplayFilter } from '../../protocol/replay-filter.js';
import { ByteReader } from '../../net/byte-reader.js';
import {
  createRateLimitedLog,
  DEFAULT_DROP_LOG_INTERVAL_MS,
  type Logger,
  type RateLimitedLog,
} from '../../util/logger.js';
import type { Listener, ListenerDeps, RequestHandler } from '../listener.js';
import { failureReason } from '../failure.js';
import { SESSION_READ_LIMIT, serveSession } from '../session.js';

export interface MulticastTuning {
  connectTimeoutMs: number;
  authStepMs: number;
  /** Requests in progress at once; more are dropped with a logged reason. */
  maxConcurrent: number;
  /** Interval of the rate-limited drop log (one line and one summary per reason). */
  dropLogIntervalMs: number;
}

const DEFAULT_TUNING: MulticastTuning = {
  connectTimeoutMs: 5_000,
  authStepMs: 10_000,
  maxConcurrent: 256,
  dropLogIntervalMs: DEFAULT_DROP_LOG_INTERVAL_MS,
};

export function createMulticastListener(
  config: MulticastListenerConfig,
  deps: ListenerDeps,
  tuning: Partial<MulticastTuning> = {},
): Listener {
  return new MulticastListener(config, deps, { ...DEFAULT_TUNING, ...tuning });
}

class MulticastListener implements Listener {
  /** Callback sockets open now (tests check nothing leaks). */
  get openSessions(): number {
    return this.sessions.size;
  }

  readonly name = 'multicast';
  private socket: dgram.Socket | undefined;
  private handler: RequestHandler | undefined;
  private readonly history = new RequestHistory(10_000);
  private readonly replays: ReplayFilter;
  private readonly inFlight = new Set<string>();
  private readonly sessions = new Set<net.Socket>();
  private readonly log: Logger;
  private readonly drops: RateLimitedLog;

  constructor(
    private readonly config: MulticastListenerConfig,
    private readonly deps: ListenerDeps,
    private readonly tuning: MulticastTuning,
  ) {
    this.log = deps.logger.child({ listener: 'multicast' });
    this.drops = createRateLimitedLog(this.log, tuning.dropLogIntervalMs);
    this.replays = deps.replays ?? new ReplayFilter();
  }

  async start(handler: RequestHandler): Promise<void> {
    this.handler = handler;
    const ipv6 = this.config.family === 'ipv6';
    const socket = dgram.createSocket({ type: ipv6 ? 'udp6' : 'udp4', reuseAddr: false });
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(
        { port: this.config.port, address: ipv6 ? '::' : '0.0.0.0', exclusive: true },
        () => {
          socket.off('error', reject);
          resolve();
        },
      );
    });
    socket.on('error', (err) => this.log.error('socket-error', { error: err.message }));
    this.joinGroup(socket, ipv6);
    socket.on('message', (packet, rinfo) => {
      try {
        this.onPacket(packet, rinfo.address);
      } catch (err) {
        // One packet never takes the listener down, whatever it contains.
        this.drops.log('warn', 'packet-dropped', 'internal-error', {
          from: rinfo.address,
          error: (err as Error).message,
        });
      }
    });
    this.log.info('listening', {
      address: this.config.address,
      port: this.config.port,
      interface: this.config.interface ?? 'any',
    });
  }

  async stop(): Promise<void> {
    for (const session of this.sessions) session.destroy();
    this.sessions.clear();
    this.drops.flush();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private joinGroup(socket: dgram.Socket, ipv6: boolean): void {
    const iface = this.interfaceAddress(ipv6);
    socket.addMembership(this.config.address, iface);
  }

  /** The interface to join on, as Node wants it; unknown names mean "any", as in C. */
  private interfaceAddress(ipv6: boolean): string | undefined {
    const name = this.config.interface;
    if (!name) return undefined;
    const addrs = os.networkInterfaces()[name];
    if (!addrs) {
      this.log.warn('unknown-interface', { interface: name, using: 'any' });
      return undefined;
    }
    if (ipv6) return `::%${name}`;
    return addrs.find((a) => a.family === 'IPv4')?.address;
  }

  private onPacket(packet: Buffer, from: string): void {
    // Nothing here is authenticated before the digest check: every drop goes through the
    // rate-limited log (one line and one summary per reason per interval).
    const drop = (reason: string, extra: Record<string, string | number> = {}): void =>
      this.drops.log('info', 'packet-dropped', reason, { from, ...extra });
    if (packet.length < FENCE_REQ_SIZE) return drop('short-packet', { bytes: packet.length });
    const raw = packet.subarray(0, FENCE_REQ_SIZE);
    const verdict = verifyFenceRequest(raw, this.config.hash, this.deps.key);
    if (!verdict.ok) return drop(verdict.reason, { hashtype: raw[1] ?? 0 });
    if (raw[1] !== 0 && this.replays.checkAndRecord(ReplayFilter.identity(raw))) {
      return drop('replay');
    }
    const request = decodeFenceRequest(raw);
    const key = RequestHistory.key(request.request, request.seqno, request.domain);
    if (this.history.has(key)) return drop('duplicate', { seqno: request.seqno });
    if (this.inFlight.has(key)) return drop('duplicate-in-progress', { seqno: request.seqno });
    if (request.family !== AF_INET && request.family !== AF_INET6) {
      return drop('bad-family', { family: request.family });
    }
    if (this.inFlight.size >= this.tuning.maxConcurrent) return drop('overloaded');
    this.inFlight.add(key);
    // Every host on a shared group receives each request; only one wins the callback. This
    // line is the proof of receipt on the others (bounded: signed, deduplicated requests only).
    this.log.debug('request-received', {
      op: opName(request.request),
      target: request.domain,
      seqno: request.seqno,
      from,
    });
    void this.serve(request)
      .then(() => this.history.record(key))
      .catch((err: Error) =>
        this.drops.log('warn', 'callback-failed', failureReason(err), {
          target: request.domain,
          callback: `${request.address}:${request.port}`,
          error: err.message,
        }),
      )
      .finally(() => this.inFlight.delete(key));
  }

  private async serve(request: FenceRequest): Promise<void> {
    const socket = await this.connectBack(request);
    const reader = new ByteReader(socket, SESSION_READ_LIMIT);
    try {
      await serveSession(
        socket,
        reader,
        {
          listener: 'multicast',
          op: request.request,
          target: request.domain,
          source: request.address,
          seqno: request.seqno,
          flags: request.flags,
        },
        {
          auth: this.config.auth,
          key: this.deps.key,
          handler: this.handler!,
          authStepMs: this.tuning.authStepMs,
        },
      );
    } finally {
      socket.end();
      socket.destroySoon();
    }
  }

  private connectBack(request: FenceRequest): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({
        host: request.address,
        port: request.port,
        family: request.family === AF_INET6 ? 6 : 4,
      });
      // Released on every path: the set forgets a socket when it closes, whatever closed it
      // (connect timeout, connect error, the session's end, stop()).
      this.sessions.add(socket);
      socket.once('close', () => this.sessions.delete(socket));
      socket.on('error', () => undefined); // reported through connect or the reader
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect timed out after ${this.tuning.connectTimeoutMs} ms`));
      }, this.tuning.connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      });
    });
  }
}
