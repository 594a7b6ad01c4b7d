/**
 * The vsock listener (docs/protocol.md §9). Node.js has no AF_VSOCK socket support, so this build cannot
 * serve `fence_virt -S`: start() fails with a one-line reason and the daemon reports it. The
 * wire protocol would be the direct-TCP one (see ../tcp/session.ts), with the peer CID as source.
 */
import type { VsockListenerConfig } from '../../config/types.js';
import type { Listener, ListenerDeps, RequestHandler } from '../listener.js';

export const VSOCK_UNSUPPORTED =
  'vsock listener is not supported by this build: Node.js cannot open AF_VSOCK sockets';

export function createVsockListener(config: VsockListenerConfig, deps: ListenerDeps): Listener {
  return {
    name: 'vsock',
    async start(_handler: RequestHandler): Promise<void> {
      deps.logger.error('listener-unsupported', { listener: 'vsock', port: config.port });
      throw new Error(`${VSOCK_UNSUPPORTED} (port ${config.port})`);
    },
    async stop(): Promise<void> {},
  };
}
