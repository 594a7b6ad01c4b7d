/**
 * Duplicate suppression (docs/protocol.md §7): (request, seqno, domain case-insensitively) seen within the window.
 * Exact replays (the same signed bytes again) are the shared ReplayFilter's job (replay-filter.ts).
 */
export class RequestHistory {
  private readonly entries = new Map<string, number>();

  constructor(
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
    private readonly maxEntries = 100_000,
  ) {}

  static key(request: number, seqno: number, domain: string): string {
    return `${request}:${seqno}:${domain.toLowerCase()}`;
  }

  has(key: string): boolean {
    this.purge();
    return this.entries.has(key);
  }

  record(key: string): void {
    this.purge();
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.delete(key);
    this.entries.set(key, this.now());
  }

  get size(): number {
    return this.entries.size;
  }

  private purge(): void {
    const cutoff = this.now() - this.windowMs;
    for (const [key, when] of this.entries) {
      if (when >= cutoff) break; // insertion order is time order
      this.entries.delete(key);
    }
  }
}
