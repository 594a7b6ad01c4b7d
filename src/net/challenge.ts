/**
 * Mutual challenge-response (docs/protocol.md §5). The side that opened the session (always the client) challenges
 * first; the daemon responds, then challenges. Sequence: C→D 64, D→C 64, D→C 64, C→D 64.
 */
import type { Duplex } from 'node:stream';
import { CHALLENGE_SIZE, HashType, type HashCode } from '../protocol/constants.js';
import { constantTimeEqual, digest64, randomChallenge } from '../protocol/digest.js';
import { ByteReader, writeAll } from './byte-reader.js';

export class ChallengeFailedError extends Error {}

/** Daemon side: answer the client's challenge, then challenge it. */
export async function authenticateClient(
  socket: Duplex,
  reader: ByteReader,
  auth: HashCode,
  key: Buffer,
  stepTimeoutMs: number,
): Promise<void> {
  if (auth === HashType.none) return;
  const theirs = await reader.readExact(CHALLENGE_SIZE, stepTimeoutMs, 'client challenge');
  const ours = randomChallenge();
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
