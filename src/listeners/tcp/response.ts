/** Result framing for stream listeners (tcp, vsock, multicast callback): §6. */
import { Response } from '../../protocol/constants.js';
import { encodeHostList } from '../../protocol/hostlist.js';
import type { RequestResult } from '../listener.js';

/** One result byte, or 0xFD + entries + terminator + the final byte for a host list. */
export function encodeStreamResult(result: RequestResult): Buffer {
  if (result.code !== Response.HOSTLIST) return Buffer.from([result.code & 0xff]);
  return Buffer.concat([
    Buffer.from([Response.HOSTLIST]),
    encodeHostList(result.hostlist ?? []),
    Buffer.from([(result.hostlistCode ?? 0) & 0xff]),
  ]);
}

/** The permission source for a TCP peer: its numeric IP, IPv4-mapped IPv6 shown as IPv4. */
export function peerSource(remoteAddress: string | undefined): string | undefined {
  if (remoteAddress === undefined) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remoteAddress);
  return mapped ? mapped[1] : remoteAddress;
}
