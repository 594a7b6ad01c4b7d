/**
 * One guest socket: the daemon connects as a client to the unix socket QEMU listens on
 * (`<source mode='bind'>`), parses requests from it and writes responses back. If the socket
 * closes while the domain is still attached, it reconnects with backoff until closed.
 */
import { connect, type Socket } from 'node:net';
import type { SerialRequest } from '../../protocol/serial.js';
import { createRateLimitedLog, type Logger, type RateLimitedLog } from '../../util/logger.js';
import { SerialRequestParser } from './request-parser.js';
import { Backoff } from '../../util/backoff.js';

export interface ChannelTimings {
  connectMs: number;
  /** A request must complete within this time of its magic. */
  requestMs: number;
  retryMinMs: number;
  retryMaxMs: number;
}

export const DEFAULT_CHANNEL_TIMINGS: ChannelTimings = {
  connectMs: 3_000,
  requestMs: 1_000,
  retryMinMs: 1_000,
  retryMaxMs: 30_000,
};

export type RequestCallback = (request: SerialRequest, channel: GuestChannel) => void;

export class GuestChannel {
  private socket: Socket | undefined;
  private closed = false;
  private readonly retry: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly drops: RateLimitedLog;

  constructor(
    /** The guest socket path from the domain XML. */
    readonly path: string,
    /** UUID of the domain: the permission source of every request on this socket. */
    readonly uuid: string,
    private readonly onRequest: RequestCallback,
    logger: Logger,
    private readonly timings: ChannelTimings = DEFAULT_CHANNEL_TIMINGS,
  ) {
    this.retry = new Backoff({ minMs: timings.retryMinMs, maxMs: timings.retryMaxMs });
    this.log = logger.child({ domain: uuid, socket: path });
    this.drops = createRateLimitedLog(this.log); // the guest is not authenticated
  }

  open(): void {
    if (this.closed || this.socket) return;
    const socket = connect({ path: this.path });
    const parser = new SerialRequestParser(this.timings.requestMs);
    let attached = false;
    this.socket = socket;
    socket.setTimeout(this.timings.connectMs, () => socket.destroy(new Error('connect timed out')));
    socket.once('connect', () => {
      socket.setTimeout(0);
      attached = true;
      this.retry.reset();
      this.log.info('guest-attached');
    });
    socket.on('data', (chunk: Buffer) => this.receive(parser, chunk));
    socket.on('error', (err) => this.log.debug('guest-socket-error', { error: err.message }));
    socket.once('close', () => this.lost(socket, parser, attached));
  }

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.connecting && !this.socket.destroyed;
  }

  /** Write a response; dropped (and logged) if the socket is gone. */
  send(data: Buffer): void {
    const socket = this.socket;
    if (!socket || socket.destroyed) {
      this.log.warn('response-dropped', { reason: 'guest-socket-closed' });
      return;
    }
    socket.write(data);
  }

  close(): void {
    this.closed = true;
    this.drops.flush();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.socket?.destroy();
    this.socket = undefined;
  }

  private receive(parser: SerialRequestParser, chunk: Buffer): void {
    const { requests, incomplete } = parser.feed(chunk, Date.now());
    if (incomplete > 0)
      this.drops.log('warn', 'request-rejected', 'short-read', { count: incomplete });
    for (const request of requests) this.onRequest(request, this);
  }

  private lost(socket: Socket, parser: SerialRequestParser, attached: boolean): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    if (this.closed) return;
    if (parser.pending) this.drops.log('warn', 'request-rejected', 'short-read');
    const retryMs = this.retry.next();
    if (!attached) this.log.debug('guest-connect-failed', { retryMs });
    else this.log.info('guest-detached', { retryMs });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.open();
    }, retryMs);
  }
}
