/**
 * The direct TCP listener: the shared compliance suite through a TypeScript client, then the
 * real C client (`/usr/sbin/fence_virt -T`) as the guest.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createTcpListener } from '../../src/listeners/tcp/index.js';
import type { IncomingRequest, Listener, RequestResult } from '../../src/listeners/listener.js';
import type { TcpListenerConfig } from '../../src/config/types.js';
import { ByteReader } from '../../src/net/byte-reader.js';
import { authenticateServer } from '../../src/net/challenge.js';
import { HashType, type HashCode } from '../../src/protocol/constants.js';
import { encodeFenceRequest } from '../../src/protocol/fence-request.js';
import {
  decodeHostEntry,
  HOST_ENTRY_SIZE,
  isTerminator,
  type HostEntry,
} from '../../src/protocol/hostlist.js';
import { createLogger, silentLogger, type Logger } from '../../src/util/logger.js';
import { runListenerCompliance, type SendResult, waitFor } from '../helpers/listener-compliance.js';

const KEY = Buffer.from('example-key-0123');
const OTHER_KEY = Buffer.from('another-key-4567');
const FENCE_VIRT = '/usr/sbin/fence_virt';

function tcpConfig(port: number, overrides: Partial<TcpListenerConfig> = {}): TcpListenerConfig {
  return {
    keyFile: '/unused',
    hash: HashType.sha256,
    auth: HashType.sha256,
    family: 'ipv4',
    address: '127.0.0.1',
    port,
    ...overrides,
  };
}

interface ClientOptions {
  port: number;
  host?: string;
  localAddress?: string;
  key?: Buffer;
  hash?: HashCode;
  auth?: HashCode;
  timeoutMs?: number;
}

/** A direct-TCP client as fence_virt -T behaves (docs/protocol.md §8); `packet` overrides the request bytes. */
async function tcpRequest(
  op: number,
  target: string,
  seqno: number,
  options: ClientOptions,
  packet?: Buffer,
): Promise<SendResult> {
  const key = options.key ?? KEY;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const socket = connect({
    host: options.host ?? '127.0.0.1',
    port: options.port,
    localAddress: options.localAddress,
  });
  socket.on('error', () => undefined);
  try {
    await once(socket, 'connect');
    const reader = new ByteReader(socket);
    socket.write(
      packet ??
        encodeFenceRequest(
          { request: op, hashtype: options.hash ?? HashType.sha256, domain: target, seqno },
          key,
        ),
    );
    await authenticateServer(socket, reader, options.auth ?? HashType.sha256, key, timeoutMs);
    const code = (await reader.readExact(1, timeoutMs))[0];
    if (code !== 0xfd) return { code };
    const hostlist: HostEntry[] = [];
    for (;;) {
      const entry = decodeHostEntry(await reader.readExact(HOST_ENTRY_SIZE, timeoutMs));
      if (isTerminator(entry)) break;
      hostlist.push(entry);
    }
    return { code, hostlist, hostlistCode: (await reader.readExact(1, timeoutMs))[0] };
  } catch {
    return { code: undefined };
  } finally {
    socket.destroy();
  }
}

async function assertPortFree(port: number, host = '127.0.0.1'): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

runListenerCompliance({
  name: 'tcp',
  async create() {
    const port = 12401;
    return {
      malformed: ['short', 'garbage', 'wrong-key'],
      duplicates: 'suppressed',
      // Client 1 connects from another loopback address, so the source must follow the peer.
      expectedSource: (client) => (client === 1 ? '127.0.0.2' : '127.0.0.1'),
      async start(handler) {
        const listener = createTcpListener(tcpConfig(port), {
          logger: silentLogger,
          key: KEY,
          openHypervisor: noHypervisor,
        });
        await listener.start(handler);
        return listener;
      },
      send: (op, target, o = {}) =>
        tcpRequest(op, target, o.seqno ?? 1, {
          port,
          localAddress: o.client === 1 ? '127.0.0.2' : undefined,
          timeoutMs: o.timeoutMs,
        }),
      async sendMalformed(kind, o = {}) {
        const valid = encodeFenceRequest(
          { request: 4, hashtype: HashType.sha256, domain: 'bad', seqno: o.seqno ?? 1 },
          KEY,
        );
        const bytes =
          kind === 'short'
            ? valid.subarray(0, 100)
            : kind === 'garbage'
              ? Buffer.alloc(176, 0x41)
              : encodeFenceRequest(
                  { request: 4, hashtype: HashType.sha256, domain: 'bad', seqno: o.seqno ?? 1 },
                  OTHER_KEY,
                );
        const socket = connect({ host: '127.0.0.1', port });
        socket.on('error', () => undefined);
        await once(socket, 'connect');
        socket.end(bytes);
        await once(socket, 'close'); // the listener closes without answering
      },
      assertReleased: () => assertPortFree(port),
      async dispose() {},
    };
  },
});

async function noHypervisor(): Promise<never> {
  throw new Error('the tcp listener does not use libvirt');
}

interface RunResult {
  code: number;
  stdout: string;
}

function fenceVirt(args: string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(FENCE_VIRT, args, { timeout: 20_000 }, (error, stdout) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout });
    });
  });
}

/** Captures log lines, to check reasons and that no secret ever appears. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({ level: 'debug', write: (line) => lines.push(line) }), lines };
}

describe('tcp listener with the real fence_virt -T as the guest', () => {
  const port = 12402;
  let dir: string;
  let keyFile: string;
  let otherKeyFile: string;
  let listener: Listener;
  let log: ReturnType<typeof capturingLogger>;
  const seen: IncomingRequest[] = [];
  let respond: (request: IncomingRequest) => RequestResult;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'virtfence-tcp-'));
    keyFile = join(dir, 'key');
    otherKeyFile = join(dir, 'other.key');
    writeFileSync(keyFile, KEY, { mode: 0o600 });
    writeFileSync(otherKeyFile, OTHER_KEY, { mode: 0o600 });
    log = capturingLogger();
    listener = createTcpListener(tcpConfig(port), {
      logger: log.logger,
      key: KEY,
      openHypervisor: noHypervisor,
    });
    await listener.start(async (request) => {
      seen.push(request);
      return respond(request);
    });
  });

  afterAll(async () => {
    await listener?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    seen.length = 0;
    respond = () => ({ code: 0, reason: 'ok' });
  });

  const base = (): string[] => ['-T', '127.0.0.1', '-p', String(port), '-k', keyFile, '-t', '10'];

  it.each([
    ['null', 0],
    ['off', 1],
    ['reboot', 2],
    ['on', 3],
    ['status', 4],
    ['monitor', 5],
  ])('%s reaches the handler as op %i with the peer IP as source', async (action, op) => {
    const result = await fenceVirt([...base(), '-o', action, '-n', 'vm1']);
    expect(result.code).toBe(0);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ listener: 'tcp', op, source: '127.0.0.1' });
    if (action !== 'monitor') expect(seen[0]?.target).toBe('vm1');
  });

  it.each([
    [0, 0, 'Status: ON'],
    [2, 2, 'Status: OFF'],
    [1, 1, 'Operation failed'],
    [3, 3, 'Permission denied'],
  ])('status answered %i exits %i and prints "%s"', async (code, exit, text) => {
    respond = () => ({ code, reason: 'test' });
    const result = await fenceVirt([...base(), '-o', 'status', '-n', 'vm1']);
    expect(result.code).toBe(exit);
    expect(result.stdout).toContain(text);
  });

  it('list prints the host list the handler returned', async () => {
    respond = () => ({
      code: 0xfd,
      reason: 'ok',
      hostlist: [
        { name: 'vm-a', uuid: '11111111-0000-4000-8000-000000000001', state: 1 },
        { name: 'vm-b', uuid: '11111111-0000-4000-8000-000000000002', state: 5 },
      ],
      hostlistCode: 0,
    });
    const result = await fenceVirt([...base(), '-o', 'list']);
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n').filter(Boolean)).toEqual([
      `${'vm-a'.padEnd(32)} 11111111-0000-4000-8000-000000000001 on`,
      `${'vm-b'.padEnd(32)} 11111111-0000-4000-8000-000000000002 off`,
    ]);
    expect(seen[0]?.op).toBe(6);
  });

  it('a client with the wrong key fails and never reaches the handler', async () => {
    const result = await fenceVirt([
      '-T',
      '127.0.0.1',
      '-p',
      String(port),
      '-k',
      otherKeyFile,
      '-t',
      '5',
      '-o',
      'off',
      '-n',
      'vm1',
    ]);
    expect(result.code).not.toBe(0);
    expect(seen).toHaveLength(0);
    await waitFor(() => log.lines.some((l) => l.includes('"reason":"bad-hash"')));
  });

  it('a packet hash below the minimum is refused as hash-too-weak', async () => {
    const result = await fenceVirt([...base(), '-c', 'sha1', '-o', 'off', '-n', 'vm1']);
    expect(result.code).not.toBe(0);
    expect(seen).toHaveLength(0);
    await waitFor(() => log.lines.some((l) => l.includes('"reason":"hash-too-weak"')));
  });

  it('a stronger packet hash than the minimum is accepted', async () => {
    const result = await fenceVirt([...base(), '-c', 'sha512', '-o', 'status', '-n', 'vm1']);
    expect(result).toMatchObject({ code: 0 });
    expect(seen).toHaveLength(1);
  });

  it('a challenge algorithm other than the configured auth fails authentication', async () => {
    const result = await fenceVirt([...base(), '-C', 'sha1', '-o', 'off', '-n', 'vm1']);
    expect(result.code).not.toBe(0);
    expect(seen).toHaveLength(0);
    await waitFor(() => log.lines.some((l) => l.includes('"reason":"auth-failed"')));
  });

  it('never logs the key or a digest', () => {
    const all = log.lines.join('\n');
    expect(all).not.toContain(KEY.toString());
    expect(all).not.toContain(KEY.toString('hex'));
    expect(all).not.toMatch(/[0-9a-f]{40,}/);
  });
});

describe('tcp listener configuration and limits', () => {
  let dir: string;
  let keyFile: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'virtfence-tcp-'));
    keyFile = join(dir, 'key');
    writeFileSync(keyFile, KEY, { mode: 0o600 });
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('auth is the challenge algorithm (C would force sha256): -C sha512 works against auth sha512', async () => {
    const port = 12403;
    const listener = createTcpListener(tcpConfig(port, { auth: HashType.sha512 }), {
      logger: silentLogger,
      key: KEY,
      openHypervisor: noHypervisor,
    });
    await listener.start(async () => ({ code: 0, reason: 'ok' }));
    try {
      const strong = await fenceVirt([
        '-T',
        '127.0.0.1',
        '-p',
        String(port),
        '-k',
        keyFile,
        '-C',
        'sha512',
        '-o',
        'status',
        '-n',
        'vm1',
      ]);
      expect(strong.code).toBe(0);
      // The packet hash stays sha256 (the minimum is `hash`, not `auth`).
      const weak = await fenceVirt([
        '-T',
        '127.0.0.1',
        '-p',
        String(port),
        '-k',
        keyFile,
        '-C',
        'sha256',
        '-o',
        'status',
        '-n',
        'vm1',
        '-t',
        '5',
      ]);
      expect(weak.code).not.toBe(0);
    } finally {
      await listener.stop();
    }
  });

  it('hash and auth none serve unsigned requests without a key', async () => {
    const port = 12404;
    const config = tcpConfig(port, { hash: HashType.none, auth: HashType.none });
    const listener = createTcpListener(config, {
      logger: silentLogger,
      key: Buffer.alloc(0),
      openHypervisor: noHypervisor,
    });
    await listener.start(async () => ({ code: 2, reason: 'off' }));
    try {
      const result = await fenceVirt([
        '-T',
        '127.0.0.1',
        '-p',
        String(port),
        '-c',
        'none',
        '-C',
        'none',
        '-k',
        keyFile,
        '-o',
        'status',
        '-n',
        'vm1',
      ]);
      expect(result).toMatchObject({ code: 2 });
      expect(result.stdout).toContain('Status: OFF');
    } finally {
      await listener.stop();
    }
  });

  it('family ipv6 listens on ::1 and reports the IPv6 peer as source', async () => {
    const port = 12405;
    const listener = createTcpListener(tcpConfig(port, { family: 'ipv6', address: '::1' }), {
      logger: silentLogger,
      key: KEY,
      openHypervisor: noHypervisor,
    });
    const sources: (string | undefined)[] = [];
    await listener.start(async (request) => {
      sources.push(request.source);
      return { code: 0, reason: 'ok' };
    });
    try {
      const result = await fenceVirt([
        '-T',
        '::1',
        '-p',
        String(port),
        '-k',
        keyFile,
        '-o',
        'status',
        '-n',
        'vm1',
      ]);
      expect(result.code).toBe(0);
      expect(sources).toEqual(['::1']);
    } finally {
      await listener.stop();
    }
  });

  it('refuses connections beyond the cap and serves again once they close', async () => {
    const port = 12406;
    const log = capturingLogger();
    const listener = createTcpListener(
      tcpConfig(port),
      { logger: log.logger, key: KEY, openHypervisor: noHypervisor },
      { maxConnections: 2, timeouts: { requestMs: 30_000 } },
    );
    await listener.start(async () => ({ code: 0, reason: 'ok' }));
    const idle: Socket[] = [];
    try {
      for (let i = 0; i < 2; i += 1) {
        const socket = connect({ host: '127.0.0.1', port });
        await once(socket, 'connect');
        idle.push(socket);
      }
      const refused = await tcpRequest(4, 'vm1', 1, { port });
      expect(refused.code).toBeUndefined();
      expect(log.lines.some((l) => l.includes('"reason":"too-many-connections"'))).toBe(true);
      for (const socket of idle) socket.destroy();
      let served: SendResult = { code: undefined };
      let seqno = 2;
      // The server sees the idle sockets close asynchronously; retry until a slot is free.
      while (served.code === undefined) served = await tcpRequest(4, 'vm1', seqno++, { port });
      expect(served.code).toBe(0);
    } finally {
      for (const socket of idle) socket.destroy();
      await listener.stop();
    }
  });

  it('a start on a port in use fails with a clear message', async () => {
    const port = 12407;
    const first = createTcpListener(tcpConfig(port), {
      logger: silentLogger,
      key: KEY,
      openHypervisor: noHypervisor,
    });
    await first.start(async () => ({ code: 0, reason: 'ok' }));
    try {
      const second = createTcpListener(tcpConfig(port), {
        logger: silentLogger,
        key: KEY,
        openHypervisor: noHypervisor,
      });
      await expect(second.start(async () => ({ code: 0, reason: 'ok' }))).rejects.toThrow(
        /127\.0\.0\.1:12407.*EADDRINUSE/,
      );
    } finally {
      await first.stop();
    }
  });
});

describe('tcp listener rejections are logged with distinct reasons', () => {
  const port = 12408;
  let listener: Listener;
  let log: ReturnType<typeof capturingLogger>;
  let calls = 0;

  beforeAll(async () => {
    log = capturingLogger();
    listener = createTcpListener(tcpConfig(port), {
      logger: log.logger,
      key: KEY,
      openHypervisor: noHypervisor,
    });
    await listener.start(async () => {
      calls += 1;
      return { code: 0, reason: 'ok' };
    });
  });

  afterAll(() => listener.stop());

  const rejected = (reason: string): Promise<void> =>
    waitFor(() =>
      log.lines.some((l) => l.includes('"request-rejected"') && l.includes(`"reason":"${reason}"`)),
    );

  async function sendRaw(bytes: Buffer): Promise<void> {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    socket.end(bytes);
    await once(socket, 'close');
  }

  it('short-read: fewer than 176 bytes', async () => {
    await sendRaw(Buffer.alloc(100));
    await rejected('short-read');
  });

  it('bad-hash: an unknown hash type or a wrong digest', async () => {
    await sendRaw(Buffer.alloc(176, 0x41));
    await rejected('bad-hash');
  });

  it('duplicate: the same op, seqno and target again', async () => {
    expect((await tcpRequest(4, 'vm-dup', 4242, { port })).code).toBe(0);
    expect((await tcpRequest(4, 'vm-dup', 4242, { port })).code).toBeUndefined();
    await rejected('duplicate');
    expect(calls).toBe(1);
  });

  it('no-key: a signed request reaches a listener that has no key', async () => {
    const noKeyPort = 12409;
    const keyless = capturingLogger();
    const bare = createTcpListener(tcpConfig(noKeyPort), {
      logger: keyless.logger,
      key: Buffer.alloc(0),
      openHypervisor: noHypervisor,
    });
    await bare.start(async () => ({ code: 0, reason: 'ok' }));
    try {
      expect((await tcpRequest(4, 'vm1', 1, { port: noKeyPort })).code).toBeUndefined();
      await waitFor(() => keyless.lines.some((l) => l.includes('"reason":"no-key"')));
    } finally {
      await bare.stop();
    }
  });
});
