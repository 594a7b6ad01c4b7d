/**
 * The direct TCP listener (docs/protocol.md §8): `fence_virt -T` connects, sends a signed 176-byte request,
 * runs the mutual challenge-response and reads the result.
 *
 * Deviations from C 4.12.1, on purpose:
 * - `auth` is the challenge-response algorithm and `hash` the minimum packet hash, as the
 *   configuration documents them. In C, `auth` overwrites the minimum hash and the challenge
 *   always uses sha256.
 * - Connections are served concurrently (up to `maxConnections`); C serves one at a time.
 *   So that no peer can starve the others, each peer address holds at most `maxPerPeer`
 *   connections, and when the listener is full a newcomer takes the slot of the oldest
 *   connection still unauthenticated of the peer holding the most (if that peer holds more than
 *   the newcomer would). Connections past the challenge-response are never evicted.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { TcpListenerConfig } from '../../config/types.js';
import type { Listener, ListenerDeps, RequestHandler } from '../listener.js';
import { peerSource } from './peer.js';
import {
  createStreamSessionShared,
  serveStreamConnection,
  type StreamSessionShared,
  type StreamTimeouts,
} from './session.js';

export interface TcpListenerOptions {
  /** Simultaneous connections; further ones are closed at once. */
  maxConnections?: number;
  /** Simultaneous connections from one peer address. */
  maxPerPeer?: number;
  timeouts?: Partial<StreamTimeouts>;
  dropLogIntervalMs?: number;
}

export const DEFAULT_MAX_CONNECTIONS = 64;
export const DEFAULT_MAX_PER_PEER = 8;

interface Connection {
  socket: Socket;
  peer: string;
  /** Past the challenge-response: never evicted. */
  authenticated: boolean;
}

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
  /** Open connections in arrival order, and the same grouped by peer address. */
  private readonly connections = new Set<Connection>();
  private readonly byPeer = new Map<string, Set<Connection>>();
  private readonly maxConnections: number;
  private readonly maxPerPeer: number;
  private readonly log;
  private readonly session: StreamSessionShared;

  constructor(
    private readonly config: TcpListenerConfig,
    private readonly deps: ListenerDeps,
    options: TcpListenerOptions,
  ) {
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.maxPerPeer = options.maxPerPeer ?? DEFAULT_MAX_PER_PEER;
    this.log = deps.logger.child({ listener: 'tcp' });
    this.session = createStreamSessionShared(this.name, config, deps, this.log, options);
  }

  /** Connections open now (tests check nothing leaks). */
  get openConnections(): number {
    return this.connections.size;
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
    for (const connection of this.connections) connection.socket.destroy();
    await closed;
    this.session.drops.flush();
    this.log.info('stopped');
  }

  /** The bound port (useful with port 0). */
  port(): number {
    const address = this.server?.address();
    return typeof address === 'object' && address !== null ? address.port : this.config.port;
  }

  private accept(socket: Socket, handler: RequestHandler): void {
    socket.on('error', () => undefined); // reported through the reader
    const source = peerSource(socket.remoteAddress);
    const peer = source ?? 'unknown';
    const refusal = this.makeRoom(peer);
    if (refusal) {
      this.session.drops.log('warn', 'connection-refused', refusal, { peer: source });
      socket.destroy();
      return;
    }
    const connection: Connection = { socket, peer, authenticated: false };
    this.connections.add(connection);
    let mine = this.byPeer.get(peer);
    if (!mine) this.byPeer.set(peer, (mine = new Set()));
    mine.add(connection);
    socket.once('close', () => this.forget(connection));
    void serveStreamConnection(
      socket,
      source,
      { ...this.session, handler },
      () => (connection.authenticated = true),
    );
  }

  /**
   * Frees a slot for a newcomer from `peer` if fairness allows, by closing the oldest
   * unauthenticated connection of the peer itself (at its own cap) or of the peer holding the
   * most connections (listener full). Returns why the newcomer is refused, or undefined.
   */
  private makeRoom(peer: string): string | undefined {
    const mine = this.byPeer.get(peer)?.size ?? 0;
    if (mine >= this.maxPerPeer) {
      return this.evictOldest(peer) ? undefined : 'too-many-from-peer';
    }
    if (this.connections.size < this.maxConnections) return undefined;
    let hog: string | undefined;
    let most = 0;
    for (const [other, set] of this.byPeer) {
      if (set.size > most) [hog, most] = [other, set.size];
    }
    if (hog !== undefined && most > mine + 1 && this.evictOldest(hog)) return undefined;
    return 'too-many-connections';
  }

  private evictOldest(peer: string): boolean {
    for (const connection of this.byPeer.get(peer) ?? []) {
      if (connection.authenticated) continue;
      this.session.drops.log('warn', 'connection-evicted', 'fair-share', { peer: connection.peer });
      this.forget(connection);
      connection.socket.destroy();
      return true;
    }
    return false;
  }

  private forget(connection: Connection): void {
    this.connections.delete(connection);
    const set = this.byPeer.get(connection.peer);
    set?.delete(connection);
    if (set?.size === 0) this.byPeer.delete(connection.peer);
  }

  private describeAddress(): string {
    const host = this.config.address.includes(':')
      ? `[${this.config.address}]`
      : this.config.address;
    return `${host}:${this.config.port}`;
  }
}
