/** The contract between listeners (via the dispatcher) and backends. */
import type { HostEntry } from '../protocol/hostlist.js';
import type { FenceAction, FenceOutcome, RequestContext } from '../core/fence.js';

export type { FenceAction, FenceOutcome, RequestContext };

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
