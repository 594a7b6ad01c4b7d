/**
 * The broker-facing `virtfence` commands against a real RabbitMQ and three simulated hosts
 * (a private libvirtd each, our fence_virtd with backend amqp each), run as a user would:
 * `bin/virtfence` in a child process (it loads dist/: build first).
 */
import { jest } from '@jest/globals';
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { CLUSTER_KEY, SimCluster, eventually } from '../helpers/cluster.js';
import { virsh } from '../helpers/libvirtd.js';

const execFileAsync = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VIRTFENCE = path.join(ROOT, 'bin/virtfence');

const VM = {
  a1: { name: 'vm-a1', uuid: '0a000000-0000-4000-8000-0000000000a1', running: true },
  b1: { name: 'vm-b1', uuid: '0b000000-0000-4000-8000-0000000000b1', running: true },
  c1: { name: 'vm-c1', uuid: '0c000000-0000-4000-8000-0000000000c1', running: true },
  c2: { name: 'vm-c2', uuid: '0c000000-0000-4000-8000-0000000000c2', running: false },
};

jest.setTimeout(120_000);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running `virtfence` child; `done` resolves with its output when it exits. */
function start(
  args: string[],
  env: NodeJS.ProcessEnv,
): { done: Promise<Run>; stderr: () => string } {
  const child = spawn(process.execPath, [VIRTFENCE, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = new Promise<Run>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    }),
  );
  return { done, stderr: () => stderr };
}

describe('virtfence broker commands (RabbitMQ, 3 hosts, our daemons)', () => {
  const cluster = new SimCluster({
    amqpPort: 5740,
    epmdPort: 4390,
    basePort: 12700,
    heartbeatMs: 200,
    deadAfterMs: 1500,
    hosts: [
      { id: 'h1', vms: [VM.a1] },
      { id: 'h2', vms: [VM.b1] },
      { id: 'h3', vms: [VM.c1, VM.c2] },
    ],
  });
  let conf: string;
  let env: NodeJS.ProcessEnv;

  const cli = (args: string[]): Promise<Run> => start([...args, '-f', conf], env).done;
  const json = async <T>(args: string[]): Promise<{ run: Run; out: T }> => {
    const run = await cli([...args, '--json']);
    try {
      return { run, out: JSON.parse(run.stdout) as T };
    } catch {
      throw new Error(`not JSON (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
    }
  };

  beforeAll(async () => {
    if (!fs.existsSync(path.join(ROOT, 'dist/cli/commands/hosts.js'))) {
      throw new Error('dist/cli is missing: build first (npm run build:ts)');
    }
    const manifest = path.join(ROOT, 'oclif.manifest.json');
    if (fs.existsSync(manifest) && !fs.readFileSync(manifest, 'utf8').includes('"key:check"')) {
      throw new Error('oclif.manifest.json is stale (no key:check): npm run build:ts');
    }
    await cluster.start();
    // The CLI reads a host's own config (its amqp block, with the operator's broker login: a
    // host's own user may consume only its own queues), plus a groups map.
    const hostConf = cluster.operatorConfig('h1');
    conf = path.join(cluster.dir.path, 'cli.conf');
    fs.writeFileSync(
      conf,
      hostConf +
        'groups {\n\tgroup {\n\t\tname = "web";\n\t\tip = "10.0.0.1";\n\t\tuuid = "vm-c1";\n\t}\n}\n',
    );
    env = { ...process.env, XDG_CACHE_HOME: path.join(cluster.dir.path, 'cache') };
  });
  afterAll(async () => {
    await cluster.dispose();
  });

  test('hosts lists the three hosts alive with their VM counts and version', async () => {
    const { run, out } = await json<{
      hosts: Array<{
        host: string;
        liveness: string;
        vms: number;
        software: string;
        broker: string;
      }>;
    }>(['hosts']);
    expect(run.code).toBe(0);
    expect(out.hosts.map((h) => [h.host, h.liveness, h.vms, h.broker])).toEqual([
      ['h1', 'alive', 1, 'connected'],
      ['h2', 'alive', 1, 'connected'],
      ['h3', 'alive', 2, 'connected'],
    ]);
    expect(out.hosts.every((h) => /^virtfence \d/.test(h.software))).toBe(true);

    const text = await cli(['hosts']);
    expect(text.code).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^HOST\s+STATE\s+HEARTBEAT\s+VMS\s+VERSION\s+BROKER/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2))).toEqual([
      ['h1', 'alive'],
      ['h2', 'alive'],
      ['h3', 'alive'],
    ]);
    expect(text.stderr).toMatch(/^Listening to cluster itest on amqp:\/\/127\.0\.0\.1:5740/);
  });

  test('vms shows every VM with its owner; --host filters', async () => {
    const { run, out } = await json<{
      vms: Array<{
        name: string;
        uuid: string;
        owners: string[];
        state: string;
        conflict: boolean;
      }>;
      conflicts: number;
    }>(['vms']);
    expect(run.code).toBe(0);
    expect(out.vms.map((v) => [v.name, v.uuid, v.owners, v.state])).toEqual([
      ['vm-a1', VM.a1.uuid, ['h1'], 'running'],
      ['vm-b1', VM.b1.uuid, ['h2'], 'running'],
      ['vm-c1', VM.c1.uuid, ['h3'], 'running'],
      ['vm-c2', VM.c2.uuid, [], 'shut-off'],
    ]);
    expect(out.conflicts).toBe(0);

    const only = await json<{ vms: Array<{ name: string }> }>(['vms', '--host', 'h3']);
    expect(only.out.vms.map((v) => v.name)).toEqual(['vm-c1', 'vm-c2']);

    const missing = await cli(['vms', '--host', 'nohost']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^virtfence vms: no such host: nohost/m);
  });

  test('route names the owner, local from the owner itself, unknown for a missing VM, groups', async () => {
    const remote = await json<{ route: string; hosts: string[]; requestAddresses: string[] }>([
      'route',
      'vm-c1',
      '--from',
      'h1',
      '-o',
      'off',
    ]);
    expect(remote.run.code).toBe(0);
    expect(remote.out).toMatchObject({
      route: 'remote',
      hosts: ['h3'],
      requestAddresses: ['/queue/virtfence.itest.req.h3'],
    });

    const local = await json<{ route: string; hosts: string[] }>([
      'route',
      VM.c1.uuid,
      '--from',
      'h3',
    ]);
    expect(local.out).toMatchObject({ route: 'local', hosts: ['h3'] });

    const unknown = await cli(['route', 'no-such-vm']);
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toMatch(/^reboot no-such-vm: unknown \(unknown-vm\)$/m);
    expect(unknown.stdout).toMatch(/answer without execution: 1 fail \(unknown-vm\)/);

    const allowed = await json<{ permission: { allowed: boolean | null }; answer: unknown }>([
      'route',
      'vm-c1',
      '--source',
      '10.0.0.1',
    ]);
    expect(allowed.run.code).toBe(0);
    expect(allowed.out).toMatchObject({ permission: { allowed: true }, answer: null });
    const denied = await json<{ permission: { allowed: boolean | null }; answer: unknown }>([
      'route',
      'vm-c1',
      '--source',
      '10.0.0.2',
    ]);
    expect(denied.run.code).toBe(1);
    expect(denied.out).toMatchObject({
      permission: { allowed: false },
      answer: { code: 3, reason: 'permission-denied' },
    });
  });

  const rabbitmqctl = async (args: string[]): Promise<string> => {
    const { stdout } = await execFileAsync(
      '/usr/lib/rabbitmq/bin/rabbitmqctl',
      ['-n', 'rabbit@localhost', ...args],
      {
        env: {
          PATH: process.env.PATH,
          HOME: path.join(cluster.broker.stateDir, 'home'),
          ERL_EPMD_PORT: '4390',
          LANG: 'C.UTF-8',
          LC_ALL: 'C.UTF-8',
        },
      },
    );
    return stdout;
  };

  test('observing commands leave no queue of their own on the broker', async () => {
    expect((await cli(['hosts'])).code).toBe(0);
    expect((await cli(['vms'])).code).toBe(0);
    const queues = await rabbitmqctl(['list_queues', '-q', 'name']);
    expect(queues).toContain('virtfence.itest.req.h1'); // the listing works
    expect(queues).not.toContain('virtfence-cli');
  });

  test('trace shows fence requests and their replies (same ids); fence through the CLI turns the VM off', async () => {
    // Fence traffic between hosts is on private queues: the trace reads the broker's firehose.
    await rabbitmqctl(['trace_on']);
    const trace = start(
      [
        'trace',
        '-f',
        conf,
        '--vm',
        'vm-c1',
        '--type',
        'fence-request',
        '--type',
        'fence-reply',
        '--count',
        '6',
        '--duration',
        '40',
      ],
      env,
    );
    await eventually(
      () => /Tracing cluster itest .*firehose: attached/.test(trace.stderr()),
      20_000,
      'trace ready',
    );

    // 1) the CLI itself fences vm-c1 off (signed request to h3's queue, reply to the CLI)
    const off = await json<{ code: number; route: string; executedBy: string; requestId: string }>([
      'fence',
      'vm-c1',
      '-o',
      'off',
    ]);
    expect(off.run.code).toBe(0);
    expect(off.out).toMatchObject({ code: 0, route: 'remote', executedBy: 'h3' });
    expect((await virsh(cluster.host('h3').sim.uri, 'domstate', 'vm-c1')).trim()).toBe('shut off');
    const status = await cli(['fence', 'vm-c1', '-o', 'status']);
    expect(status).toMatchObject({ code: 2, stdout: 'Status: OFF\n' });

    // 2) a guest's fence_xvm through host 1: h1 routes it to h3 over the broker
    expect(await cluster.xvm('h1', ['-o', 'on', '-H', 'vm-c1'])).toMatchObject({ code: 0 });
    expect((await virsh(cluster.host('h3').sim.uri, 'domstate', 'vm-c1')).trim()).toBe('running');

    const t = await trace.done;
    expect(t.code).toBe(0);
    const lines = t.stdout.trim().split('\n');
    const requests = lines.filter((l) => / fence-request /.test(l));
    const replies = lines.filter((l) => / fence-reply /.test(l));
    const idOf = (l: string) => /id=(\S+)$/.exec(l)?.[1];
    // off and status from the CLI, then on from h1
    expect(requests.length).toBe(3);
    expect(replies.length).toBe(3);
    expect(requests[0]).toContain(`id=${off.out.requestId}`);
    expect(requests[0]).toMatch(/virtfence-cli\.\d+\.[0-9a-f]+ → h3 +off vm-c1/);
    expect(new Set(requests.map(idOf)).size).toBe(3);
    expect(replies.map(idOf)).toEqual(requests.map(idOf));
    expect(replies[0]).toMatch(/0 success \(\S+\) from h3, vm shut-off, \d+ ms after the request/);
    expect(replies[1]).toMatch(/2 off \(\S+\) from h3/);
    expect(requests[2]).toMatch(/h1 → h3 +on vm-c1/);
    expect(replies[2]).toMatch(/0 success \(\S+\) from h3, vm running/);
  });

  test('key check: all match, then a host restarted with another cluster key is mismatched', async () => {
    const same = await json<{
      hosts: Array<{ host: string; verdict: string }>;
      fingerprint: string;
    }>(['key', 'check']);
    expect(same.run.code).toBe(0);
    expect(same.out.hosts.map((h) => [h.host, h.verdict])).toEqual([
      ['h1', 'match'],
      ['h2', 'match'],
      ['h3', 'match'],
    ]);
    expect(same.run.stdout).not.toContain(CLUSTER_KEY.toString());
    expect(same.run.stdout).not.toContain(CLUSTER_KEY.toString('hex'));

    const h2 = cluster.host('h2');
    const otherKey = cluster.dir.file(
      'other-cluster.key',
      Buffer.from('a-different-cluster-key-0001'),
    );
    fs.writeFileSync(
      h2.configFile,
      fs
        .readFileSync(h2.configFile, 'utf8')
        .replace(`"${cluster.clusterKeyFile}"`, `"${otherKey}"`),
    );
    await h2.daemon!.stop();
    await cluster.startDaemon('h2', false);

    // A second sender with yet another key: each mismatched sender is reported on its own.
    const rogue = await cluster.memberBus('rogue', Buffer.from('rogue-key-0123456789'));
    const beat = () =>
      void rogue
        .publish(
          rogue.create('heartbeat', {
            host: 'rogue',
            epoch: rogue.messages.epoch,
            seq: rogue.messages.seq + 1,
            software: { name: 'test', version: '0' },
            protocolVersion: 1,
            vmCount: 0,
            listeners: [],
          }),
        )
        .catch(() => undefined);
    const beats = setInterval(beat, 150);
    const text = await cli([
      'key',
      'check',
      '--host',
      'h1',
      '--host',
      'h2',
      '--host',
      'h3',
    ]).finally(() => clearInterval(beats));
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^Our key .*: fingerprint [0-9a-f]{16}$/m);
    const rows = text.stdout
      .split('\n')
      .filter((l) => /^(h\d|rogue) /.test(l))
      .map((l) => l.split(/\s+/).slice(0, 3));
    expect(rows).toEqual([
      ['h1', 'match', same.out.fingerprint],
      ['h2', 'mismatch', 'differs'],
      ['h3', 'match', same.out.fingerprint],
      ['rogue', 'mismatch', 'differs'],
    ]);
    await rogue.stop();

    // hosts flags it too: its heartbeats do not verify, so for us it is silent
    const hosts = await json<{ hosts: Array<{ host: string; rejected: number }> }>(['hosts']);
    expect(hosts.out.hosts.find((h) => h.host === 'h2')?.rejected).toBeGreaterThan(0);
    expect(hosts.out.hosts.find((h) => h.host === 'h1')?.rejected).toBe(0);
  });

  test('host 3 dead: route says owner-dead; after host-fenced, owner-fenced', async () => {
    await cluster.host('h3').daemon!.stop('SIGKILL');
    // The CLI remembers h3's inventory and last heartbeat from its earlier runs (cache).
    interface RouteOut {
      route: string;
      hosts: string[];
      explanation: string[];
    }
    let last: RouteOut | undefined;
    await eventually(
      async () => {
        last = (await json<RouteOut>(['route', 'vm-c1', '-o', 'off'])).out;
        return last.route === 'owner-dead';
      },
      20_000,
      'route owner-dead',
    );
    expect(last).toMatchObject({ route: 'owner-dead', hosts: ['h3'] });
    expect(last!.explanation.join(' ')).toMatch(/h3 claims vm-c1 but is dead \(last heartbeat/);

    const fenced = await json<{ host: string; by: string }>([
      'host-fenced',
      'h3',
      '--by',
      'ipmi-h3',
      '--evidence',
      'chassis power off',
    ]);
    expect(fenced.run.code).toBe(0);
    expect(fenced.out).toMatchObject({ host: 'h3', by: 'ipmi-h3' });

    const after = await json<{
      route: string;
      answer: { code: number; reason: string };
      evidence: unknown[];
    }>(['route', 'vm-c1', '-o', 'off']);
    expect(after.run.code).toBe(0);
    expect(after.out).toMatchObject({
      route: 'owner-fenced',
      answer: { code: 0, reason: 'owner-fenced' },
      evidence: [{ host: 'h3', by: 'ipmi-h3', evidence: 'chassis power off' }],
    });
    // the daemons got the same evidence: a fence through host 1 now succeeds without h3
    expect(await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-c1'])).toMatchObject({
      code: 2,
      stdout: 'Status: OFF\n',
    });
  });

  test('broker down: one-line error and a non-zero exit', async () => {
    await cluster.broker.stop('SIGTERM');
    const run = await cli(['hosts', '--connect-timeout', '2']);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(
      /^virtfence hosts: broker unreachable: amqp:\/\/127\.0\.0\.1:5740 \([^\n]+\)\n$/,
    );
    const j = await cli(['vms', '--json', '--connect-timeout', '2']);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout)).toMatchObject({
      error: { message: expect.stringMatching(/^broker unreachable/), exitCode: 1 },
    });
  });
});
