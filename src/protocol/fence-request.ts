/** The 176-byte `fence_req` structure (docs/protocol.md §3): encode, decode, sign, verify. */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { AF_INET, AF_INET6, DOMAIN_NAME_MAX, HashType, type HashCode } from './constants.js';
import { constantTimeEqual, digest64 } from './digest.js';

export const FENCE_REQ_SIZE = 176;
const OFF = {
  request: 0x00,
  hashtype: 0x01,
  addrlen: 0x02,
  flags: 0x03,
  domain: 0x04,
  address: 0x44,
  port: 0x60,
  random: 0x62,
  seqno: 0x68,
  family: 0x6c,
  hash: 0x70,
} as const;
const ADDRESS_FIELD = 28;
export const FLAG_USE_UUID = 0x01;

export interface FenceRequest {
  request: number;
  hashtype: number;
  addrlen: number;
  flags: number;
  /** Target VM name or UUID (empty for list/monitor). */
  domain: string;
  /** Callback address as text ('' when the field is all zero, as in TCP mode). */
  address: string;
  port: number;
  random: Buffer;
  seqno: number;
  family: number;
  hash: Buffer;
}

/** Read a NUL-terminated string from a fixed field, cut at the field size. */
export function readCString(buf: Buffer, start: number, size: number): string {
  const field = buf.subarray(start, start + size);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? size : nul).toString('utf8');
}

function writeCString(buf: Buffer, start: number, size: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length >= size) throw new RangeError(`string longer than ${size - 1} bytes`);
  bytes.copy(buf, start);
}

function addressToText(raw: Buffer, family: number): string {
  if (family === AF_INET) return Array.from(raw.subarray(0, 4)).join('.');
  if (family === AF_INET6) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(raw.readUInt16BE(i).toString(16));
    return compressIpv6(groups);
  }
  return '';
}

function compressIpv6(groups: string[]): string {
  // Replace the longest run of zero groups (length >= 2) by '::', as inet_ntop does.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== '0') {
      i += 1;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j += 1;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart === -1) return groups.join(':');
  const head = groups.slice(0, bestStart).join(':');
  const tail = groups.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}

/** Raw network-order bytes of an IP literal. */
export function addressBytes(text: string): Buffer {
  const version = isIP(text);
  if (version === 4) return Buffer.from(text.split('.').map(Number));
  if (version === 6) {
    const [headText = '', tailText] = text.split('::');
    const head = headText ? headText.split(':') : [];
    const tail = tailText !== undefined && tailText !== '' ? tailText.split(':') : [];
    const fill =
      tailText === undefined ? [] : new Array<string>(8 - head.length - tail.length).fill('0');
    const groups = [...head, ...fill, ...tail];
    const out = Buffer.alloc(16);
    groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
    return out;
  }
  throw new TypeError(`not an IP address: ${text}`);
}

export function decodeFenceRequest(buf: Buffer): FenceRequest {
  if (buf.length < FENCE_REQ_SIZE) {
    throw new RangeError(`fence request is ${buf.length} bytes, expected ${FENCE_REQ_SIZE}`);
  }
  const family = buf.readUInt32LE(OFF.family);
  return {
    request: buf[OFF.request] ?? 0,
    hashtype: buf[OFF.hashtype] ?? 0,
    addrlen: buf[OFF.addrlen] ?? 0,
    flags: buf[OFF.flags] ?? 0,
    domain: readCString(buf, OFF.domain, DOMAIN_NAME_MAX),
    address: addressToText(buf.subarray(OFF.address, OFF.address + ADDRESS_FIELD), family),
    port: buf.readUInt16LE(OFF.port),
    random: Buffer.from(buf.subarray(OFF.random, OFF.random + 6)),
    seqno: buf.readUInt32LE(OFF.seqno),
    family,
    hash: Buffer.from(buf.subarray(OFF.hash, OFF.hash + 64)),
  };
}

export interface FenceRequestFields {
  request: number;
  hashtype: HashCode;
  domain?: string;
  flags?: number;
  /** Callback address literal; omit for TCP/vsock mode. */
  address?: string;
  port?: number;
  seqno: number;
  /** Fixed random bytes (tests); fresh ones are drawn when hashtype is not none. */
  random?: Buffer;
}

/** Build and sign a request as the clients do (docs/protocol.md §3.1). */
export function encodeFenceRequest(fields: FenceRequestFields, key: Buffer): Buffer {
  const buf = Buffer.alloc(FENCE_REQ_SIZE);
  buf[OFF.request] = fields.request;
  buf[OFF.hashtype] = fields.hashtype;
  buf[OFF.flags] = fields.flags ?? 0;
  writeCString(buf, OFF.domain, DOMAIN_NAME_MAX, fields.domain ?? '');
  if (fields.address) {
    const raw = addressBytes(fields.address);
    raw.copy(buf, OFF.address);
    buf[OFF.addrlen] = raw.length;
    buf.writeUInt32LE(raw.length === 4 ? AF_INET : AF_INET6, OFF.family);
    buf.writeUInt16LE(fields.port ?? 0, OFF.port);
  }
  buf.writeUInt32LE(fields.seqno >>> 0, OFF.seqno);
  if (fields.hashtype !== HashType.none) {
    (fields.random ?? randomBytes(6)).copy(buf, OFF.random, 0, 6);
    digest64(fields.hashtype, key, buf).copy(buf, OFF.hash);
  }
  return buf;
}

export type VerifyResult =
  { ok: true } | { ok: false; reason: 'hash-too-weak' | 'no-key' | 'bad-hash-type' | 'bad-digest' };

/** Daemon-side verification (docs/protocol.md §3.2) with the configured minimum hash. */
export function verifyFenceRequest(buf: Buffer, minHash: HashCode, key: Buffer): VerifyResult {
  const hashtype = buf[OFF.hashtype] ?? 0;
  if (hashtype < minHash) return { ok: false, reason: 'hash-too-weak' };
  if (hashtype === HashType.none) return { ok: true };
  if (hashtype > HashType.sha512) return { ok: false, reason: 'bad-hash-type' };
  if (key.length === 0) return { ok: false, reason: 'no-key' };
  const unsigned = Buffer.from(buf.subarray(0, FENCE_REQ_SIZE));
  unsigned.fill(0, OFF.hash, OFF.hash + 64);
  const expected = digest64(hashtype as HashCode, key, unsigned);
  const ok = constantTimeEqual(expected, buf.subarray(OFF.hash, OFF.hash + 64));
  return ok ? { ok: true } : { ok: false, reason: 'bad-digest' };
}
