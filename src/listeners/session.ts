/**
 * The part of a request shared by the callback (multicast) and direct (tcp, vsock) transports:
 * mutual authentication, the handler call, the result bytes.
 */
import type { Duplex } from 'node:stream';
import type { HashCode } from '../protocol/constants.js';
import { Response } from '../protocol/constants.js';
import { encodeHostListResponse } from '../protocol/hostlist.js';
import { ByteReader, writeAll } from '../net/byte-reader.js';
import { authenticateClient } from '../net/challenge.js';
import type { IncomingRequest, RequestHandler, RequestResult } from './listener.js';

/**
 * Unread bytes a daemon-side session holds at most: the protocol needs 176 + 64 + 64; anything
 * beyond a few KiB is a peer trying to make the daemon buffer.
 */
export const SESSION_READ_LIMIT = 4096;

export interface SessionOptions {
  auth: HashCode;
  key: Buffer;
  handler: RequestHandler;
  /** Per authentication step (C: 10 s). */
  authStepMs?: number;
  /** For writing the result (C: none for one byte, 1 s per host-list entry). */
  writeMs?: number;
}

export function encodeResult(result: RequestResult): Buffer {
  if (result.code === Response.HOSTLIST) {
    return encodeHostListResponse(result.hostlist ?? [], result.hostlistCode ?? 0);
  }
  return Buffer.from([result.code & 0xff]);
}

/**
 * Authenticate the peer, run the request, write the answer. Throws if authentication or the
 * write fails (the caller then records no history, as C does).
 */
export async function serveSession(
  socket: Duplex,
  reader: ByteReader,
  request: IncomingRequest,
  options: SessionOptions,
): Promise<RequestResult> {
  await authenticateClient(socket, reader, options.auth, options.key, options.authStepMs ?? 10_000);
  const result = await options.handler(request);
  await writeAll(socket, encodeResult(result), options.writeMs ?? 10_000);
  return result;
}
