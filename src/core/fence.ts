/**
 * What a fence request is, below every layer that handles one: listeners and the dispatcher
 * build it, backends execute it, the routing decisions reason about it.
 */

/** The operations a backend executes (the wire codes are in src/protocol/constants.ts). */
export type FenceAction = 'null' | 'off' | 'on' | 'reboot' | 'status' | 'devstatus';

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
