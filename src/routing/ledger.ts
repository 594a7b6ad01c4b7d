/**
 * Exactly-once execution per request id (docs/routing.md §7).
 *
 * The same fence_xvm request reaches several hosts (every daemon on the multicast group hears
 * it) and is retransmitted every 2 s with the same seqno. All copies map to one request id,
 * so the owner executes it once and every caller, on whatever host, gets the same answer:
 * callers that arrive while it runs share the pending promise; callers that arrive later get
 * the cached result for `windowMs`.
 */

export interface RequestIdInput {
  action: string;
  seqno: number;
  target: string;
  /** Requester address; included only when `includeSource` (see requestId). */
  source?: string | undefined;
}

/**
 * The id all copies of one request share: (action, seqno, target lower-case) — the key of the
 * C daemon's duplicate history (docs/protocol.md §7). The callback address is left out by default because
 * fence_xvm sends one copy per local address with a different `address` field each; two
 * different clients colliding needs the same op, target and microsecond seqno within the
 * window (the same collision the C history accepts).
 */
export function requestId(input: RequestIdInput, includeSource = false): string {
  const base = `${input.action}:${input.seqno >>> 0}:${input.target.toLowerCase()}`;
  const id = includeSource && input.source ? `${base}@${input.source}` : base;
  return id.length > 128 ? id.slice(0, 128) : id;
}

interface Entry<T> {
  promise: Promise<T>;
  done: boolean;
  value?: T;
  finishedAt?: number;
}

export interface LedgerResult<T> {
  value: T;
  /** 'executed': this call ran it; 'joined': shared a running one; 'cached': answered from cache. */
  how: 'executed' | 'joined' | 'cached';
}

export interface LedgerOptions<T> {
  /** How long a finished result is served from cache (ms). */
  windowMs: number;
  /** Bound on remembered entries (oldest finished ones go first). */
  maxEntries?: number;
  now?: () => number;
  /** Whether a finished value may be cached (default: all). Uncached values only dedup in-flight. */
  cacheable?: (value: T) => boolean;
}

export class RequestLedger<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly now: () => number;
  private readonly maxEntries: number;
  executions = 0;

  constructor(private readonly options: LedgerOptions<T>) {
    this.now = options.now ?? Date.now;
    this.maxEntries = options.maxEntries ?? 100_000;
  }

  /** Run `exec` for `id` unless it is running or finished within the window. */
  async run(id: string, exec: () => Promise<T>): Promise<LedgerResult<T>> {
    this.purge();
    const existing = this.entries.get(id);
    if (existing) {
      if (existing.done) return { value: existing.value as T, how: 'cached' };
      return { value: await existing.promise, how: 'joined' };
    }
    const entry: Entry<T> = {
      promise: Promise.resolve() as Promise<unknown> as Promise<T>,
      done: false,
    };
    this.executions++;
    entry.promise = (async () => {
      try {
        const value = await exec();
        const cacheable = this.options.cacheable ? this.options.cacheable(value) : true;
        if (cacheable) {
          entry.done = true;
          entry.value = value;
          entry.finishedAt = this.now();
          // Re-insert so map order is finish order (purge stops at the first fresh entry).
          this.entries.delete(id);
          this.entries.set(id, entry);
        } else if (this.entries.get(id) === entry) {
          this.entries.delete(id);
        }
        return value;
      } catch (err) {
        if (this.entries.get(id) === entry) this.entries.delete(id);
        throw err;
      }
    })();
    this.entries.set(id, entry);
    this.trim();
    return { value: await entry.promise, how: 'executed' };
  }

  /** The cached result, if finished within the window. */
  peek(id: string): T | undefined {
    this.purge();
    const e = this.entries.get(id);
    return e?.done ? e.value : undefined;
  }

  get size(): number {
    return this.entries.size;
  }

  private purge(): void {
    const cutoff = this.now() - this.options.windowMs;
    for (const [id, e] of this.entries) {
      if (!e.done) continue;
      if ((e.finishedAt ?? 0) >= cutoff) break;
      this.entries.delete(id);
    }
  }

  private trim(): void {
    if (this.entries.size <= this.maxEntries) return;
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.maxEntries) break;
      if (e.done) this.entries.delete(id);
    }
  }
}
