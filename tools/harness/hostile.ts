/**
 * Attacker tooling shared by the hostile-input tests and `npm run bench`: a seeded PRNG, fuzz
 * corpora for the multicast and TCP listeners, raw senders and an fd counter. Nothing here is
 * part of the daemon.
 */
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import { HashType, Op, type HashCode } from '../../src/protocol/constants.js';
import { digest64 } from '../../src/protocol/digest.js';
import { encodeFenceRequest, FENCE_REQ_SIZE } from '../../src/protocol/fence-request.js';

/** mulberry32: a small deterministic PRNG; the same seed gives the same corpus. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POOL_SIZE = 1 << 20;
const pools = new Map<number, Buffer>();

/** 1 MiB of bytes determined by the seed (SHA-256 in counter mode), made once per seed. */
function pool(seed: number): Buffer {
  let found = pools.get(seed);
  if (!found) {
    const blocks: Buffer[] = [];
    for (let i = 0; i < POOL_SIZE / 32; i++) {
      blocks.push(createHash('sha256').update(`${seed}:${i}`).digest());
    }
    found = Buffer.concat(blocks);
    pools.set(seed, found);
  }
  return found;
}

/** `n` seeded random bytes (a fresh copy taken from the seed's pool at a random offset). */
function bytesFrom(seed: number, rand: () => number): (n: number) => Buffer {
  const source = pool(seed);
  return (n) => {
    if (n > POOL_SIZE) throw new RangeError('at most 1 MiB at once');
    const at = Math.floor(rand() * (POOL_SIZE - n + 1));
    return Buffer.from(source.subarray(at, at + n));
  };
}

/** Re-sign a packet after its fields were changed (what a key holder could send). */
export function resign(packet: Buffer, key: Buffer): Buffer {
  const out = Buffer.from(packet);
  out.fill(0, 0x70, 0x70 + 64);
  digest64((out[1] ?? 0) as HashCode, key, out).copy(out, 0x70);
  return out;
}

export interface CorpusOptions {
  /** Signed packets (as a key holder could send) are included only with a key. */
  key?: Buffer;
  /** Callback port of signed packets: must be closed, so nothing is ever executed. */
  closedPort: number;
}

/**
 * One multicast fuzz packet. Kinds: random bytes of random length, short packets, bit-flipped
 * signed packets (bad digest), weak or unknown hash types, replays of one signed packet, and
 * signed packets with hostile fields (bad family, unknown ops, control characters in the
 * domain, callbacks to a closed port) — never a packet that could run an action.
 */
export function multicastCorpus(seed: number, options: CorpusOptions): () => Buffer {
  const rand = seededRandom(seed);
  const bytes = bytesFrom(seed, rand);
  const key = options.key ?? Buffer.alloc(0);
  const base = encodeFenceRequest(
    {
      request: Op.STATUS,
      hashtype: HashType.sha256,
      domain: 'fuzz',
      address: '127.0.0.1',
      port: options.closedPort,
      seqno: 1,
    },
    key.length > 0 ? key : Buffer.from('not-the-key'),
  );
  let seq = 0;
  return () => {
    const pick = rand();
    seq = (seq + 1) >>> 0;
    if (pick < 0.25) return bytes(Math.floor(rand() * 400));
    if (pick < 0.35) return bytes(Math.floor(rand() * FENCE_REQ_SIZE));
    if (pick < 0.6) {
      const p = Buffer.from(base);
      const flips = 1 + Math.floor(rand() * 8);
      for (let i = 0; i < flips; i++) {
        const at = Math.floor(rand() * FENCE_REQ_SIZE);
        p[at] = (p[at] ?? 0) ^ (1 << Math.floor(rand() * 8));
      }
      if (p.equals(base)) p[0x70] = (p[0x70] ?? 0) ^ 1;
      return p;
    }
    if (pick < 0.7) {
      const p = Buffer.from(base);
      p[1] = [0, 1, 4, 200, 255][Math.floor(rand() * 5)] ?? 0;
      return p;
    }
    if (pick < 0.8 || key.length === 0) return Buffer.from(base); // replays
    // A key holder's hostile fields, still harmless: bad family, or a callback nobody answers.
    const p = Buffer.from(base);
    bytes(6).copy(p, 0x62);
    p.writeUInt32LE(seq, 0x68);
    const variant = rand();
    if (variant < 0.4) p.writeUInt32LE(Math.floor(rand() * 0xffffffff), 0x6c);
    else if (variant < 0.7) {
      p[0] = 7 + Math.floor(rand() * 249); // no handler
      p.writeUInt32LE(Math.floor(rand() * 0xffffffff), 0x6c); // and no callback either
    } else {
      const name = Buffer.from(`\u001b[31m${seq}\r\n\u0000\u0085x`, 'utf8');
      p.fill(0, 0x04, 0x44);
      name.copy(p, 0x04, 0, Math.min(name.length, 63));
      p[0] = Op.STATUS;
    }
    return resign(p, key);
  };
}

/** One TCP fuzz payload (what a client writes before closing). */
export function tcpCorpus(seed: number, options: { key?: Buffer }): () => Buffer {
  const rand = seededRandom(seed);
  const bytes = bytesFrom(seed, rand);
  const key = options.key ?? Buffer.alloc(0);
  let seq = 0;
  const signed = (): Buffer =>
    encodeFenceRequest(
      { request: Op.STATUS, hashtype: HashType.sha256, domain: 'fuzz', seqno: ++seq },
      key.length > 0 ? key : Buffer.from('not-the-key'),
    );
  const replayed = signed();
  return () => {
    const pick = rand();
    if (pick < 0.2) return Buffer.alloc(0);
    if (pick < 0.4) return bytes(Math.floor(rand() * 600));
    if (pick < 0.5) return bytes(Math.floor(rand() * FENCE_REQ_SIZE));
    if (pick < 0.6) return bytes(8192 + Math.floor(rand() * 8192)); // more than a session holds
    if (pick < 0.75) {
      const p = signed();
      const at = Math.floor(rand() * FENCE_REQ_SIZE);
      p[at] = (p[at] ?? 0) ^ 0x10;
      return Buffer.concat([p, bytes(64)]);
    }
    if (pick < 0.85) return Buffer.concat([replayed, bytes(128)]);
    // Signed (key holder) or not, followed by a random challenge and a wrong answer.
    return Buffer.concat([signed(), bytes(128)]);
  };
}

/** Sends datagrams as unicast UDP, `batch` at a time. */
export async function sendDatagrams(
  port: number,
  next: () => Buffer,
  count: number,
  host = '127.0.0.1',
): Promise<void> {
  const socket = dgram.createSocket('udp4');
  try {
    let sent = 0;
    while (sent < count) {
      const batch = Math.min(256, count - sent);
      await Promise.all(
        Array.from(
          { length: batch },
          () => new Promise<void>((resolve) => socket.send(next(), port, host, () => resolve())),
        ),
      );
      sent += batch;
      await new Promise((resolve) => setImmediate(resolve)); // let the receiver breathe
    }
  } finally {
    socket.close();
  }
}

/** Opens `count` TCP connections (`parallel` at a time), each writing one payload and closing. */
export async function tcpFuzz(
  port: number,
  next: () => Buffer,
  count: number,
  options: { parallel?: number; host?: string; localAddresses?: string[] } = {},
): Promise<void> {
  const parallel = options.parallel ?? 32;
  const host = options.host ?? '127.0.0.1';
  const locals = options.localAddresses ?? [];
  let started = 0;
  const one = (n: number): Promise<void> =>
    new Promise((resolve) => {
      const localAddress = locals.length > 0 ? locals[n % locals.length] : undefined;
      const socket = net.connect({ port, host, ...(localAddress ? { localAddress } : {}) });
      const done = (): void => {
        socket.destroy();
        resolve();
      };
      socket.setTimeout(3_000, done);
      socket.on('error', done);
      socket.on('close', done);
      socket.on('data', () => undefined);
      socket.on('connect', () => socket.end(next()));
    });
  const worker = async (): Promise<void> => {
    while (started < count) await one(started++);
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

/**
 * Idle connections an attacker holds open (never sending a byte), reopened as soon as the
 * daemon closes them, from the given source addresses, until stop().
 */
export function idleFlood(
  port: number,
  count: number,
  localAddresses: string[],
  host = '127.0.0.1',
): { stop(): void; opened(): number } {
  let stopped = false;
  let opened = 0;
  const sockets = new Set<net.Socket>();
  const open = (n: number): void => {
    if (stopped) return;
    const socket = net.connect({
      port,
      host,
      localAddress: localAddresses[n % localAddresses.length],
    });
    opened++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.on('close', () => {
      sockets.delete(socket);
      setTimeout(() => open(n), 5);
    });
  };
  for (let n = 0; n < count; n++) open(n);
  return {
    stop() {
      stopped = true;
      for (const socket of sockets) socket.destroy();
    },
    opened: () => opened,
  };
}

/** Open file descriptors of a process (Linux). */
export function openFds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}
