/** The keyed digest used everywhere in fence-virt (docs/protocol.md §2.2) and constant-time comparison. */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { DIGEST_FIELD, HashType, type HashCode } from './constants.js';

const ALGORITHMS: Record<number, string> = {
  [HashType.sha1]: 'sha1',
  [HashType.sha256]: 'sha256',
  [HashType.sha512]: 'sha512',
};

/** A(key || data), right-padded with zeros to 64 bytes. Not HMAC: this is the wire format. */
export function digest64(hash: HashCode, key: Buffer, data: Buffer): Buffer {
  const out = Buffer.alloc(DIGEST_FIELD);
  const algorithm = ALGORITHMS[hash];
  if (algorithm === undefined) return out;
  createHash(algorithm).update(key).update(data).digest().copy(out);
  return out;
}

/** Compare two byte strings without leaking where they differ. */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

export function randomChallenge(): Buffer {
  return randomBytes(64);
}
