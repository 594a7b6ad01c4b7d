/**
 * fence_virt's default transports, OUR agent and the REAL /usr/sbin/fence_virt side by side, against
 * the serial listener of the C fence_virtd and of ours. A private libvirtd (test driver) holds a
 * guest whose live XML has unix serial and channel sockets; this test plays QEMU's side of them:
 * - serial mode: socat turns the guest's serial socket into a pty that `fence_virt -D` opens;
 * - vmchannel mode: a TCP relay stands in for QEMU's guestfwd (`fence_virt -A 127.0.0.1 -p`).
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  C_VIRT,
  ROOT,
  runAgent,
  tempDir,
  type AgentResult,
  type TempDir,
} from '../helpers/daemon.js';
import { startFenceVirtd, type CDaemon } from '../helpers/c-daemon.js';
import { seedHost, startLibvirtd, type SimHost } from '../helpers/libvirtd.js';
import { ChannelRelay, PtyRelay } from '../helpers/guest-relays.js';

const OUR_VIRT = path.join(ROOT, 'bin/fence_virt');
const GUEST = { name: 'vm-guest', uuid: '44444444-0000-4000-8000-000000000001' };
const PEER = { name: 'vm-peer', uuid: '44444444-0000-4000-8000-000000000002' };
const DOWN = { name: 'vm-down', uuid: '44444444-0000-4000-8000-000000000003' };

const steps: Array<[string, string[], number, string]> = [
  ['status of a running domain', ['-o', 'status', '-n', PEER.name], 0, 'Status: ON\n'],
  ['status of a shut-off domain', ['-o', 'status', '-n', DOWN.name], 2, 'Status: OFF\n'],
  ['status of an unknown domain', ['-o', 'status', '-n', 'nosuch'], 2, 'Status: OFF\n'],
  [
    'list',
    ['-o', 'list'],
    0,
    [DOWN, GUEST, PEER]
      .map((d) => `${d.name.padEnd(32)} ${d.uuid} ${d === DOWN ? 'off' : 'on'}\n`)
      .join(''),
  ],
  ['monitor', ['-o', 'monitor'], 0, ''],
  ['null', ['-o', 'null', '-n', PEER.name], 1, 'Operation failed\n'],
  ['off', ['-o', 'off', '-n', PEER.name], 0, ''],
  ['status after off', ['-o', 'status', '-n', PEER.name], 2, 'Status: OFF\n'],
  ['on', ['-o', 'on', '-n', PEER.name], 0, ''],
  ['reboot', ['-o', 'reboot', '-n', PEER.name], 0, ''],
  ['off of an unknown domain', ['-o', 'off', '-n', 'nosuch'], 1, 'Operation failed\n'],
];

describe('fence_virt serial and vmchannel modes against the serial listener', () => {
  let host: SimHost;
  let dir: TempDir;

  beforeAll(async () => {
    dir = tempDir('vf-agent-serial-');
    host = await startLibvirtd('agent-serial');
    await seedHost(host, [
      {
        ...GUEST,
        running: true,
        serialPaths: [path.join(dir.path, 'guest.sock')],
        channelPaths: [path.join(dir.path, 'guest.chan')],
      },
      { ...PEER, running: true },
      { ...DOWN, running: false },
    ]);
  });
  afterAll(async () => {
    await host?.stop();
    dir?.remove();
  });

  /**
   * C pulses the modem lines after opening the device, which fails harmlessly on a pty with
   * "ioctl1: Inappropriate ioctl for device". Node has no ioctl, so ours skips the pulse (and the
   * line): that one line is taken out of C's stderr, everything else is compared as is.
   */
  const withoutModemPulse = (r: AgentResult): AgentResult => ({
    ...r,
    stderr: r.stderr.replace(/^ioctl1: Inappropriate ioctl for device\n/m, ''),
  });

  async function both(
    args: string[],
    stdin?: string,
  ): Promise<{ c: AgentResult; ours: AgentResult }> {
    const options = { timeoutMs: 30_000, ...(stdin !== undefined ? { stdin } : {}) };
    const c = withoutModemPulse(await runAgent(C_VIRT, args, options));
    const ours = await runAgent(OUR_VIRT, args, options);
    return { c, ours };
  }

  describe.each([
    ['c', 12330],
    ['ours', 12331],
  ] as const)('%s fence_virtd', (kind, channelPort) => {
    describe('serial mode: fence_virt -D <pty>', () => {
      let relay: PtyRelay;
      let daemon: CDaemon;
      const tty = (): string => path.join(dir.path, `guest-${kind}.tty`);
      beforeAll(async () => {
        relay = await PtyRelay.start(path.join(dir.path, 'guest.sock'), tty());
        daemon = await startFenceVirtd({
          kind,
          listener: 'serial',
          backendUri: host.uri,
          serial: { uri: host.uri, mode: 'serial' },
        });
        await relay.waitConnected();
      });
      afterAll(async () => {
        await daemon?.stop();
        await relay?.stop();
      });

      it.each(steps)('%s', async (_name, args, code, stdout) => {
        const { c, ours } = await both(['-D', tty(), '-t', '10', ...args]);
        expect(ours).toEqual(c);
        expect(ours).toEqual({ code, stdout, stderr: '' });
      });

      it('stdin mode', async () => {
        const stdin = `action=status\nplug=${PEER.name}\nserial_device=${tty()}\nserial_params=115200,8N1\n`;
        const { c, ours } = await both([], stdin);
        expect(ours).toEqual(c);
        expect(ours.stdout).toBe('Status: ON\n');
      });
    });

    describe('vmchannel mode: fence_virt -A <relay> -p <port>', () => {
      let relay: ChannelRelay;
      let daemon: CDaemon;
      beforeAll(async () => {
        fs.rmSync(path.join(dir.path, 'guest.chan'), { force: true });
        relay = await ChannelRelay.start(path.join(dir.path, 'guest.chan'), channelPort);
        daemon = await startFenceVirtd({
          kind,
          listener: 'serial',
          backendUri: host.uri,
          serial: { uri: host.uri, mode: 'vmchannel' },
        });
        await relay.waitConnected();
      });
      afterAll(async () => {
        await daemon?.stop();
        await relay?.stop();
      });

      it.each(steps)('%s', async (_name, args, code, stdout) => {
        const { c, ours } = await both([
          '-A',
          '127.0.0.1',
          '-p',
          String(channelPort),
          '-t',
          '10',
          ...args,
        ]);
        expect(ours).toEqual(c);
        expect(ours).toEqual({ code, stdout, stderr: '' });
      });
    });
  });
});
