/**
 * `fence_virt -S[cid]`: the direct-TCP request (docs/protocol.md §8) over AF_VSOCK to
 * `cid`:`ipport` (§9).
 * The socket comes from the small vsock addon (native/vsock, libc only), loaded only here, so
 * guests need no libvirt. C connects without a time limit; ours stops at the agent timeout.
 */
import type net from 'node:net';
import { Response } from '../protocol/constants.js';
import { connectVsock } from '../listeners/vsock/native.js';
import { errorText, type AgentIO } from './io.js';
import type { TransportResult } from './outcome.js';
import { fenceOverStream, type TcpOptions } from './tcp.js';

export interface VsockOptions extends Omit<TcpOptions, 'host' | 'port'> {
  cid: number;
  port: number;
}

export async function fenceByVsock(
  options: VsockOptions,
  io: AgentIO,
  connect: (cid: number, port: number) => Promise<net.Socket> = connectVsock,
): Promise<TransportResult> {
  const where = `${options.cid}:${options.port}`;
  let socket: net.Socket;
  let timer: NodeJS.Timeout | undefined;
  try {
    socket = await Promise.race([
      connect(options.cid, options.port),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(Object.assign(new Error('Connection timed out'), { code: 'ETIMEDOUT' })),
          options.timeoutSec * 1000,
        );
        timer.unref?.();
      }),
    ]);
  } catch (err) {
    io.out(`Unable to connect to fence_virtd host ${where} ${errorText(err)}`);
    return { code: Response.FAIL };
  } finally {
    if (timer) clearTimeout(timer);
  }
  return fenceOverStream(socket, options, io);
}
