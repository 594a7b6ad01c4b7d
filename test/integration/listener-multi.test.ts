/**
 * Several listeners in one daemon (`listener = "multicast,serial,tcp"`): our fence_virtd serves
 * fence_xvm over multicast, fence_virt over vmchannel and fence_virt -T over TCP at once, and
 * stopping it releases every port and guest socket. vsock starts from a C configuration too.
 */
import { createSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  C_VIRT,
  C_XVM,
  runAgent,
  startDaemon,
  tempDir,
  type RunningDaemon,
  type TempDir,
} from '../helpers/daemon.js';
import { seedHost, startLibvirtd, type SimHost } from '../helpers/libvirtd.js';
import { waitFor } from '../helpers/listener-compliance.js';

const GUEST = { name: 'vm-guest', uuid: '55555555-0000-4000-8000-000000000001' };
const PEER = { name: 'vm-peer', uuid: '55555555-0000-4000-8000-000000000002' };
const MULTICAST_PORT = 12441;
const TCP_PORT = 12442;
const VSOCK_PORT = 52442; // vsock ports are machine-wide, not per network namespace
const CHANNEL_PORT = 12443;

/** QEMU's guestfwd stand-in: guest TCP connections are joined to the daemon's unix connection. */
async function channelRelay(socketPath: string, port: number) {
  let daemonSide: Socket | undefined;
  let guestSide: Socket | undefined;
  let daemonClosed = false;
  const unix: Server = createServer((socket) => {
    daemonSide = socket;
    socket.on('error', () => undefined);
    socket.on('data', (data) => guestSide?.write(data));
    socket.on('close', () => (daemonClosed = true));
  });
  const tcp: Server = createServer((socket) => {
    guestSide = socket;
    socket.on('error', () => undefined);
    socket.on('data', (data) => daemonSide?.write(data));
  });
  await new Promise<void>((resolve) => unix.listen(socketPath, resolve));
  await new Promise<void>((resolve) => tcp.listen(port, '127.0.0.1', resolve));
  return {
    connected: () => waitFor(() => daemonSide !== undefined),
    released: () => waitFor(() => daemonClosed),
    async stop() {
      daemonSide?.destroy();
      guestSide?.destroy();
      await Promise.all([unix, tcp].map((s) => new Promise((resolve) => s.close(resolve))));
    },
  };
}

function canBindUdp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => resolve(false));
    socket.bind({ port, exclusive: true }, () => socket.close(() => resolve(true)));
  });
}

function canBindTcp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

describe('our fence_virtd with several listeners', () => {
  let host: SimHost;
  let dir: TempDir;
  let keyFile: string;
  let daemon: RunningDaemon | undefined;
  let relay: Awaited<ReturnType<typeof channelRelay>>;

  beforeAll(async () => {
    dir = tempDir('vf-multi-');
    keyFile = dir.file('fence.key', 'example-key-0123');
    host = await startLibvirtd('multi');
    await seedHost(host, [
      { ...GUEST, running: true, channelPaths: [join(dir.path, 'guest.chan')] },
      { ...PEER, running: true },
    ]);
    relay = await channelRelay(join(dir.path, 'guest.chan'), CHANNEL_PORT);
  });

  afterAll(async () => {
    await daemon?.stop();
    await relay?.stop();
    await host?.stop();
    dir?.remove();
  });

  it('serves multicast, vmchannel and tcp clients at once, and releases everything on stop', async () => {
    const configFile = dir.file(
      'fence_virt.conf',
      `fence_virtd {\n\tlistener = "multicast,serial,tcp";\n\tbackend = "libvirt";\n}\n` +
        `listeners {\n` +
        `\tmulticast {\n\t\tkey_file = "${keyFile}";\n\t\taddress = "225.0.0.12";\n\t\tport = "${MULTICAST_PORT}";\n\t}\n` +
        `\tserial {\n\t\turi = "${host.uri}";\n\t\tmode = "vmchannel";\n\t}\n` +
        `\ttcp {\n\t\tkey_file = "${keyFile}";\n\t\tport = "${TCP_PORT}";\n\t}\n` +
        `}\nbackends {\n\tlibvirt {\n\t\turi = "${host.uri}";\n\t}\n}\n`,
    );
    daemon = await startDaemon({ kind: 'ours', configFile, pidFile: join(dir.path, 'daemon.pid') });
    await relay.connected();

    const [multicast, channel, tcp] = await Promise.all([
      runAgent(C_XVM, [
        '-a',
        '225.0.0.12',
        '-p',
        String(MULTICAST_PORT),
        '-k',
        keyFile,
        '-t',
        '10',
        '-r',
        '10',
        '-o',
        'status',
        '-H',
        PEER.name,
      ]),
      runAgent(C_VIRT, [
        '-A',
        '127.0.0.1',
        '-p',
        String(CHANNEL_PORT),
        '-t',
        '10',
        '-o',
        'status',
        '-n',
        PEER.name,
      ]),
      runAgent(C_VIRT, [
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
        PEER.name,
      ]),
    ]);
    for (const result of [multicast, channel, tcp]) {
      expect(result).toMatchObject({ code: 0, stdout: 'Status: ON\n' });
    }
    const sources = daemon.logs
      .filter((e) => e.event === 'request')
      .map((e) => [e.listener, e.source]);
    expect(sources).toEqual(
      expect.arrayContaining([
        ['multicast', '127.0.0.1'],
        ['serial', GUEST.uuid],
        ['tcp', '127.0.0.1'],
      ]),
    );

    expect(await daemon.stop()).toBe(0);
    daemon = undefined;
    await relay.released();
    expect(await canBindUdp(MULTICAST_PORT)).toBe(true);
    expect(await canBindTcp(TCP_PORT)).toBe(true);
  });

  it('starts tcp and vsock together from a C configuration; vsock binds its port', async () => {
    const configFile = dir.file(
      'fence_virt-vsock.conf',
      `fence_virtd {\n\tlistener = "tcp,vsock";\n\tbackend = "libvirt";\n}\n` +
        `listeners {\n\ttcp {\n\t\tkey_file = "${keyFile}";\n\t\tport = "${TCP_PORT}";\n\t}\n` +
        `\tvsock {\n\t\tkey_file = "${keyFile}";\n\t\tport = "${VSOCK_PORT}";\n\t}\n}\n` +
        `backends {\n\tlibvirt {\n\t\turi = "${host.uri}";\n\t}\n}\n`,
    );
    const d = await startDaemon({ kind: 'ours', configFile, pidFile: join(dir.path, 'vsock.pid') });
    try {
      expect(
        d.logs.some(
          (e) => e.event === 'listening' && e.listener === 'vsock' && e.port === VSOCK_PORT,
        ),
      ).toBe(true);
      // vsock ports are machine-wide: a second bind on it fails while the daemon holds it.
      const { loadVsockAddon } = await import('../../src/listeners/vsock/native.js');
      expect(errorCode(() => loadVsockAddon().listen(VSOCK_PORT, 1, () => undefined))).toBe(
        'EADDRINUSE',
      );
    } finally {
      expect(await d.stop()).toBe(0);
    }
  });
});

function errorCode(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}
