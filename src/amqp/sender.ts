/**
 * An awaitable sender: one rhea sender link whose send() resolves only when the broker settles
 * the delivery as `accepted`, and rejects (BusSendError) on released, rejected, modified, on
 * the send timeout, or when the link or connection goes away with the delivery unsettled.
 * Messages wait in order while the link has no credit; nothing outlives the link.
 */
import type { Delivery, Message as AmqpMessage, Sender } from 'rhea';
import { BusSendError, errorText, amqpCondition, type BusSendFailure } from './errors.js';

export type SendOutcome = 'accepted' | BusSendFailure;

interface Pending {
  resolve: () => void;
  reject: (err: BusSendError) => void;
  timer: NodeJS.Timeout;
}

export class AwaitableSender {
  private waiting: { message: AmqpMessage; pending: Pending }[] = [];
  private readonly inFlight = new Map<Delivery, Pending>();
  lastUsed = Date.now();

  constructor(
    readonly link: Sender,
    readonly address: string,
    /** Kept open when idle (the fan-out sender). */
    readonly pinned: boolean,
    private readonly timeoutMs: number,
    private readonly counted: (outcome: SendOutcome) => void,
  ) {}

  /** Deliveries waiting for credit or for their outcome. */
  get busy(): boolean {
    return this.waiting.length > 0 || this.inFlight.size > 0;
  }

  send(message: AmqpMessage): Promise<void> {
    this.lastUsed = Date.now();
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiting = this.waiting.filter((w) => w.pending !== pending);
          for (const [d, p] of this.inFlight) if (p === pending) this.inFlight.delete(d);
          this.finish(pending, 'timeout', `no outcome within ${this.timeoutMs} ms`);
        }, this.timeoutMs),
      };
      this.waiting.push({ message, pending });
      this.flush();
    });
  }

  /** Sends what waits while the link has credit (also on rhea's `sendable`). */
  flush(): void {
    while (this.waiting.length > 0 && this.link.sendable()) {
      const next = this.waiting.shift();
      if (!next) break;
      this.inFlight.set(this.link.send(next.message), next.pending);
    }
  }

  /** An outcome for one of our deliveries; false when the delivery is not ours. */
  settle(delivery: Delivery, outcome: SendOutcome, detail?: unknown): boolean {
    const pending = this.inFlight.get(delivery);
    if (!pending) return false;
    this.inFlight.delete(delivery);
    if (outcome === 'accepted') {
      clearTimeout(pending.timer);
      this.counted('accepted');
      pending.resolve();
    } else {
      this.finish(pending, outcome, detail === undefined ? undefined : errorText(detail), detail);
    }
    return true;
  }

  /** Rejects everything waiting or in flight (the link or connection is gone). */
  failAll(failure: BusSendFailure, detail: string): void {
    const all = [...this.waiting.map((w) => w.pending), ...this.inFlight.values()];
    this.waiting = [];
    this.inFlight.clear();
    for (const p of all) this.finish(p, failure, detail);
  }

  private finish(
    pending: Pending,
    failure: BusSendFailure,
    detail?: string,
    cause?: unknown,
  ): void {
    clearTimeout(pending.timer);
    this.counted(failure);
    pending.reject(new BusSendError(failure, detail, amqpCondition(cause)));
  }
}
