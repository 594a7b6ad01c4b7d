/** Reads exact byte counts from a stream socket with a deadline per read. */
import type { Duplex } from 'node:stream';

export class ReadTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`timed out after ${ms} ms waiting for ${what}`);
  }
}

export class StreamClosedError extends Error {
  constructor(what: string, got: number) {
    super(`connection closed while waiting for ${what} (${got} bytes received)`);
  }
}

/** The peer sent more than the reader may hold: a daemon never buffers unbounded input. */
export class TooMuchDataError extends Error {
  constructor(limit: number) {
    super(`peer sent more than ${limit} unread bytes`);
  }
}

export class ByteReader {
  private buffered: Buffer[] = [];
  private length = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  /** `maxBuffered`: unread bytes held at most; beyond it the stream is destroyed. */
  constructor(stream: Duplex, maxBuffered = Infinity) {
    stream.on('data', (chunk: Buffer) => {
      if (this.failure) return;
      this.buffered.push(chunk);
      this.length += chunk.length;
      if (this.length > maxBuffered) {
        this.failure = new TooMuchDataError(maxBuffered);
        this.buffered = [];
        this.length = 0;
        stream.destroy();
      }
      this.notify();
    });
    stream.on('end', () => {
      this.ended = true;
      this.notify();
    });
    stream.on('close', () => {
      this.ended = true;
      this.notify();
    });
    stream.on('error', (err: Error) => {
      this.failure = err;
      this.notify();
    });
  }

  get available(): number {
    return this.length;
  }

  /** Resolve with exactly `n` bytes, or reject on timeout, end of stream or socket error. */
  async readExact(n: number, timeoutMs: number, what = `${n} bytes`): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.length < n) {
      if (this.failure) throw this.failure;
      if (this.ended) throw new StreamClosedError(what, this.length);
      const left = deadline - Date.now();
      if (left <= 0) throw new ReadTimeoutError(what, timeoutMs);
      await this.waitForData(left);
    }
    return this.take(n);
  }

  /** Whatever is buffered now (possibly empty). */
  drain(): Buffer {
    return this.take(this.length);
  }

  /** Wait until more data, end or error arrives, or `ms` passes. */
  waitForData(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      this.wake = done;
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  get closed(): boolean {
    return this.ended || this.failure !== undefined;
  }

  private take(n: number): Buffer {
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    const out = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return out;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** Write and wait until the bytes are handed to the kernel, with a deadline. */
export function writeAll(stream: Duplex, data: Buffer, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`write timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    stream.write(data, (err) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    });
  });
}
