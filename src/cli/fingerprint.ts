import { createHash } from 'node:crypto';

/** First 16 hex digits of the key's SHA-256: safe to show and to compare between hosts. */
export function keyFingerprint(key: Uint8Array): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}
