/**
 * fence_xvm's transport (docs/protocol.md §4): listen for the daemon's TCP callback, send one signed request per
 * local address of the family to the multicast group, retransmit every `retrans` tenths of a
 * second with fresh random bytes and the same seqno, then authenticate and read the answer.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { ByteReader } from '../net/byte-reader.js';
import { FLAG_USE_UUID, encodeFenceRequest } from '../protocol/fence-request.js';
import type { HashCode } from '../protocol/constants.js';
import { errorText, microsecondSeqno, sleep, type AgentIO } from './io.js';
import { runSession } from './session.js';
import type { TransportResult } from './outcome.js';

export interface MulticastOptions {
  op: number;
  domain: string;
  useUuid: boolean;
  group: string;
  ipv6: boolean;
  port: number;
  hash: HashCode;
  auth: HashCode;
  key: Buffer;
  timeoutSec: number;
  retransTenths: number;
}

const EXCLUDED_IPV6_PREFIXES = ['fe80', 'fe90', 'fea0', 'feb0'];

/** Source addresses, one request each (docs/protocol.md §4.2): IPv4 all, IPv6 without ::1 and link-local ones. */
export function localAddresses(
  ipv6: boolean,
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces(),
): string[] {
  const family = ipv6 ? 'IPv6' : 'IPv4';
  const addresses: string[] = [];
  for (const infos of Object.values(interfaces)) {
    for (const info of infos ?? []) {
      if (info.family !== family) continue;
      const text = info.address.toLowerCase();
      if (ipv6 && (text === '::1' || EXCLUDED_IPV6_PREFIXES.some((p) => text.startsWith(p)))) {
        continue;
      }
      if (!addresses.includes(info.address)) addresses.push(info.address);
    }
  }
  return addresses;
}

/**
 * Rounds of retransmission. C computes timeout*10/retrans and loops forever when that is 0;
 * we always make at least one round (a documented deviation).
 */
export function attemptCount(timeoutSec: number, retransTenths: number): number {
  return Math.max(1, Math.floor((timeoutSec * 10) / retransTenths));
}

/** A listening socket that hands over the first connection and refuses the rest. */
class CallbackListener {
  private first: net.Socket | undefined;
  private wake: (() => void) | undefined;

  private constructor(private readonly server: net.Server) {
    server.on('connection', (socket) => {
      // Until the session reads it, a reset must not become an uncaught 'error' event.
      socket.on('error', () => undefined);
      if (this.first) {
        socket.resetAndDestroy();
        return;
      }
      this.first = socket;
      server.close();
      this.wake?.();
    });
  }

  static open(port: number, ipv6: boolean): Promise<CallbackListener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen({ port, host: ipv6 ? '::' : '0.0.0.0', backlog: 10 }, () => {
        server.removeListener('error', reject);
        resolve(new CallbackListener(server));
      });
    });
  }

  /** The first connection, or undefined when `ms` passes without one. */
  accept(ms: number): Promise<net.Socket | undefined> {
    if (this.first) return Promise.resolve(this.first);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve(this.first);
      };
    });
  }

  close(): void {
    this.server.close();
  }
}

async function openSender(ipv6: boolean): Promise<dgram.Socket> {
  const socket = dgram.createSocket(ipv6 ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, () => {
      socket.removeListener('error', reject);
      resolve();
    });
  });
  socket.setMulticastTTL(2);
  if (ipv6) socket.setMulticastLoopback(true);
  return socket;
}

function sendTo(socket: dgram.Socket, packet: Buffer, port: number, group: string): Promise<void> {
  return new Promise((resolve) => {
    // A failed send (no route for one source) must not stop the others, as in C.
    socket.send(packet, port, group, () => resolve());
  });
}

/**
 * C joins the group on every transmit socket before sending, so a group that is not a multicast
 * address of the family (a unicast address, a typo, a host name) fails there with EINVAL and
 * nothing is sent. We check the same up front: nothing is ever sent to a unicast address, and a
 * host name never reaches a DNS lookup. Returns C's message, or undefined for a valid group.
 */
export function membershipError(group: string, ipv6: boolean): string | undefined {
  const valid = ipv6
    ? net.isIPv6(group) && /^ff[0-9a-f]{2}:/i.test(group)
    : net.isIPv4(group) && Number(group.split('.')[0]) >= 224 && Number(group.split('.')[0]) <= 239;
  return valid
    ? undefined
    : `Failed to add multicast membership to transmit socket ${group}: Invalid argument`;
}

async function sendRound(
  socket: dgram.Socket,
  options: MulticastOptions,
  sources: string[],
  seqno: number,
  io: AgentIO,
): Promise<void> {
  const refused = membershipError(options.group, options.ipv6);
  for (const source of sources) {
    if (refused) {
      io.out(refused); // once per source and round, as C prints it
      continue;
    }
    const packet = encodeFenceRequest(
      {
        request: options.op,
        hashtype: options.hash,
        domain: options.domain,
        flags: options.useUuid ? FLAG_USE_UUID : 0,
        address: source,
        port: options.port,
        seqno,
      },
      options.key,
    );
    // IPv4 picks the outgoing interface by source address; C selects none for IPv6.
    if (!options.ipv6) socket.setMulticastInterface(source);
    await sendTo(socket, packet, options.port, options.group);
  }
}

async function listenWithRetries(
  options: MulticastOptions,
  io: AgentIO,
): Promise<CallbackListener | undefined> {
  const attempts = attemptCount(options.timeoutSec, options.retransTenths);
  for (let i = 0; i < attempts; i += 1) {
    try {
      return await CallbackListener.open(options.port, options.ipv6);
    } catch (err) {
      io.out(`Failed to listen: ${errorText(err)}`);
      await sleep(options.retransTenths * 100);
    }
  }
  return undefined;
}

export async function fenceByMulticast(
  options: MulticastOptions,
  io: AgentIO,
): Promise<TransportResult> {
  const listener = await listenWithRetries(options, io);
  if (!listener) return { code: -1 };
  const sender = await openSender(options.ipv6);
  const sources = localAddresses(options.ipv6);
  const seqno = microsecondSeqno();
  let connection: net.Socket | undefined;
  try {
    const attempts = attemptCount(options.timeoutSec, options.retransTenths);
    for (let i = 0; i < attempts && !connection; i += 1) {
      await sendRound(sender, options, sources, seqno, io);
      connection = await listener.accept(options.retransTenths * 100);
    }
  } finally {
    sender.close();
    listener.close();
  }
  if (!connection) {
    io.out('Timed out waiting for response');
    return { code: 1 };
  }
  try {
    const reader = new ByteReader(connection);
    return await runSession(
      connection,
      reader,
      { auth: options.auth, key: options.key, timeoutMs: options.timeoutSec * 1000 },
      io,
    );
  } finally {
    connection.destroy();
  }
}
