/** Serial / vmchannel framing (docs/protocol.md §10): 74-byte requests, 5-byte responses, the "abba" magic. */
import { DOMAIN_NAME_MAX } from './constants.js';
import { readCString } from './fence-request.js';

export const SERIAL_MAGIC = Buffer.from([0x61, 0x62, 0x62, 0x61]);
export const SERIAL_REQ_SIZE = 74;
export const SERIAL_RESP_SIZE = 5;

export interface SerialRequest {
  magicOk: boolean;
  request: number;
  flags: number;
  domain: string;
  seqno: number;
}

export function encodeSerialRequest(fields: {
  request: number;
  domain?: string;
  seqno: number;
  flags?: number;
}): Buffer {
  const buf = Buffer.alloc(SERIAL_REQ_SIZE);
  SERIAL_MAGIC.copy(buf, 0);
  buf[4] = fields.request;
  buf[5] = fields.flags ?? 0;
  const name = Buffer.from(fields.domain ?? '', 'utf8');
  if (name.length >= DOMAIN_NAME_MAX) throw new RangeError('domain name too long');
  name.copy(buf, 6);
  buf.writeUInt32LE(fields.seqno >>> 0, 70);
  return buf;
}

export function decodeSerialRequest(buf: Buffer): SerialRequest {
  if (buf.length < SERIAL_REQ_SIZE) throw new RangeError(`serial request is ${buf.length} bytes`);
  return {
    magicOk: buf.subarray(0, 4).equals(SERIAL_MAGIC),
    request: buf[4] ?? 0,
    flags: buf[5] ?? 0,
    domain: readCString(buf, 6, DOMAIN_NAME_MAX),
    seqno: buf.readUInt32LE(70),
  };
}

export function encodeSerialResponse(code: number): Buffer {
  return Buffer.concat([SERIAL_MAGIC, Buffer.from([code & 0xff])]);
}

/**
 * Incremental magic finder over a byte stream. Unlike the C client's matcher it re-examines the
 * byte that broke a partial match, so "abab ba" style prefixes are handled (a documented fix).
 */
export class MagicScanner {
  private matched = 0;

  /** Feed bytes; returns the offset just past the magic in `chunk`, or -1 if not yet found. */
  feed(chunk: Buffer): number {
    for (let i = 0; i < chunk.length; i += 1) {
      const byte = chunk[i];
      while (this.matched > 0 && byte !== SERIAL_MAGIC[this.matched]) {
        this.matched = this.fallback(this.matched);
      }
      if (byte === SERIAL_MAGIC[this.matched]) this.matched += 1;
      if (this.matched === SERIAL_MAGIC.length) {
        this.matched = 0;
        return i + 1;
      }
    }
    return -1;
  }

  reset(): void {
    this.matched = 0;
  }

  /** KMP failure function for "abba": after a mismatch at position n, how much still matches. */
  private fallback(n: number): number {
    // Prefixes of "abba" that are also suffixes: "abb" -> 0, "ab" -> 0, "a" -> 0 ... "abba" -> "a".
    return n === 4 ? 1 : 0;
  }
}
