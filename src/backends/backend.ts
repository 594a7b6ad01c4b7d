/** The contract between listeners (via the dispatcher) and backends. */
import type { HostEntry } from '../protocol/hostlist.js';

/** Where a request came from and how long it may take. */
export interface RequestContext {
  /** Request id for logs and replies. */
  id: string;
  /** Listener name: multicast, tcp, serial, vsock. */
  listener: string;
  /** Permission source: IP (multicast, tcp), VM UUID (serial), CID (vsock). */
  source: string | undefined;
  seqno: number;
  /** Absolute time (ms since epoch) after which an answer is useless. */
  deadline: number;
}

/** A result code of docs/protocol.md §1.3 and a machine-readable reason for logs and exit codes. */
export interface FenceOutcome {
  code: number;
  reason: string;
  /** Host that executed the operation, when the backend knows (amqp). */
  executedBy?: string;
}

export type FenceAction = 'null' | 'off' | 'on' | 'reboot' | 'status' | 'devstatus';

export interface HostListResult {
  entries: HostEntry[];
  /** The final byte after the terminator (0 for libvirt). */
  code: number;
}

export interface Backend {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  fence(action: FenceAction, target: string, ctx: RequestContext): Promise<FenceOutcome>;
  hostlist(ctx: RequestContext): Promise<HostListResult>;
}
