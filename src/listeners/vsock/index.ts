/**
 * The vsock listener (docs/protocol.md §9): `fence_virt -S` in a guest connects over AF_VSOCK to port
 * `port` (1229) of the host and speaks the direct-TCP protocol (../tcp/session.ts). The
 * permission source (`groups` ip entries) is the peer's context id as a decimal string.
 *
 * The socket work is native (native/vsock): VMADDR_CID_ANY:port, backlog 1 as in C; each
 * connection reaches us as a socketpair end. The end-to-end path with a real guest could not
 * be run where this was written (no vsock transport there): see the README.
 */
import type { Socket } from 'node:net';
import type { VsockListenerConfig } from '../../config/types.js';
import type { Listener, ListenerDeps, RequestHandler } from '../listener.js';
import {
  createStreamSessionShared,
  serveStreamConnection,
  type StreamSessionShared,
  type StreamTimeouts,
} from '../tcp/session.js';
import {
  loadVsockAddon,
  socketFromFd,
  type NativeVsockListener,
  type VsockAddon,
} from './native.js';

export interface VsockListenerOptions {
  maxConnections?: number;
  timeouts?: Partial<StreamTimeouts>;
  /** For tests: another addon. */
  addon?: VsockAddon;
}

export const VSOCK_MAX_CONNECTIONS = 64;

/** The `groups` identity of a vsock peer: its CID in decimal, as C prints it. */
export function vsockSource(cid: number): string {
  return String(cid >>> 0);
}

export function createVsockListener(
  config: VsockListenerConfig,
  deps: ListenerDeps,
  options: VsockListenerOptions = {},
): VsockListener {
  return new VsockListener(config, deps, options);
}

export class VsockListener implements Listener {
  readonly name = 'vsock';
  private native: NativeVsockListener | undefined;
  private handler: RequestHandler | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly log;
  private readonly session: StreamSessionShared;

  constructor(
    private readonly config: VsockListenerConfig,
    private readonly deps: ListenerDeps,
    private readonly options: VsockListenerOptions,
  ) {
    this.log = deps.logger.child({ listener: 'vsock' });
    this.session = createStreamSessionShared(this.name, config, deps, this.log, options);
  }

  async start(handler: RequestHandler): Promise<void> {
    if (this.native) throw new Error('vsock listener already started');
    let addon: VsockAddon;
    try {
      addon = this.options.addon ?? loadVsockAddon();
      this.native = addon.listen(this.config.port, 1, (e) => {
        if (e.error) {
          this.log.warn('accept-failed', { error: e.error.message, code: e.error.code });
          return;
        }
        if (e.fd === undefined || e.cid === undefined) return;
        this.serve(socketFromFd(e.fd), e.cid);
      });
    } catch (err) {
      const e = err as Error & { code?: string };
      const hint =
        e.code === 'EAFNOSUPPORT'
          ? ' (this kernel has no AF_VSOCK; load the vsock modules, e.g. vmw_vsock_virtio_transport_common and vhost_vsock)'
          : '';
      throw new Error(
        `vsock listener cannot listen on port ${this.config.port}: ${e.message}${hint}`,
      );
    }
    this.handler = handler;
    this.log.info('listening', { port: this.config.port });
  }

  /**
   * Serve one connection from context id `cid` (what accept gives; tests hand in a socketpair
   * end). Refuses beyond maxConnections.
   */
  serve(socket: Socket, cid: number): void {
    const handler = this.handler;
    const source = vsockSource(cid);
    if (!handler || this.sockets.size >= (this.options.maxConnections ?? VSOCK_MAX_CONNECTIONS)) {
      this.log.warn('connection-refused', {
        reason: handler ? 'too-many-connections' : 'not-started',
        peer: source,
      });
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.sockets.delete(socket));
    void serveStreamConnection(socket, source, { ...this.session, handler });
  }

  async stop(): Promise<void> {
    const native = this.native;
    this.native = undefined;
    this.handler = undefined;
    native?.close();
    for (const s of this.sockets) s.destroy();
    this.session.drops.flush();
    if (native) this.log.info('stopped');
  }
}
