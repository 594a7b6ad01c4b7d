/**
 * Sockets are released on every path: callbacks that time out while connecting (a peer whose
 * accept queue is full drops the SYN), callbacks refused, and sessions that end. Before, a
 * timed-out callback stayed in the multicast listener's session set until restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import type { MulticastListenerConfig } from '../../src/config/types.js';
import { createMulticastListener } from '../../src/listeners/multicast/index.js';
import { HashType, Op } from '../../src/protocol/constants.js';
import { encodeFenceRequest } from '../../src/protocol/fence-request.js';
import { createLogger } from '../../src/util/logger.js';

const KEY = Buffer.from('hostile-sockets-key-0123');
const PORT = 12890;
const STUCK_PORT = 12891; // listens with a full accept queue: connects hang
const CLOSED_PORT = 12892;

const config: MulticastListenerConfig = {
  keyFile: '/unused',
  hash: HashType.sha256,
  auth: HashType.sha256,
  family: 'ipv4',
  address: '225.0.0.12',
  port: PORT,
  interface: undefined,
};

function packet(seqno: number, port: number): Buffer {
  return encodeFenceRequest(
    {
      request: Op.STATUS,
      hashtype: HashType.sha256,
      domain: 'test',
      address: '127.0.0.1',
      port,
      seqno,
    },
    KEY,
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('callback sockets', () => {
  let stuck: ChildProcess;
  const fillers: net.Socket[] = [];

  beforeAll(async () => {
    // A listener that never accepts, its backlog filled: further SYNs are dropped.
    stuck = spawn('python3', [
      '-c',
      `import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',${STUCK_PORT}))\ns.listen(0)\nprint('up',flush=True)\ntime.sleep(120)`,
    ]);
    await new Promise((resolve) => stuck.stdout?.once('data', resolve));
    for (let i = 0; i < 4; i++) {
      const s = net.connect({ port: STUCK_PORT, host: '127.0.0.1' });
      s.on('error', () => undefined);
      fillers.push(s);
    }
    await sleep(300);
  });
  afterAll(() => {
    fillers.forEach((s) => s.destroy());
    stuck.kill('SIGKILL');
  });

  it('are all released after connect timeouts and refusals', async () => {
    const lines: string[] = [];
    const listener = createMulticastListener(
      config,
      {
        logger: createLogger({ write: (l) => lines.push(l) }),
        key: KEY,
        openHypervisor: () => Promise.reject(new Error('not used')),
      },
      { connectTimeoutMs: 300 },
    );
    const open = () => (listener as unknown as { openSessions: number }).openSessions;
    await listener.start(async () => ({ code: 0, reason: 'ok' }));
    const udp = dgram.createSocket('udp4');
    try {
      for (let i = 0; i < 20; i++) {
        const port = i % 2 ? STUCK_PORT : CLOSED_PORT;
        await new Promise((r) => udp.send(packet(8000 + i, port), PORT, '127.0.0.1', r));
      }
      await sleep(100);
      expect(open()).toBeGreaterThan(0); // the hanging connects are in progress
      const until = Date.now() + 5_000;
      while (open() > 0 && Date.now() < until) await sleep(50);
      expect(open()).toBe(0);
      const reasons = lines.map((l) => (JSON.parse(l) as { reason?: string }).reason);
      expect(reasons).toEqual(expect.arrayContaining(['connect-timeout', 'connect-failed']));
    } finally {
      udp.close();
      await listener.stop();
    }
  });
});
