/**
 * One direct-TCP (or vsock) connection, in the order of docs/protocol.md §8: read the 176-byte request
 * within 1 s, verify, duplicate check, mutual authentication, dispatch, write the result,
 * record history, close.
 */
import type { Duplex } from 'node:stream';
import { HashType, opName, type HashCode } from '../../protocol/constants.js';
import {
  decodeFenceRequest,
  FENCE_REQ_SIZE,
  verifyFenceRequest,
} from '../../protocol/fence-request.js';
import { RequestHistory } from '../../protocol/history.js';
import { ReplayFilter } from '../../protocol/replay-filter.js';
import {
  ByteReader,
  ReadTimeoutError,
  StreamClosedError,
  TooMuchDataError,
  writeAll,
} from '../../net/byte-reader.js';
import { authenticateClient, ChallengeReflectedError } from '../../net/challenge.js';
import {
  createRateLimitedLog,
  DEFAULT_DROP_LOG_INTERVAL_MS,
  type Logger,
  type RateLimitedLog,
} from '../../util/logger.js';
import { failureReason } from '../failure.js';
import type { RequestHandler, RequestResult } from '../listener.js';
import { encodeResult, SESSION_READ_LIMIT } from '../session.js';

export interface StreamTimeouts {
  /** Whole 176-byte request (C: 1 s). */
  requestMs: number;
  /** Each challenge-response step (C: 10 s). */
  authStepMs: number;
  /** Writing the result or host list. */
  writeMs: number;
}

export const DEFAULT_STREAM_TIMEOUTS: StreamTimeouts = {
  requestMs: 1_000,
  authStepMs: 10_000,
  writeMs: 10_000,
};

export interface StreamSessionContext {
  listener: string;
  /** Minimum accepted packet hash. */
  hash: HashCode;
  /** Challenge-response algorithm. */
  auth: HashCode;
  key: Buffer;
  history: RequestHistory;
  /** The daemon's shared exact-replay filter. */
  replays: ReplayFilter;
  /** Rate-limited log of everything an unauthenticated peer causes. */
  drops: RateLimitedLog;
  /** History keys of requests being processed now: a concurrent copy is a duplicate too. */
  inFlight: Set<string>;
  handler: RequestHandler;
  logger: Logger;
  timeouts: StreamTimeouts;
}

/** What a stream listener (TCP, vsock) keeps for all its connections: everything but the handler. */
export type StreamSessionShared = Omit<StreamSessionContext, 'handler'>;

/**
 * The shared state of stream listener `listener` (its child logger `logger`), from its
 * configuration (`hash`, `auth`), the daemon's key and replay filter, and its tuning.
 */
export function createStreamSessionShared(
  listener: string,
  { hash, auth }: { hash: HashCode; auth: HashCode },
  deps: { key: Buffer; replays?: ReplayFilter | undefined },
  logger: Logger,
  tuning: {
    timeouts?: Partial<StreamTimeouts> | undefined;
    dropLogIntervalMs?: number | undefined;
  },
): StreamSessionShared {
  return {
    listener,
    hash,
    auth,
    key: deps.key,
    logger,
    history: new RequestHistory(),
    // The daemon's shared filter; a listener on its own (tests) gets one of its own.
    replays: deps.replays ?? new ReplayFilter(),
    drops: createRateLimitedLog(logger, tuning.dropLogIntervalMs ?? DEFAULT_DROP_LOG_INTERVAL_MS),
    inFlight: new Set(),
    timeouts: { ...DEFAULT_STREAM_TIMEOUTS, ...tuning.timeouts },
  };
}

/** Why a connection was closed without an answer; logged as `reason`. */
export type RejectReason =
  | 'short-read'
  | 'too-much-data'
  | 'bad-hash'
  | 'hash-too-weak'
  | 'no-key'
  | 'replay'
  | 'auth-failed'
  | 'reflected-challenge'
  | 'duplicate';

class RejectedError extends Error {
  constructor(readonly reason: RejectReason) {
    super(reason);
  }
}

/**
 * Serve one connection; never throws (every outcome is logged, rate-limited while the peer is
 * unauthenticated), always closes the socket. `onAuthenticated` runs once the peer has passed
 * the challenge-response (the listener stops counting it as evictable).
 */
export async function serveStreamConnection(
  socket: Duplex,
  source: string | undefined,
  ctx: StreamSessionContext,
  onAuthenticated: () => void = () => undefined,
): Promise<void> {
  const log = ctx.logger.child({ peer: source });
  try {
    await serveRequest(socket, source, ctx, log, onAuthenticated);
  } catch (err) {
    if (err instanceof RejectedError) {
      ctx.drops.log('warn', 'request-rejected', err.reason, { peer: source });
    } else {
      ctx.drops.log('warn', 'connection-failed', failureReason(err), {
        peer: source,
        error: (err as Error).message,
      });
    }
  } finally {
    socket.end();
    socket.destroy();
  }
}

async function serveRequest(
  socket: Duplex,
  source: string | undefined,
  ctx: StreamSessionContext,
  log: Logger,
  onAuthenticated: () => void,
): Promise<void> {
  const reader = new ByteReader(socket, SESSION_READ_LIMIT);
  const packet = await readRequest(reader, ctx.timeouts.requestMs);
  checkSignature(packet, ctx);
  // Shared with every other keyed listener: a capture replayed from any of them is refused.
  if (packet[1] !== HashType.none && ctx.replays.checkAndRecord(ReplayFilter.identity(packet))) {
    throw new RejectedError('replay');
  }
  const request = decodeFenceRequest(packet);
  const historyKey = RequestHistory.key(request.request, request.seqno, request.domain);
  if (ctx.history.has(historyKey) || ctx.inFlight.has(historyKey))
    throw new RejectedError('duplicate');
  ctx.inFlight.add(historyKey);
  try {
    await authenticate(socket, reader, ctx);
    onAuthenticated();
    const result = await dispatch(ctx, log, {
      listener: ctx.listener,
      op: request.request,
      target: request.domain,
      source,
      seqno: request.seqno,
      flags: request.flags,
    });
    await writeAll(socket, encodeResult(result), ctx.timeouts.writeMs);
    ctx.history.record(historyKey);
    log.debug('request-answered', { op: opName(request.request), code: result.code });
  } finally {
    ctx.inFlight.delete(historyKey);
  }
}

async function readRequest(reader: ByteReader, timeoutMs: number): Promise<Buffer> {
  try {
    return await reader.readExact(FENCE_REQ_SIZE, timeoutMs, 'fence request');
  } catch (err) {
    if (err instanceof ReadTimeoutError || err instanceof StreamClosedError) {
      throw new RejectedError('short-read');
    }
    if (err instanceof TooMuchDataError) throw new RejectedError('too-much-data');
    throw err;
  }
}

function checkSignature(packet: Buffer, ctx: StreamSessionContext): void {
  const verdict = verifyFenceRequest(packet, ctx.hash, ctx.key);
  if (verdict.ok) return;
  if (verdict.reason === 'hash-too-weak' || verdict.reason === 'no-key') {
    throw new RejectedError(verdict.reason);
  }
  throw new RejectedError('bad-hash');
}

async function authenticate(
  socket: Duplex,
  reader: ByteReader,
  ctx: StreamSessionContext,
): Promise<void> {
  if (ctx.auth !== HashType.none && ctx.key.length === 0) throw new RejectedError('no-key');
  try {
    await authenticateClient(socket, reader, ctx.auth, ctx.key, ctx.timeouts.authStepMs);
  } catch (err) {
    throw new RejectedError(
      err instanceof ChallengeReflectedError ? 'reflected-challenge' : 'auth-failed',
    );
  }
}

/** A handler failure answers FAIL, as the C daemon does when nothing handled the request. */
async function dispatch(
  ctx: StreamSessionContext,
  log: Logger,
  request: Parameters<RequestHandler>[0],
): Promise<RequestResult> {
  try {
    return await ctx.handler(request);
  } catch (err) {
    log.error('handler-failed', { op: opName(request.op), error: (err as Error).message });
    return { code: 1, reason: 'handler-error' };
  }
}
