/**
 * Our multicast listener beyond C compatibility: concurrent requests, exact-replay refusal,
 * distinct drop reasons, and no key material in logs. Packets are built with our protocol code
 * and sent as unicast UDP to the daemon's port (accepted, as by the C daemon).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { ByteReader } from '../../src/net/byte-reader.js';
import { authenticateServer } from '../../src/net/challenge.js';
import { HashType, Op } from '../../src/protocol/constants.js';
import { encodeFenceRequest } from '../../src/protocol/fence-request.js';
import {
  C_XVM,
  runAgent,
  startDaemon,
  tempDir,
  type RunningDaemon,
  type TempDir,
} from '../helpers/daemon.js';

const KEY = Buffer.from('robustness-key-material-0123456789');
const PORT = 12270;
const CALLBACK_PORT = 12271;
const HANG_PORT = 12272;

function sendUdp(packet: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.send(packet, PORT, '127.0.0.1', (err) => {
      socket.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

/** A fence_xvm-like callback endpoint: accepts one session, authenticates, reads the result. */
function callbackServer(port: number): {
  result: Promise<number>;
  close(): void;
  connections(): number;
} {
  let count = 0;
  let settle: (code: number) => void = () => undefined;
  const result = new Promise<number>((resolve) => (settle = resolve));
  const server = net.createServer((socket) => {
    count += 1;
    const reader = new ByteReader(socket);
    void authenticateServer(socket, reader, HashType.sha256, KEY, 5_000)
      .then(() => reader.readExact(1, 5_000))
      .then((byte) => settle(byte[0] ?? -1))
      .catch(() => settle(-1))
      .finally(() => socket.destroy());
  });
  server.listen(port, '127.0.0.1');
  return { result, close: () => server.close(), connections: () => count };
}

function statusPacket(seqno: number, port: number, random?: Buffer): Buffer {
  return encodeFenceRequest(
    {
      request: Op.STATUS,
      hashtype: HashType.sha256,
      domain: 'test',
      address: '127.0.0.1',
      port,
      seqno,
      random,
    },
    KEY,
  );
}

describe('our multicast listener', () => {
  let dir: TempDir;
  let daemon: RunningDaemon;
  let keyFile: string;

  beforeAll(async () => {
    dir = tempDir();
    keyFile = dir.file('key', KEY);
    const config = dir.file(
      'fence_virt.conf',
      `fence_virtd { listener = "multicast"; backend = "libvirt"; }
listeners { multicast { key_file = "${keyFile}"; port = "${PORT}"; } }
backends { libvirt { uri = "test:///default"; } }
`,
    );
    daemon = await startDaemon({ kind: 'ours', configFile: config, pidFile: `${dir.path}/pid` });
  });
  afterAll(async () => {
    await daemon.stop();
    dir.remove();
  });

  it('serves other requests while one callback never answers', async () => {
    const hung: net.Socket[] = [];
    const hangServer = net.createServer((socket) => hung.push(socket)); // accepts, never speaks
    await new Promise<void>((resolve) => hangServer.listen(HANG_PORT, '127.0.0.1', resolve));
    try {
      await sendUdp(statusPacket(900_001, HANG_PORT));
      await waitFor(() => hung.length === 1);
      const result = await runAgent(C_XVM, [
        '-p',
        String(PORT),
        '-k',
        keyFile,
        '-o',
        'status',
        '-H',
        'test',
        '-t',
        '10',
      ]);
      expect(result).toMatchObject({ code: 0, stdout: 'Status: ON\n' });
      // The hung session was still open while the agent got its answer.
      expect(hung[0]!.destroyed).toBe(false);
      expect(hung[0]!.readableEnded).toBe(false);
    } finally {
      hung.forEach((s) => s.destroy());
      hangServer.close();
    }
  });

  it('refuses an exact replay and a retransmission inside the history window, with distinct reasons', async () => {
    const packet = statusPacket(900_002, CALLBACK_PORT, Buffer.from([9, 9, 9, 9, 9, 9]));
    const first = callbackServer(CALLBACK_PORT);
    try {
      await sendUdp(packet);
      expect(await first.result).toBe(0);
      await daemon.waitForLog((e) => e.event === 'request' && e.seqno === 900_002);
      await sendUdp(packet);
      await daemon.waitForLog((e) => e.event === 'packet-dropped' && e.reason === 'replay');
      await sendUdp(statusPacket(900_002, CALLBACK_PORT, Buffer.from([1, 2, 3, 4, 5, 6])));
      await daemon.waitForLog((e) => e.event === 'packet-dropped' && e.reason === 'duplicate');
      expect(first.connections()).toBe(1);
    } finally {
      first.close();
    }
  });

  it('names each malformed packet and keeps serving', async () => {
    await sendUdp(Buffer.alloc(100));
    await daemon.waitForLog((e) => e.reason === 'short-packet');
    const forged = encodeFenceRequest(
      {
        request: Op.OFF,
        hashtype: HashType.sha256,
        domain: 'test',
        address: '127.0.0.1',
        port: CALLBACK_PORT,
        seqno: 5,
      },
      Buffer.from('wrong key'),
    );
    await sendUdp(forged);
    await daemon.waitForLog((e) => e.reason === 'bad-digest');
    const weak = encodeFenceRequest(
      {
        request: Op.OFF,
        hashtype: HashType.sha1,
        domain: 'test',
        address: '127.0.0.1',
        port: CALLBACK_PORT,
        seqno: 6,
      },
      KEY,
    );
    await sendUdp(weak);
    await daemon.waitForLog((e) => e.reason === 'hash-too-weak');
    const result = await runAgent(C_XVM, [
      '-p',
      String(PORT),
      '-k',
      keyFile,
      '-o',
      'status',
      '-H',
      'test',
      '-t',
      '10',
    ]);
    expect(result).toMatchObject({ code: 0, stdout: 'Status: ON\n' });
  });

  it('logs one structured line per request and never the key or a digest', async () => {
    const request = daemon.logs.find((e) => e.event === 'request' && e.action === 'status');
    expect(request).toMatchObject({
      listener: 'multicast',
      source: '127.0.0.1',
      target: 'test',
      result: 'success',
    });
    expect(typeof request!.id).toBe('string');
    expect(typeof request!.duration_ms).toBe('number');
    const text = daemon.output();
    expect(text).not.toContain(KEY.toString());
    expect(text).not.toContain(KEY.toString('hex'));
    expect(text).not.toContain(
      statusPacket(1, 1, Buffer.alloc(6)).subarray(0x70, 0x90).toString('hex'),
    );
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
