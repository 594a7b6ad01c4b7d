/**
 * The typed configuration the daemon runs on, with the C defaults (docs/protocol.md §15.5).
 * Every shape here is derived from the block declarations in src/config/plugins: a key is
 * declared once, there. `src/config/schema.ts` validates a parsed fence_virt.conf into it.
 */
import type { z } from 'zod';
import type { GroupConfig } from '../core/groups.js';
import type { BlockDeclaration, Typed } from './block.js';
import type { libvirtBackend } from './plugins/backends.js';
import type { fenceVirtdBlock } from './plugins/daemon.js';
import type {
  multicastListener,
  serialListener,
  tcpListener,
  vsockListener,
} from './plugins/listeners.js';
import type { ConfigBlock } from './tree.js';

export type { GroupConfig } from '../core/groups.js';
export type { ConfigBlock, ConfigNode, ConfigValue } from './tree.js';

/** The typed values of a declared block. */
export type BlockConfig<B extends BlockDeclaration<z.ZodRawShape, Record<string, string>>> = Typed<
  z.output<B['raw']>,
  B['names']
>;

type WithAddress<T> = Omit<T, 'address'> & { address: string };

export type MulticastListenerConfig = WithAddress<BlockConfig<(typeof multicastListener)['block']>>;
export type TcpListenerConfig = WithAddress<BlockConfig<(typeof tcpListener)['block']>>;
export type VsockListenerConfig = BlockConfig<(typeof vsockListener)['block']>;
export type SerialListenerConfig = BlockConfig<(typeof serialListener)['block']>;
export type LibvirtBackendConfig = BlockConfig<(typeof libvirtBackend)['block']>;

type RawFenceVirtd = BlockConfig<typeof fenceVirtdBlock>;

export interface FenceVirtdConfig {
  /** One or more listener names (ours accepts a list; C accepts one). */
  listeners: string[];
  backend: string;
  debug: RawFenceVirtd['debug'];
  foreground: RawFenceVirtd['foreground'];
  /** wait_for_init, or its old name wait_for_backend. */
  waitForInit: boolean;
  modulePath: RawFenceVirtd['modulePath'];
  /** Prometheus endpoint (metrics_port, metrics_address); off without a port. */
  metrics: { port: number; address: string } | undefined;
  /** Seconds between `stats` log lines (stats_interval); 0: none. */
  statsIntervalSec: RawFenceVirtd['statsInterval'];
}

/**
 * The whole file. Plugin blocks that validate themselves (amqp) are read from the raw tree.
 */
export interface DaemonConfig {
  fenceVirtd: FenceVirtdConfig;
  listeners: {
    multicast: MulticastListenerConfig;
    tcp: TcpListenerConfig;
    vsock: VsockListenerConfig;
    serial: SerialListenerConfig;
  };
  backends: {
    libvirt: LibvirtBackendConfig;
  };
  groups: GroupConfig[];
  /** Raw parsed tree, for plugin blocks with their own schema. */
  tree: ConfigBlock;
}
