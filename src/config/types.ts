/**
 * The typed configuration the daemon runs on, with the C defaults (spec §15.5).
 * `src/config/schema.ts` validates a parsed fence_virt.conf into this shape.
 */
import type { HashCode } from '../protocol/constants.js';

export interface MulticastListenerConfig {
  keyFile: string;
  /** Minimum accepted packet hash. */
  hash: HashCode;
  /** Challenge-response algorithm. */
  auth: HashCode;
  family: 'ipv4' | 'ipv6';
  address: string;
  port: number;
  interface: string | undefined;
}

export interface TcpListenerConfig {
  keyFile: string;
  hash: HashCode;
  auth: HashCode;
  family: 'ipv4' | 'ipv6';
  address: string;
  port: number;
}

export interface VsockListenerConfig {
  keyFile: string;
  hash: HashCode;
  auth: HashCode;
  port: number;
}

export interface SerialListenerConfig {
  uri: string | undefined;
  path: string | undefined;
  mode: 'serial' | 'vmchannel';
}

export interface LibvirtBackendConfig {
  /** uri, uri1, uri2, … in order, stopping at the first missing index. */
  uris: string[];
}

export interface GroupConfig {
  name: string;
  /** Requester ids: IPs (multicast, tcp) or CIDs (vsock). */
  ips: string[];
  /** Targets, and requester UUIDs for serial. */
  uuids: string[];
}

export interface FenceVirtdConfig {
  /** One or more listener names (ours accepts a list; C accepts one). */
  listeners: string[];
  backend: string;
  debug: number;
  foreground: boolean;
  waitForInit: boolean;
  modulePath: string | undefined;
  /** Prometheus endpoint (metrics_port, metrics_address); off without a port. */
  metrics: { port: number; address: string } | undefined;
  /** Seconds between `stats` log lines (stats_interval); 0: none. */
  statsIntervalSec: number;
}

/**
 * The whole file. Sections for plugins are kept as raw key/value maps too, so plugins that
 * arrive later (amqp) validate their own block.
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

/** A parsed fence_virt.conf node (spec §15): values and child blocks in file order. */
export interface ConfigValue {
  kind: 'value';
  name: string;
  value: string;
  line: number;
}

export interface ConfigBlock {
  kind: 'block';
  name: string;
  /** A block may carry its own value: `name = "v" { … }`. */
  value: string | undefined;
  children: ConfigNode[];
  line: number;
}

export type ConfigNode = ConfigValue | ConfigBlock;
