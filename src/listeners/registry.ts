/** Listener plugins by name. Factories are imported lazily so a daemon loads only what it runs. */
import {
  multicastListener,
  serialListener,
  tcpListener,
  vsockListener,
} from '../config/plugins/listeners.js';
import type { DaemonConfig } from '../config/types.js';
import type { Listener, ListenerDeps } from './listener.js';

export interface ListenerPlugin {
  version: string;
  /** The key file this listener reads, for the start-up permission check (docs/protocol.md §16). */
  keyFile(config: DaemonConfig): string | undefined;
  /** Whether the listener needs key bytes (hash or auth not none). */
  needsKey(config: DaemonConfig): boolean;
  create(config: DaemonConfig, deps: ListenerDeps): Promise<Listener>;
}

export const listenerPlugins: Record<string, ListenerPlugin> = {
  multicast: {
    version: multicastListener.version,
    keyFile: (c) => c.listeners.multicast.keyFile,
    needsKey: (c) => c.listeners.multicast.hash !== 0 || c.listeners.multicast.auth !== 0,
    create: async (c, deps) =>
      (await import('./multicast/index.js')).createMulticastListener(c.listeners.multicast, deps),
  },
  tcp: {
    version: tcpListener.version,
    keyFile: (c) => c.listeners.tcp.keyFile,
    needsKey: (c) => c.listeners.tcp.hash !== 0 || c.listeners.tcp.auth !== 0,
    create: async (c, deps) =>
      (await import('./tcp/index.js')).createTcpListener(c.listeners.tcp, deps),
  },
  serial: {
    version: serialListener.version,
    keyFile: () => undefined,
    needsKey: () => false,
    create: async (c, deps) =>
      (await import('./serial/index.js')).createSerialListener(c.listeners.serial, deps),
  },
  vsock: {
    version: vsockListener.version,
    keyFile: (c) => c.listeners.vsock.keyFile,
    needsKey: (c) => c.listeners.vsock.hash !== 0 || c.listeners.vsock.auth !== 0,
    create: async (c, deps) =>
      (await import('./vsock/index.js')).createVsockListener(c.listeners.vsock, deps),
  },
};
