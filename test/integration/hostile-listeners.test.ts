/**
 * Hostile input against OUR fence_virtd (a real process: multicast and tcp listeners sharing one
 * key, libvirt's test driver): challenge reflection over TCP, across listeners and over
 * multicast; a seeded fuzz of 100,000 multicast packets and 10,000 TCP connections; an
 * idle-connection flood against the real C `fence_virt -T`. Throughout: nothing is executed
 * that a key holder did not ask for, the daemon neither crashes nor grows fds, no key or digest
 * reaches the log, the log stays bounded, and the real C agents are still served.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { HashType, Op } from '../../src/protocol/constants.js';
import { randomChallenge } from '../../src/protocol/digest.js';
import { encodeFenceRequest } from '../../src/protocol/fence-request.js';
import { ByteReader } from '../../src/net/byte-reader.js';
import { authenticateServer } from '../../src/net/challenge.js';
import {
  idleFlood,
  multicastCorpus,
  openFds,
  sendDatagrams,
  tcpCorpus,
  tcpFuzz,
} from '../../tools/harness/hostile.js';
import {
  C_VIRT,
  C_XVM,
  runAgent,
  startDaemon,
  tempDir,
  type LogEntry,
  type RunningDaemon,
  type TempDir,
} from '../helpers/daemon.js';

const KEY = Buffer.from('hostile-listeners-key-0123456789abcdef');
const MCAST_PORT = 12880;
const TCP_PORT = 12881;
const ATTACKER_PORT = 12882; // the attacker listens where captured packets call back
const LEGIT_CALLBACK_PORT = 12883;
const CLOSED_PORT = 12889; // nobody listens: fuzz callbacks fail at once
const SEED = 16;

/** What an attacker captured: requests signed by a legitimate client (the attacker has no key). */
function capturedTcp(op: number, seqno: number): Buffer {
  return encodeFenceRequest({ request: op, hashtype: HashType.sha256, domain: 'test', seqno }, KEY);
}
function capturedMulticast(op: number, seqno: number, port: number): Buffer {
  return encodeFenceRequest(
    { request: op, hashtype: HashType.sha256, domain: 'test', address: '127.0.0.1', port, seqno },
    KEY,
  );
}

function udp(packet: Buffer, port = MCAST_PORT): Promise<void> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.send(packet, port, '127.0.0.1', () => {
      s.close();
      resolve();
    });
  });
}

async function connect(port = TCP_PORT): Promise<{ socket: net.Socket; reader: ByteReader }> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('connect', resolve));
  return { socket, reader: new ByteReader(socket) };
}

/** Everything a reader gets until the peer closes (or `ms` passes). */
async function rest(reader: ByteReader, ms = 3_000): Promise<Buffer> {
  const until = Date.now() + ms;
  while (!reader.closed && Date.now() < until) await reader.waitForData(until - Date.now());
  return reader.drain();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('hostile input against our listeners', () => {
  let dir: TempDir;
  let daemon: RunningDaemon;
  let keyFile: string;

  const executed = (): LogEntry[] =>
    daemon.logs.filter((e) => e.event === 'request' && e.action !== 'status');
  const xvmStatus = () =>
    runAgent(C_XVM, ['-p', String(MCAST_PORT), '-k', keyFile, '-o', 'status', '-H', 'test'], {
      timeoutMs: 30_000,
    });
  const virtStatus = () =>
    runAgent(
      C_VIRT,
      [
        '-T',
        '127.0.0.1',
        '-p',
        String(TCP_PORT),
        '-k',
        keyFile,
        '-t',
        '10',
        '-o',
        'status',
        '-n',
        'test',
      ],
      { timeoutMs: 30_000 },
    );

  beforeAll(async () => {
    dir = tempDir('vf-hostile-');
    keyFile = dir.file('fence.key', KEY);
    const config = dir.file(
      'fence_virt.conf',
      `fence_virtd { listener = "multicast,tcp"; backend = "libvirt"; }
listeners {
	multicast { key_file = "${keyFile}"; port = "${MCAST_PORT}"; }
	tcp { key_file = "${keyFile}"; address = "127.0.0.1"; port = "${TCP_PORT}"; }
}
backends { libvirt { uri = "test:///default"; } }
`,
    );
    daemon = await startDaemon({ kind: 'ours', configFile: config, pidFile: `${dir.path}/pid` });
  });
  afterAll(async () => {
    await daemon?.stop();
    dir?.remove();
  });

  it('TCP: the daemon never answers its own challenge on a second connection', async () => {
    const a = await connect();
    a.socket.write(capturedTcp(Op.OFF, 7001));
    a.socket.write(randomChallenge());
    const first = await a.reader.readExact(128, 5_000); // its answer and its challenge
    const theirs = first.subarray(64);

    const b = await connect();
    b.socket.write(capturedTcp(Op.OFF, 7002));
    b.socket.write(theirs); // reflect the daemon's challenge
    const reflected = await rest(b.reader);
    expect(reflected.length).toBe(0); // closed without answering

    a.socket.write(reflected.length === 64 ? reflected : Buffer.alloc(64));
    expect((await rest(a.reader)).length).toBe(0); // no result byte
    a.socket.destroy();
    b.socket.destroy();
    await daemon.waitForLog(
      (e) => e.event === 'request-rejected' && e.reason === 'reflected-challenge',
    );
    expect(executed()).toEqual([]);
  });

  it('a multicast capture replayed into the TCP listener is refused as a replay', async () => {
    // A legitimate client's multicast request, served normally…
    const served = new Promise<number>((resolve) => {
      const server = net.createServer((socket) => {
        const reader = new ByteReader(socket);
        void authenticateServer(socket, reader, HashType.sha256, KEY, 5_000)
          .then(() => reader.readExact(1, 5_000))
          .then(
            (b) => resolve(b[0] ?? -1),
            () => resolve(-1),
          )
          .finally(() => {
            socket.destroy();
            server.close();
          });
      });
      server.listen(LEGIT_CALLBACK_PORT, '127.0.0.1');
    });
    const packet = capturedMulticast(Op.STATUS, 7100, LEGIT_CALLBACK_PORT);
    await udp(packet);
    expect(await served).toBe(0);
    // …captured by a local process and replayed into TCP, and into multicast again.
    const t = await connect();
    t.socket.write(packet);
    t.socket.write(randomChallenge());
    expect((await rest(t.reader)).length).toBe(0);
    await daemon.waitForLog((e) => e.event === 'request-rejected' && e.reason === 'replay');
    await udp(packet);
    await daemon.waitForLog((e) => e.event === 'packet-dropped' && e.reason === 'replay');
    expect(executed()).toEqual([]);
  });

  it('multicast: captures the daemon never saw (any time after capture) cannot be reflected', async () => {
    const sessions: ByteReader[] = [];
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      sockets.push(socket);
      sessions.push(new ByteReader(socket));
    });
    await new Promise<void>((resolve) => server.listen(ATTACKER_PORT, '127.0.0.1', resolve));
    try {
      // Two captured off requests whose callback is the attacker's port on the guest.
      await udp(capturedMulticast(Op.OFF, 7201, ATTACKER_PORT));
      await udp(capturedMulticast(Op.OFF, 7202, ATTACKER_PORT));
      const until = Date.now() + 5_000;
      while (sessions.length < 2 && Date.now() < until) await sleep(20);
      expect(sessions.length).toBe(2);
      const [s1, s2] = sessions as [ByteReader, ByteReader];
      sockets[0]!.write(randomChallenge());
      const theirs = (await s1.readExact(128, 5_000)).subarray(64);
      sockets[1]!.write(theirs);
      expect((await rest(s2)).length).toBe(0);
      sockets[0]!.write(Buffer.alloc(64));
      expect((await rest(s1)).length).toBe(0);
      await daemon.waitForLog(
        (e) => e.event === 'callback-failed' && e.reason === 'reflected-challenge',
      );
      // The same captures again: refused as replays, whenever they come back.
      await udp(capturedMulticast(Op.OFF, 7201, ATTACKER_PORT));
      expect(executed()).toEqual([]);
    } finally {
      sockets.forEach((s) => s.destroy());
      server.close();
    }
  });

  it('a seeded fuzz: 100,000 multicast packets and 10,000 TCP connections', async () => {
    const started = Date.now();
    const fdsBefore = openFds(daemon.pid);
    const linesBefore = daemon.output().split('\n').length;
    const legitBefore = daemon.logs.filter((e) => e.event === 'request').length;

    const flood = sendDatagrams(
      MCAST_PORT,
      multicastCorpus(SEED, { key: KEY, closedPort: CLOSED_PORT }),
      100_000,
    );
    const during = await xvmStatus(); // a legitimate request in the middle of the flood
    await flood;
    expect(during).toMatchObject({ code: 0, stdout: 'Status: ON\n' });

    const locals = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);
    await tcpFuzz(TCP_PORT, tcpCorpus(SEED, { key: KEY }), 10_000, { localAddresses: locals });
    expect(await virtStatus()).toMatchObject({ code: 0 });
    expect(await xvmStatus()).toMatchObject({ code: 0, stdout: 'Status: ON\n' });

    // No execution: the only requests dispatched are the legitimate status calls.
    const requests = daemon.logs.filter((e) => e.event === 'request');
    expect(requests.length - legitBefore).toBe(3);
    expect(executed()).toEqual([]);
    // No crash, no fd growth once the sessions are closed.
    expect(daemon.process.exitCode).toBeNull();
    let fds = openFds(daemon.pid);
    for (let i = 0; i < 50 && fds > fdsBefore + 2; i++) {
      await sleep(100);
      fds = openFds(daemon.pid);
    }
    expect(fds).toBeLessThanOrEqual(fdsBefore + 2);
    // A bounded log: per (event, reason), one full line and one summary per 10 s interval.
    const elapsed = Date.now() - started;
    const perKey = new Map<string, number>();
    for (const line of daemon
      .output()
      .split('\n')
      .slice(linesBefore - 1)) {
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line) as LogEntry;
      if (e.event === 'request') continue;
      const k = `${e.event}:${String(e.reason)}`;
      perKey.set(k, (perKey.get(k) ?? 0) + 1);
    }
    const intervals = Math.ceil(elapsed / 10_000) + 1;
    for (const [k, n] of perKey) expect([k, n <= 2 * intervals]).toEqual([k, true]);
    expect(perKey.size).toBeLessThanOrEqual(20);
    // No secret: neither the key nor any digest-sized hex string.
    const out = daemon.output();
    expect(out).not.toContain(KEY.toString());
    expect(out).not.toContain(KEY.toString('hex'));
    expect(out).not.toMatch(/[0-9a-f]{40}/i);
    // Control characters sent in a domain name arrive escaped.
    // eslint-disable-next-line no-control-regex
    expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  }, 60_000);

  it('500 idle connections from 20 addresses do not keep fence_virt -T out', async () => {
    const attackers = Array.from({ length: 20 }, (_, i) => `127.0.0.${i + 20}`);
    const flood = idleFlood(TCP_PORT, 500, attackers);
    try {
      await sleep(300);
      const results: (number | null)[] = [];
      for (let i = 0; i < 15; i++) {
        const r = await virtStatus();
        results.push(r.code);
      }
      expect(results).toEqual(Array(15).fill(0));
      expect(flood.opened()).toBeGreaterThanOrEqual(500);
    } finally {
      flood.stop();
    }
    await daemon.waitForLog(
      (e) => e.event === 'connection-refused' || e.event === 'connection-evicted',
    );
    expect(executed()).toEqual([]);
  }, 60_000);
});
