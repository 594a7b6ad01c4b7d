/** The contract between listeners (via the dispatcher) and backends. */
import type { HostEntry } from '../protocol/hostlist.js';
import type { FenceAction, FenceOutcome, FenceReason, RequestContext } from '../core/fence.js';

export type { FenceAction, FenceOutcome, FenceReason, RequestContext };

export interface HostListResult {
  entries: HostEntry[];
  /** The final byte after the terminator (0 for libvirt). */
  code: number;
}

/** One peer host as the routed backend sees it (heartbeat ages on our clock). */
export interface PeerHealth {
  host: string;
  liveness: 'alive' | 'suspect' | 'dead' | 'unknown';
  /** ms since its last heartbeat arrived; undefined before the first. */
  heartbeatAgeMs: number | undefined;
  /** Its clock minus ours at its last heartbeat (transit time included); undefined before one. */
  clockOffsetMs: number | undefined;
}

/**
 * What a backend reports about itself for readiness (systemd), metrics and the stats line.
 * Plain data, read when asked.
 */
export interface BackendHealth {
  /** True once requests get real answers; otherwise `waitingFor` says what is missing. */
  serving: boolean;
  waitingFor?: string;
  libvirt: Array<{ uri: string; connected: boolean }>;
  bus?: {
    /** This host's id on the bus (amqp host_id). */
    hostId: string;
    connected: boolean;
    profile: string;
    connects: number;
    reconnects: number;
    disconnects: number;
    /** Messages dropped before delivery, by reason (signature, schema, replay, …). */
    rejected: Record<string, number>;
  };
  routing?: {
    hosts: Record<PeerHealth['liveness'], number>;
    vms: number;
    claims: number;
    peers: PeerHealth[];
  };
}

export interface Backend {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  fence(action: FenceAction, target: string, ctx: RequestContext): Promise<FenceOutcome>;
  hostlist(ctx: RequestContext): Promise<HostListResult>;
  /** Optional self-report (readiness, metrics). */
  health?(): BackendHealth;
}
