/**
 * fence_virtd start-up (docs/protocol.md §16): options, configuration errors, key checks, single instance,
 * signals and background mode. Exit codes are compared with the C daemon's where both run.
 */
import fs from 'node:fs';
import {
  C_DAEMON,
  OUR_DAEMON,
  runAgent,
  startDaemon,
  tempDir,
  type TempDir,
} from '../helpers/daemon.js';

let dir: TempDir;
let keyFile: string;
beforeAll(() => {
  dir = tempDir();
  keyFile = dir.file('key', 'startup-test-key');
});
afterAll(() => dir.remove());

const validBody = (key: string, uri = 'test:///default', port = 12295): string =>
  `fence_virtd { listener = "multicast"; backend = "libvirt"; }\n` +
  `listeners { multicast { key_file = "${key}"; port = "${port}"; } }\n` +
  `backends { libvirt { uri = "${uri}"; } }\n`;

async function both(
  name: string,
  config: string,
): Promise<{
  ours: Awaited<ReturnType<typeof runAgent>>;
  c: Awaited<ReturnType<typeof runAgent>>;
}> {
  const file = dir.file(`${name}.conf`, config);
  const args = ['-F', '-f', file, '-p', `${dir.path}/${name}.pid`];
  const [ours, c] = [
    await runAgent(OUR_DAEMON, args, { timeoutMs: 10_000 }),
    await runAgent(C_DAEMON, args, { timeoutMs: 10_000 }),
  ];
  return { ours, c };
}

describe('fence_virtd start-up errors, ours beside C', () => {
  it('prints the same usage for -h', async () => {
    const ours = await runAgent(OUR_DAEMON, ['-h']);
    const c = await runAgent(C_DAEMON, ['-h']);
    expect(ours.code).toBe(0);
    expect(ours.stdout).toBe(c.stdout);
  });

  it('exits 255 on a syntax error, naming the line and column', async () => {
    const { ours, c } = await both('syntax', 'fence_virtd {\n  listener = "multicast"\n}\n');
    expect(c.code).toBe(255);
    expect(ours.code).toBe(255);
    expect(ours.stderr).toMatch(/syntax\.conf:3:1/);
    expect(ours.stdout).toContain('Background mode disabled');
  });

  it('exits 255 without a backend name', async () => {
    const { ours, c } = await both('nobackend', 'fence_virtd { listener = "multicast"; }\n');
    expect([ours.code, c.code]).toEqual([255, 255]);
    expect(ours.stderr).toContain('Failed to determine backend');
  });

  it.each([
    [
      'listener',
      'fence_virtd { listener = "bogus"; backend = "libvirt"; }\n',
      'Could not find listener "bogus"',
    ],
    [
      'backend',
      'fence_virtd { listener = "multicast"; backend = "bogus"; }\n',
      'Could not find backend "bogus"',
    ],
  ])('exits 1 for an unknown %s plugin', async (what, config, message) => {
    const { ours, c } = await both(`unknown-${what}`, config);
    expect([ours.code, c.code]).toEqual([1, 1]);
    expect(c.stdout).toContain(message);
    expect(ours.stderr).toContain(message);
  });

  it('exits 255 when the key file is missing', async () => {
    const { ours, c } = await both('nokey', validBody(`${dir.path}/absent.key`));
    expect([ours.code, c.code]).toEqual([255, 255]);
    expect(ours.stderr).toContain(
      `stat failed on file '${dir.path}/absent.key': No such file or directory`,
    );
  });

  it('forces key permissions to 0600 with a message, then fails on unreachable libvirt', async () => {
    const loose = dir.file('loose.key', 'loose', 0o644);
    const looseC = dir.file('loose-c.key', 'loose', 0o644);
    const ours = await runAgent(OUR_DAEMON, [
      '-F',
      '-f',
      dir.file('o.conf', validBody(loose, 'test+unix:///default?socket=/nonexistent/sock')),
      '-p',
      `${dir.path}/o.pid`,
    ]);
    const c = await runAgent(C_DAEMON, [
      '-F',
      '-f',
      dir.file('c.conf', validBody(looseC, 'test+unix:///default?socket=/nonexistent/sock')),
      '-p',
      `${dir.path}/c.pid`,
    ]);
    expect([ours.code, c.code]).toEqual([1, 1]);
    expect(ours.stdout).toContain(
      `Insecure permissions on file '${loose}': changing from 0644 to 0600.`,
    );
    expect(c.stdout).toContain(
      `Insecure permissions on file '${looseC}': changing from 0644 to 0600.`,
    );
    expect(fs.statSync(loose).mode & 0o777).toBe(0o600);
    expect(ours.stderr).toContain('Backend plugin libvirt failed to initialize');
  });

  it('reports an invalid value with its key and line', async () => {
    const file = dir.file(
      'badport.conf',
      validBody(keyFile).replace('port = "12295"', 'port = "99999"'),
    );
    const ours = await runAgent(OUR_DAEMON, ['-F', '-f', file]);
    expect(ours.code).toBe(255);
    expect(ours.stderr).toMatch(/port/);
    expect(ours.stderr).toMatch(/line 2|:2/);
  });
});

describe('fence_virtd lifecycle', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'stops on %s, exit 0, pid file removed',
    async (signal) => {
      const pidFile = `${dir.path}/life-${signal}.pid`;
      const daemon = await startDaemon({
        kind: 'ours',
        configFile: dir.file(`life-${signal}.conf`, validBody(keyFile)),
        pidFile,
      });
      expect(fs.readFileSync(pidFile, 'utf8')).toBe(String(daemon.pid));
      expect(await daemon.stop(signal)).toBe(0);
      expect(fs.existsSync(pidFile)).toBe(false);
    },
  );

  it('refuses a second instance on the same pid file', async () => {
    const pidFile = `${dir.path}/single.pid`;
    const configFile = dir.file('single.conf', validBody(keyFile, 'test:///default', 12296));
    const first = await startDaemon({ kind: 'ours', configFile, pidFile });
    try {
      const second = await runAgent(OUR_DAEMON, ['-F', '-f', configFile, '-p', pidFile]);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain('already running');
    } finally {
      await first.stop();
    }
  });

  it('daemonizes without -F and serves until stopped by its pid', async () => {
    const pidFile = `${dir.path}/bg.pid`;
    const configFile = dir.file('bg.conf', validBody(keyFile, 'test:///default', 12297));
    const logFile = `${dir.path}/bg.log`;
    const parent = await runAgent(OUR_DAEMON, ['-f', configFile, '-p', pidFile], {
      env: { VIRTFENCE_LOG_FILE: logFile },
    });
    expect(parent.code).toBe(0);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    try {
      expect(() => process.kill(pid, 0)).not.toThrow();
      const logged = fs
        .readFileSync(logFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { event: string });
      expect(logged.some((e) => e.event === 'started')).toBe(true);
    } finally {
      process.kill(pid, 'SIGTERM');
    }
  });

  it('lists its plugins with -l', async () => {
    const result = await runAgent(OUR_DAEMON, ['-l']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('    multicast 1.3');
    expect(result.stdout).toContain('    libvirt 0.3');
    expect(result.stdout).toContain('    vsock 0.2');
    expect(result.stdout).toContain('    cpg 0.1');
  });
});

describe('every configuration the C daemon accepts starts ours', () => {
  const listenerBlocks = (key: string): Record<string, string> => ({
    multicast: `\tmulticast {\n\t\tkey_file = "${key}";\n\t\taddress = "225.0.0.12";\n\t\tport = "12296";\n\t\tinterface = "lo";\n\t}\n`,
    tcp: `\ttcp {\n\t\tkey_file = "${key}";\n\t\taddress = "127.0.0.1";\n\t\tport = "12297";\n\t}\n`,
    serial: `\tserial {\n\t\turi = "test:///default";\n\t\tmode = "serial";\n\t}\n`,
    // vsock ports are machine-wide: one of this file's own.
    vsock: `\tvsock {\n\t\tkey_file = "${key}";\n\t\tport = "52411";\n\t}\n`,
  });
  const backendBlocks: Record<string, string> = {
    libvirt: `\tlibvirt {\n\t\turi = "test:///default";\n\t}\n`,
    cpg: `\tcpg {\n\t\turi = "test:///default";\n\t\tname_mode = "uuid";\n\t}\n`,
  };

  for (const listener of ['multicast', 'tcp', 'serial', 'vsock']) {
    for (const backend of ['libvirt', 'cpg']) {
      it(`listener ${listener}, backend ${backend}`, async () => {
        const file = dir.file(
          `c-${listener}-${backend}.conf`,
          `fence_virtd {\n\tlistener = "${listener}";\n\tbackend = "${backend}";\n` +
            `\tmodule_path = "/usr/lib/x86_64-linux-gnu/fence-virt/";\n}\n\n` +
            `listeners {\n${listenerBlocks(keyFile)[listener]}}\n\n` +
            `backends {\n${backendBlocks[backend]}}\n`,
          0o600,
        );
        const daemon = await startDaemon({
          kind: 'ours',
          configFile: file,
          pidFile: `${dir.path}/c-${listener}-${backend}.pid`,
        });
        try {
          expect(daemon.logs.find((e) => e.event === 'started')).toMatchObject({
            listeners: listener,
            backend,
          });
          if (backend === 'cpg') {
            // No corosync in this namespace: the daemon serves its own VMs and keeps retrying.
            await daemon.waitForLog((e) => e.event === 'cpg-unavailable', 5000);
          }
        } finally {
          expect(await daemon.stop()).toBe(0);
        }
      });
    }
  }
});
