/**
 * The reconnect delay of every loop that reopens something lost (the broker connection,
 * libvirt connections, guest sockets): `minMs`, doubling after each failed attempt up to
 * `maxMs`, reduced by a random fraction of at most `jitter` so that hosts that lost the same
 * peer at the same moment do not all retry in step. Jitter only ever shortens a delay, so
 * `maxMs` stays an upper bound on the time to the next attempt.
 */
export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  /** Fraction of the delay that may be taken off at random, 0..1. Default 0.2. */
  jitter?: number;
  /** Source of randomness in [0, 1); tests pass a fixed one. */
  random?: () => number;
}

export class Backoff {
  private attempts = 0;

  constructor(private readonly options: BackoffOptions) {}

  /** The delay before the next attempt, without jitter (for logs). */
  get nextBaseMs(): number {
    const { minMs, maxMs } = this.options;
    return Math.min(maxMs, minMs * 2 ** Math.min(this.attempts, 30));
  }

  /** The delay to wait now; each call counts one more failed attempt. */
  next(): number {
    const base = this.nextBaseMs;
    this.attempts++;
    const jitter = Math.min(1, Math.max(0, this.options.jitter ?? 0.2));
    const random = this.options.random ?? Math.random;
    return Math.round(base * (1 - jitter * random()));
  }

  /** After a success: the next failure starts again from `minMs`. */
  reset(): void {
    this.attempts = 0;
  }
}
