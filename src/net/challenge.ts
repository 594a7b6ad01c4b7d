/**
 * Mutual challenge-response (docs/protocol.md §5). The side that opened the session (always the client) challenges
 * first; the daemon responds, then challenges. Sequence: C→D 64, D→C 64, D→C 64, C→D 64.
 *
 * Reflection. That order makes every daemon an oracle: it answers a 64-byte challenge before the
 * peer has proven anything. An attacker without the key who holds two signed requests the daemon
 * accepts (captures) opens two sessions, takes the daemon's challenge from one and sends it as
 * its own challenge on the other; the daemon's answer there is the answer the first session
 * expects. C escapes this only because it serves one session at a time.
 *
 * The wire order cannot change (the C clients expect it), so the daemon marks its challenges:
 * 32 random bytes followed by HMAC-SHA-256(key, label ‖ those bytes) cut to 32 bytes. To a client
 * this is 64 unpredictable bytes, as before. Before answering, the daemon checks whether the
 * client's challenge carries the mark and refuses to answer if it does. Every daemon holding the
 * key recognises every other's challenges, so reflection fails within a session, across sessions,
 * across listeners and across daemons sharing the key, with no shared state. Without the key
 * nobody can make a challenge carry the mark; a client's random challenge carries it by chance
 * with probability 2^-256. digest64 is prefix-keyed SHA-x, so length extension yields answers to
 * longer inputs only, never to another 64-byte challenge.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { CHALLENGE_SIZE, HashType, type HashCode } from '../protocol/constants.js';
import { constantTimeEqual, digest64, randomChallenge } from '../protocol/digest.js';
import { ByteReader, writeAll } from './byte-reader.js';

export class ChallengeFailedError extends Error {}

/** The client sent a challenge one of our daemons issued: a reflection attempt. */
export class ChallengeReflectedError extends ChallengeFailedError {
  constructor() {
    super('reflected challenge');
  }
}

const MARK_LABEL = Buffer.from('virtfence daemon challenge v1\0');
const NONCE_SIZE = CHALLENGE_SIZE / 2;

function mark(key: Buffer, nonce: Buffer): Buffer {
  return createHmac('sha256', key).update(MARK_LABEL).update(nonce).digest();
}

/** A fresh daemon challenge: 32 random bytes and their mark. */
export function daemonChallenge(key: Buffer): Buffer {
  const nonce = randomBytes(NONCE_SIZE);
  return Buffer.concat([nonce, mark(key, nonce).subarray(0, CHALLENGE_SIZE - NONCE_SIZE)]);
}

/** Whether a challenge was issued by a daemon holding `key` (constant time in the mark). */
export function isDaemonChallenge(key: Buffer, challenge: Buffer): boolean {
  if (challenge.length !== CHALLENGE_SIZE) return false;
  const expected = mark(key, challenge.subarray(0, NONCE_SIZE));
  return constantTimeEqual(
    challenge.subarray(NONCE_SIZE),
    expected.subarray(0, CHALLENGE_SIZE - NONCE_SIZE),
  );
}

/** Daemon side: answer the client's challenge (unless it is one of ours), then challenge it. */
export async function authenticateClient(
  socket: Duplex,
  reader: ByteReader,
  auth: HashCode,
  key: Buffer,
  stepTimeoutMs: number,
): Promise<void> {
  if (auth === HashType.none) return;
  const theirs = await reader.readExact(CHALLENGE_SIZE, stepTimeoutMs, 'client challenge');
  if (isDaemonChallenge(key, theirs)) throw new ChallengeReflectedError();
  const ours = daemonChallenge(key);
  // Response and counter-challenge in one segment: the client reads them as two 64-byte blocks.
  await writeAll(socket, Buffer.concat([digest64(auth, key, theirs), ours]), stepTimeoutMs);
  const answer = await reader.readExact(CHALLENGE_SIZE, stepTimeoutMs, 'challenge response');
  if (!constantTimeEqual(answer, digest64(auth, key, ours))) {
    throw new ChallengeFailedError('remote failed challenge');
  }
}

/** Client side: challenge the daemon, check its answer, then answer its challenge. */
export async function authenticateServer(
  socket: Duplex,
  reader: ByteReader,
  auth: HashCode,
  key: Buffer,
  stepTimeoutMs: number,
): Promise<void> {
  if (auth === HashType.none) return;
  const ours = randomChallenge();
  await writeAll(socket, ours, stepTimeoutMs);
  const answer = await reader.readExact(CHALLENGE_SIZE, stepTimeoutMs, 'challenge response');
  if (!constantTimeEqual(answer, digest64(auth, key, ours))) {
    throw new ChallengeFailedError('invalid response to challenge');
  }
  const theirs = await reader.readExact(CHALLENGE_SIZE, stepTimeoutMs, 'server challenge');
  await writeAll(socket, digest64(auth, key, theirs), stepTimeoutMs);
}
