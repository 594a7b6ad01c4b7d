/**
 * The real `fence_virt -T` against the tcp listener of our fence_virtd and, as the control, of
 * the C fence_virtd; both with the libvirt backend on a private libvirtd.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Hypervisor } from '../../src/libvirt/hypervisor.js';
import { DomainState } from '../../src/protocol/constants.js';
import {
  C_VIRT,
  runAgent,
  startDaemon,
  tempDir,
  type DaemonKind,
  type RunningDaemon,
  type TempDir,
} from '../helpers/daemon.js';
import { seedHost, startLibvirtd, type SimHost } from '../helpers/libvirtd.js';

const PEER = { name: 'vm-peer', uuid: '44444444-0000-4000-8000-000000000001' };
const DOWN = { name: 'vm-down', uuid: '44444444-0000-4000-8000-000000000002' };

interface TcpSetup {
  family?: 'ipv4' | 'ipv6';
  auth?: string;
  groups?: boolean;
}

function configText(uri: string, keyFile: string, port: number, setup: TcpSetup): string {
  const family = setup.family ?? 'ipv4';
  const address = family === 'ipv6' ? '::1' : '127.0.0.1';
  const auth = setup.auth ? `\t\tauth = "${setup.auth}";\n` : '';
  const groups = setup.groups
    ? `groups {\n\tgroup {\n\t\tname = "peers";\n\t\tip = "127.0.0.1";\n\t\tuuid = "${PEER.name}";\n\t}\n}\n`
    : '';
  return (
    `fence_virtd {\n\tlistener = "tcp";\n\tbackend = "libvirt";\n}\n` +
    `listeners {\n\ttcp {\n\t\tkey_file = "${keyFile}";\n\t\tfamily = "${family}";\n\t\taddress = "${address}";\n` +
    `\t\tport = "${port}";\n${auth}\t}\n}\n` +
    `backends {\n\tlibvirt {\n\t\turi = "${uri}";\n\t}\n}\n` +
    groups
  );
}

/** The port accepts connections (the C daemon gives no other sign of readiness). */
async function waitForTcp(port: number, host: string, daemon: RunningDaemon): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (daemon.process.exitCode !== null) throw new Error(`daemon exited: ${daemon.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.each<[DaemonKind, number]>([
  ['ours', 12431],
  ['c', 12432],
])('%s fence_virtd tcp listener with the real fence_virt -T', (kind, port) => {
  let host: SimHost;
  let keeper: Hypervisor;
  let dir: TempDir;
  let keyFile: string;
  let otherKeyFile: string;
  let daemon: RunningDaemon | undefined;

  async function restart(setup: TcpSetup = {}): Promise<void> {
    await daemon?.stop();
    const configFile = dir.file('fence_virt.conf', configText(host.uri, keyFile, port, setup));
    daemon = await startDaemon({ kind, configFile, pidFile: join(dir.path, 'daemon.pid') });
    await waitForTcp(port, setup.family === 'ipv6' ? '::1' : '127.0.0.1', daemon);
  }

  const fenceVirt = (...args: string[]) =>
    runAgent(C_VIRT, ['-T', '127.0.0.1', '-p', String(port), '-k', keyFile, '-t', '10', ...args], {
      timeoutMs: 30_000,
    });

  beforeAll(async () => {
    dir = tempDir('vf-tcp-e2e-');
    keyFile = dir.file('fence.key', 'example-key-0123');
    otherKeyFile = dir.file('other.key', 'another-key-4567');
    host = await startLibvirtd(`${kind}-tcp`);
    keeper = await seedHost(host, [
      { ...PEER, running: true },
      { ...DOWN, running: false },
    ]);
  });

  afterAll(async () => {
    await daemon?.stop();
    await host?.stop();
    dir?.remove();
  });

  describe('default configuration', () => {
    beforeAll(() => restart());

    it('status, list, off, on and reboot', async () => {
      const on = await fenceVirt('-o', 'status', '-n', PEER.name);
      expect(on).toMatchObject({ code: 0 });
      expect(on.stdout).toContain('Status: ON');
      expect((await fenceVirt('-o', 'status', '-n', DOWN.name)).code).toBe(2);
      const list = await fenceVirt('-o', 'list');
      expect(list.stdout.split('\n').filter(Boolean)).toEqual([
        `${DOWN.name.padEnd(32)} ${DOWN.uuid} off`,
        `${PEER.name.padEnd(32)} ${PEER.uuid} on`,
      ]);
      expect((await fenceVirt('-o', 'off', '-n', PEER.name)).code).toBe(0);
      expect((await keeper.lookupByUuid(PEER.uuid))?.state).toBe(DomainState.SHUTOFF);
      expect((await fenceVirt('-o', 'on', '-n', PEER.name)).code).toBe(0);
      expect((await fenceVirt('-o', 'reboot', '-n', PEER.uuid)).code).toBe(0);
      expect((await keeper.lookupByUuid(PEER.uuid))?.state).toBe(DomainState.RUNNING);
    });

    it('a client with the wrong key fails and nothing happens', async () => {
      const result = await runAgent(
        C_VIRT,
        [
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
          PEER.name,
        ],
        { timeoutMs: 30_000 },
      );
      expect(result.code).toBe(1);
      expect((await keeper.lookupByUuid(PEER.uuid))?.state).toBe(DomainState.RUNNING);
    });
  });

  describe('groups', () => {
    beforeAll(() => restart({ groups: true }));

    it('the peer IP is the permission source', async () => {
      expect((await fenceVirt('-o', 'status', '-n', PEER.name)).code).toBe(0);
      const denied = await fenceVirt('-o', 'off', '-n', DOWN.name);
      expect(denied.code).toBe(3);
      expect(denied.stdout).toContain('Permission denied');
    });
  });

  describe('family ipv6', () => {
    beforeAll(() => restart({ family: 'ipv6' }));

    it('listens on ::1', async () => {
      const result = await runAgent(
        C_VIRT,
        ['-T', '::1', '-p', String(port), '-k', keyFile, '-o', 'status', '-n', PEER.name],
        { timeoutMs: 30_000 },
      );
      expect(result.code).toBe(0);
    });
  });

  describe('auth = "sha512"', () => {
    beforeAll(() => restart({ auth: 'sha512' }));

    // C: auth sets the minimum packet hash and the challenge stays sha256 (docs/protocol.md §8).
    // Ours: auth is the challenge algorithm and hash (default sha256) the minimum.
    const accepts =
      kind === 'c' ? ['-c', 'sha512', '-C', 'sha256'] : ['-c', 'sha256', '-C', 'sha512'];
    const refuses =
      kind === 'c' ? ['-c', 'sha256', '-C', 'sha512'] : ['-c', 'sha512', '-C', 'sha256'];

    it(`accepts ${accepts.join(' ')}`, async () => {
      expect((await fenceVirt(...accepts, '-o', 'status', '-n', PEER.name)).code).toBe(0);
    });

    it(`refuses ${refuses.join(' ')}`, async () => {
      expect((await fenceVirt(...refuses, '-t', '5', '-o', 'status', '-n', PEER.name)).code).toBe(
        1,
      );
    });
  });
});
