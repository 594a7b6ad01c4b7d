/**
 * The only module that loads build/Release/virtfence_vsock.node (native/vsock). Node.js cannot
 * open AF_VSOCK sockets; the addon carries each vsock connection over a unix socketpair, so
 * callers get an ordinary net.Socket. Used by the vsock listener and by `fence_virt -S` (the
 * agent needs no libvirt: this addon links nothing but libc).
 */
import { createRequire } from 'node:module';
import { Socket } from 'node:net';

export interface VsockConnectionEvent {
  fd?: number;
  cid?: number;
  port?: number;
  error?: Error & { code?: string };
}

export interface NativeVsockListener {
  readonly port: number;
  close(): void;
}

export interface VsockAddon {
  listen(
    port: number,
    backlog: number,
    onEvent: (e: VsockConnectionEvent) => void,
  ): NativeVsockListener;
  /** Resolves with the fd of our end of the socketpair. */
  connect(cid: number, port: number): Promise<number>;
  localCid(): number;
  socketpair(): [number, number];
  /** Connections being carried right now (for leak tests). */
  pumps(): number;
  VMADDR_CID_ANY: number;
  VMADDR_CID_HOST: number;
}

const ADDON_URL = new URL('../../../build/Release/virtfence_vsock.node', import.meta.url);
let addon: VsockAddon | undefined;

export function loadVsockAddon(): VsockAddon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  try {
    addon = require(ADDON_URL.pathname) as VsockAddon;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(`the vsock addon is not built (${why}); run npm run build:native`);
  }
  return addon;
}

/** A net.Socket over a descriptor the addon handed us. */
export function socketFromFd(fd: number): Socket {
  return new Socket({ fd, readable: true, writable: true });
}

/** connect(cid, port) as a net.Socket. */
export async function connectVsock(cid: number, port: number): Promise<Socket> {
  const fd = await loadVsockAddon().connect(cid, port);
  return socketFromFd(fd);
}
