/** Line-at-a-time reading from a stream (a TTY, a pipe), as fgets does for `fence_virtd -c`. */
import type { Readable } from 'node:stream';

export class LineReader {
  private buffer = '';
  private ended = false;
  private wake: (() => void) | undefined;
  private readonly onData = (chunk: Buffer | string): void => {
    this.buffer += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    this.notify();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };

  constructor(private readonly input: Readable) {
    input.on('data', this.onData);
    input.once('end', this.onEnd);
    input.once('close', this.onEnd);
    input.once('error', this.onEnd);
  }

  /** True once the input has ended and every buffered line was consumed. */
  get exhausted(): boolean {
    return this.ended && this.buffer.length === 0;
  }

  /** The next line without its newline, or undefined at end of input. */
  async readLine(): Promise<string | undefined> {
    for (;;) {
      const newline = this.buffer.indexOf('\n');
      if (newline >= 0) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        return line;
      }
      if (this.ended) {
        const rest = this.buffer;
        this.buffer = '';
        return rest.length > 0 ? rest : undefined;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Stops reading so that the process can exit. */
  close(): void {
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.off('close', this.onEnd);
    this.input.off('error', this.onEnd);
    this.input.pause();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
