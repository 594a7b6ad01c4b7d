/**
 * A fence_xvm-like client in-process: listen for the callback, send one signed request over UDP,
 * authenticate, read the result. Used by the compliance suite and the benchmarks.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { ByteReader } from '../../src/net/byte-reader.js';
import { authenticateServer } from '../../src/net/challenge.js';
import { readFenceResult, type FenceResult } from '../../src/net/result-reader.js';
import { HashType, type HashCode } from '../../src/protocol/constants.js';
import { encodeFenceRequest } from '../../src/protocol/fence-request.js';

export interface XvmRequest {
  op: number;
  target: string;
  seqno: number;
  key: Buffer;
  /** Where the daemon listens (group or unicast address) and its port. */
  daemonAddress: string;
  daemonPort: number;
  /** Our callback address (also the permission source) and port. */
  callbackAddress: string;
  callbackPort: number;
  hash?: HashCode;
  auth?: HashCode;
  timeoutMs: number;
}

export function sendDatagram(packet: Buffer, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
    socket.send(packet, port, address, (err) => {
      socket.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

/** Resolves with the result, or undefined when no (complete) answer came in time. */
export async function xvmRequest(req: XvmRequest): Promise<FenceResult | undefined> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(req.callbackPort, req.callbackAddress, resolve);
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const expired = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), req.timeoutMs);
    });
    const packet = encodeFenceRequest(
      {
        request: req.op,
        hashtype: req.hash ?? HashType.sha256,
        domain: req.target,
        address: req.callbackAddress,
        port: req.callbackPort,
        seqno: req.seqno,
      },
      req.key,
    );
    await sendDatagram(packet, req.daemonAddress, req.daemonPort);
    const socket = await Promise.race([accepted, expired]);
    if (!socket) return undefined;
    const reader = new ByteReader(socket);
    try {
      await authenticateServer(socket, reader, req.auth ?? HashType.sha256, req.key, req.timeoutMs);
      return await readFenceResult(reader, req.timeoutMs);
    } catch {
      return undefined;
    } finally {
      socket.destroy();
    }
  } finally {
    clearTimeout(timer);
    server.close();
  }
}
