/** The contract every listener plugin implements; the shared compliance suite tests it. */
import type { HostEntry } from '../protocol/hostlist.js';

export interface IncomingRequest {
  listener: string;
  /** Operation code of docs/protocol.md §1.1. */
  op: number;
  /** Target name or UUID (may be empty). */
  target: string;
  /** Permission source (IP, UUID or CID); undefined if unknown. */
  source: string | undefined;
  seqno: number;
  flags: number;
}

export interface RequestResult {
  /** docs/protocol.md §1.3 code; 0xFD for a host list. */
  code: number;
  reason: string;
  hostlist?: HostEntry[];
  /** Final byte after a host list. */
  hostlistCode?: number;
  /** Host that executed the operation, when the backend routed it (amqp). */
  executedBy?: string;
}

export type RequestHandler = (request: IncomingRequest) => Promise<RequestResult>;

export interface Listener {
  readonly name: string;
  start(handler: RequestHandler): Promise<void>;
  stop(): Promise<void>;
}

/** What the daemon hands a listener factory. */
export interface ListenerDeps {
  logger: import('../util/logger.js').Logger;
  /** Key bytes read from the listener's key_file (empty when hash and auth are none). */
  key: Buffer;
  /** Opens libvirt for listeners that watch domains (serial). */
  openHypervisor: (
    uri: string | undefined,
  ) => Promise<import('../libvirt/hypervisor.js').Hypervisor>;
  /**
   * The daemon's one exact-replay filter, shared by every keyed listener so a capture replayed
   * into another listener is refused too. A listener created without one makes its own.
   */
  replays?: import('../protocol/replay-filter.js').ReplayFilter;
}
