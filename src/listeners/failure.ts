/** One word per way a session with an unauthenticated peer can fail, for logs and counters. */
import { ReadTimeoutError, StreamClosedError, TooMuchDataError } from '../net/byte-reader.js';
import { ChallengeFailedError, ChallengeReflectedError } from '../net/challenge.js';

const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ETIMEDOUT',
]);

export function failureReason(err: unknown): string {
  if (err instanceof ChallengeReflectedError) return 'reflected-challenge';
  if (err instanceof ChallengeFailedError) return 'auth-failed';
  if (err instanceof ReadTimeoutError) return 'timeout';
  if (err instanceof StreamClosedError) return 'peer-closed';
  if (err instanceof TooMuchDataError) return 'too-much-data';
  const message = err instanceof Error ? err.message : '';
  if (message.startsWith('connect timed out')) return 'connect-timeout';
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && CONNECT_ERRORS.has(code)) return 'connect-failed';
  return 'io-error';
}
