/**
 * What follows a TCP connection in the multicast callback, direct TCP and vsock paths (docs/protocol.md §5, §6):
 * the mutual challenge-response, then one result byte or a host list.
 */
import type { Duplex } from 'node:stream';
import { ByteReader } from '../net/byte-reader.js';
import { StreamClosedError } from '../net/byte-reader.js';
import { authenticateServer, ChallengeFailedError } from '../net/challenge.js';
import { errorText } from './io.js';
import { Response, type HashCode } from '../protocol/constants.js';
import { readHostList } from '../net/result-reader.js';
import type { AgentIO } from './io.js';

function ioReason(err: unknown): string {
  if (err instanceof StreamClosedError) return 'Connection closed by peer';
  return errorText(err);
}
import { asSignedByte, type TransportResult } from './outcome.js';

export interface SessionOptions {
  auth: HashCode;
  key: Buffer;
  timeoutMs: number;
}

export async function runSession(
  socket: Duplex,
  reader: ByteReader,
  options: SessionOptions,
  io: AgentIO,
): Promise<TransportResult> {
  try {
    await authenticateServer(socket, reader, options.auth, options.key, options.timeoutMs);
  } catch (err) {
    // C glues its I/O error text to the next line (no newline); we keep that shape.
    const ioError =
      err instanceof ChallengeFailedError
        ? ''
        : `Error reading challenge response: ${ioReason(err)}`;
    io.out(`${ioError}Invalid response to challenge`);
    return { code: Response.FAIL };
  }
  let first: Buffer;
  try {
    first = await reader.readExact(1, options.timeoutMs, 'result');
  } catch {
    return { code: Response.FAIL };
  }
  const code = first[0]!;
  if (code !== Response.HOSTLIST) return { code: asSignedByte(code) };
  return { code, hostlist: await readHostList(reader, options.timeoutMs) };
}
