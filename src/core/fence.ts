/**
 * What a fence request is, below every layer that handles one: listeners and the dispatcher
 * build it, backends execute it, the routing decisions reason about it.
 */

/**
 * The operations a backend executes (the wire codes are in src/protocol/constants.ts); the
 * broker messages take the same list (src/messages/schemas.ts).
 */
export const FENCE_ACTIONS = ['off', 'on', 'reboot', 'status', 'null', 'devstatus'] as const;
export type FenceAction = (typeof FENCE_ACTIONS)[number];

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

/**
 * Every reason a fence outcome carries, as the README's reason tables publish them: the
 * libvirt backend's, then the routed backend's. One list, so a new reason is a new entry here.
 */
export const FENCE_REASONS = [
  // libvirt backend
  'ok',
  'not-found',
  'already-off',
  'already-on',
  'destroy-failed',
  'start-failed',
  'still-running',
  'libvirt-unavailable',
  'no-handler',
  'local-error',
  // routed (amqp) backend: where it ran, why it did not
  'local-owner',
  'remote-owner',
  'local-untracked',
  'unknown-vm',
  'ambiguous-name',
  'owner-dead',
  'owner-fenced',
  'owner-fenced-cannot-start',
  'migrated-away',
  'no-reply',
  'broker-unavailable',
  'not-synced',
  'unconfirmed-off',
  'deadline-passed',
  'not-owner',
  'stale-request',
  // cpg backend: a target of the other kind than name_mode
  'name-mode',
  'bad-code',
  'unknown-reason',
  'null-op',
  'devstatus',
  'shutdown',
  'backend-not-started',
] as const;
export type FenceReason = (typeof FENCE_REASONS)[number];

const KNOWN_REASONS: ReadonlySet<string> = new Set(FENCE_REASONS);

/** A reason read from the wire (another host's reply): one of ours, or `unknown-reason`. */
export function asFenceReason(reason: string): FenceReason {
  return KNOWN_REASONS.has(reason) ? (reason as FenceReason) : 'unknown-reason';
}

/** A result code of docs/protocol.md §1.3 and a machine-readable reason for logs and exit codes. */
export interface FenceOutcome {
  code: number;
  reason: FenceReason;
  /** Host that executed the operation, when the backend knows (amqp). */
  executedBy?: string;
}
