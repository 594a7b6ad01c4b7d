/**
 * The real /usr/sbin/fence_xvm against a daemon, for every action, both address families, every
 * hash and auth type. The whole table runs against our fence_virtd AND against the C fence_virtd
 * as a control: a case that passes for ours but fails for C is a bug in the test.
 */
import { execFileSync } from 'node:child_process';
import {
  C_XVM,
  runAgent,
  startDaemon,
  tempDir,
  type DaemonKind,
  type RunningDaemon,
  type TempDir,
} from '../helpers/daemon.js';

const TEST_UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f';
const KEY = Buffer.from('example-key-0123');
const BASE_PORT: Record<DaemonKind, number> = { ours: 12210, c: 12240 };
const IPV6_SOURCE = 'fd00:1229::1';

interface DaemonSetup {
  family?: 'ipv4' | 'ipv6';
  hash?: string;
  auth?: string;
  groups?: string;
}

function configText(port: number, keyFile: string, s: DaemonSetup): string {
  const ipv6 = s.family === 'ipv6';
  return `fence_virtd {
	listener = "multicast";
	backend = "libvirt";
}
listeners {
	multicast {
		key_file = "${keyFile}";
		address = "${ipv6 ? 'ff05::3:1' : '225.0.0.12'}";
		family = "${ipv6 ? 'ipv6' : 'ipv4'}";
		port = "${port}";
		hash = "${s.hash ?? 'sha256'}";
		auth = "${s.auth ?? 'sha256'}";
	}
}
backends {
	libvirt {
		uri = "test:///default";
	}
}
${s.groups ?? ''}
`;
}

function hasGlobalIpv6(): boolean {
  const out = execFileSync('ip', ['-6', 'addr', 'show', 'scope', 'global'], { encoding: 'utf8' });
  return /inet6 /.test(out);
}

describe.each<DaemonKind>(['ours', 'c'])('fence_xvm against the %s daemon', (kind) => {
  let dir: TempDir;
  let keyFile: string;
  let offset = 0;
  let daemon: RunningDaemon | undefined;
  let port = 0;

  beforeAll(() => {
    dir = tempDir();
    keyFile = dir.file('fence_xvm.key', KEY);
  });
  afterAll(() => dir.remove());
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });

  async function start(setup: DaemonSetup = {}): Promise<void> {
    port = BASE_PORT[kind] + offset;
    offset += 1;
    const configFile = dir.file(`fence_virt-${port}.conf`, configText(port, keyFile, setup));
    daemon = await startDaemon({
      kind,
      configFile,
      pidFile: `${dir.path}/fence_virtd-${port}.pid`,
      udpPort: port,
      udpFamily: setup.family === 'ipv6' ? 'udp6' : 'udp4',
    });
  }

  function xvm(args: string[], extra: { timeout?: number; key?: string } = {}) {
    return runAgent(C_XVM, [
      '-p',
      String(port),
      '-k',
      extra.key ?? keyFile,
      '-t',
      String(extra.timeout ?? 10),
      '-r',
      '10',
      ...args,
    ]);
  }

  it('serves status, list, monitor and null, and the power cycle of docs/protocol.md §12', async () => {
    await start();
    expect(await xvm(['-o', 'status', '-H', 'test'])).toMatchObject({
      code: 0,
      stdout: 'Status: ON\n',
    });
    expect(await xvm(['-o', 'status', '-H', TEST_UUID])).toMatchObject({
      code: 0,
      stdout: 'Status: ON\n',
    });
    expect(await xvm(['-o', 'status', '-H', 'no-such-vm'])).toMatchObject({
      code: 2,
      stdout: 'Status: OFF\n',
    });
    const list = await xvm(['-o', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toBe(`${'test'.padEnd(32)} ${TEST_UUID} on\n`);
    expect((await xvm(['-o', 'list-status'])).stdout).toBe(list.stdout);
    expect(await xvm(['-o', 'monitor'])).toMatchObject({ code: 0, stdout: '' });
    expect(await xvm(['-o', 'null', '-H', 'test'])).toMatchObject({
      code: 1,
      stdout: 'Operation failed\n',
    });
    expect(await xvm(['-o', 'off', '-H', 'no-such-vm'])).toMatchObject({
      code: 1,
      stdout: 'Operation failed\n',
    });
    expect(await xvm(['-o', 'on', '-H', 'no-such-vm'])).toMatchObject({ code: 1 });
    expect(await xvm(['-o', 'reboot', '-H', 'no-such-vm'])).toMatchObject({ code: 1 });

    expect(await xvm(['-o', 'off', '-H', 'test'])).toMatchObject({ code: 0, stdout: '' });
    expect(await xvm(['-o', 'status', '-H', 'test'])).toMatchObject({
      code: 2,
      stdout: 'Status: OFF\n',
    });
    expect((await xvm(['-o', 'list'])).stdout).toBe(`${'test'.padEnd(32)} ${TEST_UUID} off\n`);
    expect(await xvm(['-o', 'off', '-H', 'test'])).toMatchObject({ code: 0 });
    // reboot does not power on a VM that is off
    expect(await xvm(['-o', 'reboot', '-H', 'test'])).toMatchObject({ code: 0 });
    expect(await xvm(['-o', 'status', '-H', 'test'])).toMatchObject({ code: 2 });
    expect(await xvm(['-o', 'on', '-H', TEST_UUID])).toMatchObject({ code: 0 });
    expect(await xvm(['-o', 'status', '-H', 'test'])).toMatchObject({ code: 0 });
    expect(await xvm(['-o', 'on', '-H', 'test'])).toMatchObject({ code: 0 });
    expect(await xvm(['-o', 'reboot', '-H', 'test'])).toMatchObject({ code: 0 });
    expect(await xvm(['-o', 'status', '-H', 'test'])).toMatchObject({
      code: 0,
      stdout: 'Status: ON\n',
    });
  });

  it('reads its arguments from stdin as Pacemaker passes them', async () => {
    await start();
    const stdin = [
      'action=status',
      'port=test',
      `ipport=${port}`,
      `key_file=${keyFile}`,
      'timeout=10',
      'retrans=10',
      '',
    ].join('\n');
    expect(await runAgent(C_XVM, [], { stdin })).toMatchObject({ code: 0, stdout: 'Status: ON\n' });
  });

  it('times out with a wrong key, and with a hash weaker than the minimum', async () => {
    await start();
    const wrongKey = dir.file('wrong.key', 'not-the-key');
    const wrong = await xvm(['-o', 'status', '-H', 'test'], { timeout: 2, key: wrongKey });
    expect(wrong).toMatchObject({
      code: 1,
      stdout: 'Timed out waiting for response\nOperation failed\n',
    });
    const weak = await xvm(['-o', 'status', '-H', 'test', '-c', 'sha1'], { timeout: 2 });
    expect(weak.code).toBe(1);
    expect(weak.stdout).toContain('Timed out waiting for response');
    expect(await xvm(['-o', 'status', '-H', 'test', '-c', 'sha512'])).toMatchObject({ code: 0 });
  });

  it.each([
    ['none', 'none'],
    ['sha1', 'sha1'],
    ['sha256', 'sha512'],
    ['sha512', 'sha256'],
  ])('works with hash %s and challenge-response %s', async (hash, auth) => {
    await start({ hash, auth });
    const result = await xvm(['-o', 'status', '-H', 'test', '-c', hash, '-C', auth]);
    expect(result).toMatchObject({ code: 0, stdout: 'Status: ON\n' });
  });

  it('fails when the challenge algorithms differ', async () => {
    await start({ auth: 'sha512' });
    const result = await xvm(['-o', 'status', '-H', 'test', '-C', 'sha256'], { timeout: 4 });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('Operation failed');
  });

  it('applies groups: permission denied outside the map, list filtered', async () => {
    await start({
      groups: `groups {\n\tgroup {\n\t\tname = "others";\n\t\tip = "203.0.113.9";\n\t\tuuid = "test";\n\t}\n}\n`,
    });
    expect(await xvm(['-o', 'status', '-H', 'test'])).toMatchObject({
      code: 3,
      stdout: 'Permission denied\n',
    });
    expect(await xvm(['-o', 'list'])).toMatchObject({ code: 0, stdout: '' });
    expect(await xvm(['-o', 'monitor'])).toMatchObject({ code: 0 });
  });

  describe('over IPv6', () => {
    let added = false;
    beforeAll(() => {
      if (hasGlobalIpv6()) return;
      execFileSync('ip', ['-6', 'addr', 'add', `${IPV6_SOURCE}/128`, 'dev', 'lo']);
      added = true;
    });
    afterAll(() => {
      if (added) execFileSync('ip', ['-6', 'addr', 'del', `${IPV6_SOURCE}/128`, 'dev', 'lo']);
    });

    it('serves status and list on ff05::3:1', async () => {
      await start({ family: 'ipv6' });
      expect(await xvm(['-i', 'ipv6', '-o', 'status', '-H', 'test'])).toMatchObject({
        code: 0,
        stdout: 'Status: ON\n',
      });
      const list = await xvm(['-i', 'ipv6', '-o', 'list']);
      expect(list).toMatchObject({ code: 0 });
      expect(list.stdout).toContain(TEST_UUID);
    });
  });
});
