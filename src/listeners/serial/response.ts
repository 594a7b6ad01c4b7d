/** Serial response framing (docs/protocol.md §10.2) and the answered-duplicate cache. */
import { Response } from '../../protocol/constants.js';
import { encodeHostList } from '../../protocol/hostlist.js';
import { encodeSerialResponse } from '../../protocol/serial.js';
import type { RequestResult } from '../listener.js';

/** `abba <code>`, or for a host list `abba fd`, entries, terminator, then `abba <final>`. */
export function encodeSerialResult(result: RequestResult): Buffer {
  if (result.code !== Response.HOSTLIST) return encodeSerialResponse(result.code);
  return Buffer.concat([
    encodeSerialResponse(Response.HOSTLIST),
    encodeHostList(result.hostlist ?? []),
    encodeSerialResponse(result.hostlistCode ?? 0),
  ]);
}

interface CachedResponse {
  response: Promise<Buffer>;
  /** When the response was produced; undefined while the request is being processed. */
  settledAt: number | undefined;
}

/**
 * Duplicates (docs/protocol.md §7) within the window get the first request's response instead of silence (C
 * sends nothing and the guest times out). Entries expire `windowMs` after their answer.
 */
export class ResponseCache {
  private readonly entries = new Map<string, CachedResponse>();

  constructor(
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
    private readonly maxEntries = 10_000,
  ) {}

  get(key: string): Promise<Buffer> | undefined {
    this.purge();
    return this.entries.get(key)?.response;
  }

  /** Remember the response being produced for `key`; returns the same promise. */
  remember(key: string, response: Promise<Buffer>): Promise<Buffer> {
    this.purge();
    if (this.entries.size >= this.maxEntries) this.evictOldestSettled();
    const entry: CachedResponse = { response, settledAt: undefined };
    this.entries.set(key, entry);
    const settle = (): void => {
      entry.settledAt = this.now();
    };
    response.then(settle, settle);
    return response;
  }

  get size(): number {
    return this.entries.size;
  }

  private purge(): void {
    const cutoff = this.now() - this.windowMs;
    for (const [key, entry] of this.entries) {
      if (entry.settledAt !== undefined && entry.settledAt < cutoff) this.entries.delete(key);
    }
  }

  private evictOldestSettled(): void {
    for (const [key, entry] of this.entries) {
      if (entry.settledAt !== undefined) {
        this.entries.delete(key);
        return;
      }
    }
  }
}
