/**
 * Turns a guest's byte stream into 74-byte serial requests (docs/protocol.md §10.1). Unlike C, which reads
 * 74 bytes blindly and never checks the magic, this resynchronises on the "abba" magic and
 * drops a request whose remaining 70 bytes do not arrive within `maxRequestMs` of its magic.
 * Memory is bounded: at most one partial request body is held.
 */
import {
  decodeSerialRequest,
  MagicScanner,
  SERIAL_MAGIC,
  SERIAL_REQ_SIZE,
  type SerialRequest,
} from '../../protocol/serial.js';

const BODY_SIZE = SERIAL_REQ_SIZE - SERIAL_MAGIC.length;

export interface ParseOutput {
  requests: SerialRequest[];
  /** Partial requests dropped because they did not complete in time. */
  incomplete: number;
}

export class SerialRequestParser {
  private readonly scanner = new MagicScanner();
  private body: Buffer[] = [];
  private bodyLength = 0;
  private magicAt: number | undefined;

  constructor(private readonly maxRequestMs = 1_000) {}

  /** Feed bytes received at time `now` (ms). */
  feed(chunk: Buffer, now: number): ParseOutput {
    const out: ParseOutput = { requests: [], incomplete: 0 };
    let offset = 0;
    while (offset < chunk.length) {
      if (this.magicAt === undefined) {
        const end = this.scanner.feed(chunk.subarray(offset));
        if (end < 0) break;
        offset += end;
        this.magicAt = now;
        continue;
      }
      if (now - this.magicAt > this.maxRequestMs) {
        this.dropPartial();
        out.incomplete += 1;
        continue;
      }
      const take = Math.min(BODY_SIZE - this.bodyLength, chunk.length - offset);
      this.body.push(chunk.subarray(offset, offset + take));
      this.bodyLength += take;
      offset += take;
      if (this.bodyLength === BODY_SIZE) out.requests.push(this.completeRequest());
    }
    return out;
  }

  /** True while a request has started but is not complete. */
  get pending(): boolean {
    return this.magicAt !== undefined;
  }

  private completeRequest(): SerialRequest {
    const request = decodeSerialRequest(Buffer.concat([SERIAL_MAGIC, ...this.body]));
    this.dropPartial();
    return request;
  }

  private dropPartial(): void {
    this.body = [];
    this.bodyLength = 0;
    this.magicAt = undefined;
  }
}
