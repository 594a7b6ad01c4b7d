/** `fence_virt -T`: one signed request over a direct TCP connection (docs/protocol.md §8); vsock
 * (docs/protocol.md §9) reuses it. */
import net from 'node:net';
import { ByteReader, writeAll } from '../net/byte-reader.js';
import { encodeFenceRequest } from '../protocol/fence-request.js';
import { Response, type HashCode } from '../protocol/constants.js';
import { errorText, microsecondSeqno, type AgentIO } from './io.js';
import { runSession } from './session.js';
import type { TransportResult } from './outcome.js';

const CONNECT_TIMEOUT_MS = 3000;

export interface TcpOptions {
  op: number;
  domain: string;
  host: string;
  port: number;
  hash: HashCode;
  auth: HashCode;
  key: Buffer;
  timeoutSec: number;
}

export function connectWithTimeout(host: string, port: number, ms: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error('Connection timed out'), { code: 'ETIMEDOUT' }));
    }, ms);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

export async function fenceByTcp(options: TcpOptions, io: AgentIO): Promise<TransportResult> {
  const where = `${options.host}:${options.port}`;
  if (net.isIP(options.host) === 0) {
    io.out(`Unable to connect to fence_virtd host ${where} Not an IP address`);
    return { code: Response.FAIL };
  }
  let socket: net.Socket;
  try {
    socket = await connectWithTimeout(options.host, options.port, CONNECT_TIMEOUT_MS);
  } catch (err) {
    io.out(`Unable to connect to fence_virtd host ${where} ${errorText(err)}`);
    return { code: Response.FAIL };
  }
  return fenceOverStream(socket, options, io);
}

/** The request, the mutual challenge and the result over a connected stream (TCP or vsock). */
export async function fenceOverStream(
  socket: net.Socket,
  options: Omit<TcpOptions, 'host' | 'port'>,
  io: AgentIO,
): Promise<TransportResult> {
  const reader = new ByteReader(socket);
  const timeoutMs = options.timeoutSec * 1000;
  try {
    const request = encodeFenceRequest(
      {
        request: options.op,
        hashtype: options.hash,
        domain: options.domain,
        seqno: microsecondSeqno(),
      },
      options.key,
    );
    await writeAll(socket, request, timeoutMs);
    return await runSession(
      socket,
      reader,
      { auth: options.auth, key: options.key, timeoutMs },
      io,
    );
  } catch {
    return { code: Response.FAIL };
  } finally {
    socket.destroy();
  }
}
