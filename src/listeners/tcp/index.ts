/**
 * The direct TCP listener (docs/protocol.md §8): `fence_virt -T` connects, sends a signed 176-byte request,
 * runs the mutual challenge-response and reads the result.
 *
 * Deviations from C 4.12.1, on purpose:
 * - `auth` is the challenge-response algorithm and `hash` the minimum packet hash, as the
 *   configuration documents them. In C, `auth` overwrites the minimum hash and the challenge
 *   always uses sha256.
 * - Connections are served concurrently (up to `maxConnections`); C serves one at a time.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { TcpListenerConfig } from '../../config/types.js';
import { RequestHistory } from '../../protocol/history.js';
import type { Listener, ListenerDeps, RequestHandler } from '../listener.js';
import { peerSource } from './peer.js';
import { DEFAULT_STREAM_TIMEOUTS, serveStreamConnection, type StreamTimeouts } from './session.js';

export interface TcpListenerOptions {
  /** Simultaneous connections; further ones are closed at once. */
  maxConnections?: number;
  timeouts?: Partial<StreamTimeouts>;
}

export const DEFAULT_MAX_CONNECTIONS = 64;

export function createTcpListener(
  config: TcpListenerConfig,
  deps: ListenerDeps,
  options: TcpListenerOptions = {},
): Listener {
  return new TcpListener(config, deps, options);
}

class TcpListener implements Listener {
  readonly name = 'tcp';
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly history = new RequestHistory();
  private readonly inFlight = new Set<string>();
  private readonly maxConnections: number;
  private readonly timeouts: StreamTimeouts;
  private readonly log;

  constructor(
    private readonly config: TcpListenerConfig,
    private readonly deps: ListenerDeps,
    options: TcpListenerOptions,
  ) {
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.timeouts = { ...DEFAULT_STREAM_TIMEOUTS, ...options.timeouts };
    this.log = deps.logger.child({ listener: 'tcp' });
  }

  async start(handler: RequestHandler): Promise<void> {
    if (this.server) throw new Error('tcp listener already started');
    const server = createServer((socket) => this.accept(socket, handler));
    server.on('error', (err) => this.log.error('server-error', { error: err.message }));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Node sets SO_REUSEADDR on listening TCP sockets; backlog 10 as in C.
      server.listen(
        {
          host: this.config.address,
          port: this.config.port,
          backlog: 10,
          ipv6Only: this.config.family === 'ipv6',
        },
        () => {
          server.off('error', reject);
          resolve();
        },
      );
    }).catch((err: Error) => {
      throw new Error(`tcp listener cannot listen on ${this.describeAddress()}: ${err.message}`);
    });
    this.server = server;
    this.log.info('listening', { address: this.config.address, port: this.port() });
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
    this.log.info('stopped');
  }

  /** The bound port (useful with port 0). */
  port(): number {
    const address = this.server?.address();
    return typeof address === 'object' && address !== null ? address.port : this.config.port;
  }

  private accept(socket: Socket, handler: RequestHandler): void {
    const source = peerSource(socket.remoteAddress);
    if (this.sockets.size >= this.maxConnections) {
      this.log.warn('connection-refused', { reason: 'too-many-connections', peer: source });
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on('error', () => undefined); // reported through the reader
    socket.once('close', () => this.sockets.delete(socket));
    void serveStreamConnection(socket, source, {
      listener: this.name,
      hash: this.config.hash,
      auth: this.config.auth,
      key: this.deps.key,
      history: this.history,
      inFlight: this.inFlight,
      handler,
      logger: this.log,
      timeouts: this.timeouts,
    });
  }

  private describeAddress(): string {
    const host = this.config.address.includes(':')
      ? `[${this.config.address}]`
      : this.config.address;
    return `${host}:${this.config.port}`;
  }
}
