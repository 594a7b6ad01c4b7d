/**
 * `virtfence doctor`: every known cause of "Timed out waiting for response" is made real here
 * (a stopped daemon, a daemon on another port, a wrong key, an nftables rule, a bridge snooping
 * without a querier, a namespace without a multicast route, an unreachable libvirt, a broker that
 * is down or refuses the credentials, a host whose clock is off) and must be diagnosed by name;
 * and a healthy set-up must pass. Output read through --json.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { jest } from '@jest/globals';
import {
  C_XVM,
  ROOT,
  runAgent,
  startDaemon,
  tempDir,
  type RunningDaemon,
  type TempDir,
} from '../helpers/daemon.js';
import { startRabbit, type RabbitBroker } from '../helpers/rabbitmq.js';
import { ClusterBus } from '../../src/amqp/bus.js';
import { resolveProfile } from '../../src/amqp/profiles.js';
import { MessageFactory } from '../../src/messages/sign.js';

jest.setTimeout(90_000);

const VIRTFENCE = path.join(ROOT, 'bin/virtfence');
const PORT = 12520;
const METRICS = 19210;

interface Finding {
  check: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  summary: string;
  fix?: string;
}
interface Report {
  role: string;
  ok: boolean;
  findings: Finding[];
}

let dir: TempDir;
let key: string;
let wrongKey: string;

async function doctor(
  args: string[],
  prefix: string[] = [],
): Promise<Report & { code: number | null }> {
  const argv = [...prefix, process.execPath, VIRTFENCE, 'doctor', ...args, '--json'];
  const r = await runAgent(argv[0]!, argv.slice(1), { timeoutMs: 30_000 });
  try {
    return { ...(JSON.parse(r.stdout) as Report), code: r.code };
  } catch {
    throw new Error(`doctor output is not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
}

const find = (r: Report, check: string): Finding[] => r.findings.filter((f) => f.check === check);
const one = (r: Report, check: string): Finding => {
  const all = find(r, check);
  if (all.length !== 1) throw new Error(`${check}: ${JSON.stringify(r.findings, null, 1)}`);
  return all[0]!;
};

function hostConfig(name: string, o: { port?: number; uri?: string; iface?: string } = {}): string {
  return dir.file(
    `${name}.conf`,
    `fence_virtd { listener = "multicast"; backend = "libvirt"; metrics_port = "${METRICS}"; }\n` +
      `listeners { multicast { key_file = "${key}"; port = "${o.port ?? PORT}";` +
      `${o.iface ? ` interface = "${o.iface}";` : ''} } }\n` +
      `backends { libvirt { uri = "${o.uri ?? 'test:///default'}"; } }\n`,
  );
}

beforeAll(() => {
  dir = tempDir('virtfence-doctor-');
  key = dir.file('fence_xvm.key', 'doctor-test-key-0123456789');
  wrongKey = dir.file('wrong.key', 'another-key-entirely');
  execFileSync('chmod', ['600', key, wrongKey]);
});
afterAll(() => dir.remove());

describe('doctor on a host and in a guest, against causes made real', () => {
  let daemon: RunningDaemon | undefined;
  const guest = (k = key, extra: string[] = []): string[] => [
    'guest',
    '-k',
    k,
    '-p',
    String(PORT),
    '-t',
    '2',
    ...extra,
  ];

  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });

  it('a stopped daemon: not running, no group membership; the guest probe gets no answer', async () => {
    const host = await doctor(['host', '-f', hostConfig('stopped')]);
    expect(host.code).toBe(1);
    expect(one(host, 'daemon')).toMatchObject({ status: 'fail' });
    expect(one(host, 'daemon').summary).toMatch(/not running/);
    expect(one(host, 'group-membership').status).toBe('fail');
    const g = await doctor(guest());
    expect(one(g, 'probe').status).toBe('fail');
    expect(one(g, 'probe').summary).toMatch(/no fence_virtd answered on 225\.0\.0\.12:12520/);
  });

  it('healthy: every host check passes and the guest probe is answered', async () => {
    const conf = hostConfig('healthy');
    daemon = await startDaemon({ kind: 'ours', configFile: conf, pidFile: dir.path + '/h.pid' });
    const host = await doctor(['host', '-f', conf]);
    expect(host.findings.filter((f) => f.status === 'fail')).toEqual([]);
    expect(one(host, 'daemon').summary).toMatch(/UDP 12520/);
    expect(one(host, 'group-membership').summary).toBe('225.0.0.12 joined on lo');
    expect(one(host, 'libvirt').summary).toBe('test:///default: 1 domain(s)');
    const g = await doctor(guest());
    expect(g.code).toBe(0);
    expect(one(g, 'probe').status).toBe('ok');
  });

  it('a daemon on another port than the configuration says', async () => {
    daemon = await startDaemon({
      kind: 'ours',
      configFile: hostConfig('other', { port: PORT + 1 }),
      pidFile: dir.path + '/o.pid',
    });
    const host = await doctor(['host', '-f', hostConfig('expected')]);
    expect(one(host, 'daemon').status).toBe('fail');
    expect(one(host, 'daemon').summary).toMatch(
      /not on the configured ports \(UDP 12520\).*UDP 12521/,
    );
  });

  it('a key that differs: the host sees bad-digest drops, fingerprints differ, never a key', async () => {
    const conf = hostConfig('wrongkey');
    daemon = await startDaemon({ kind: 'ours', configFile: conf, pidFile: dir.path + '/w.pid' });
    const agent = await runAgent(C_XVM, [
      '-k',
      wrongKey,
      '-p',
      String(PORT),
      '-t',
      '1',
      '-r',
      '10',
      '-o',
      'status',
      '-H',
      'test',
    ]);
    expect(agent.stdout).toContain('Timed out waiting for response');
    const g = await doctor(guest(wrongKey));
    expect(one(g, 'probe').status).toBe('fail');
    const guestFp = /fingerprint ([0-9a-f]{16})/.exec(one(g, 'key').summary)![1]!;
    const host = await doctor(['host', '-f', conf, '--peer-fingerprint', guestFp]);
    expect(one(host, 'dropped-requests').status).toBe('fail');
    expect(one(host, 'dropped-requests').summary).toMatch(/signed with another key \(bad-digest\)/);
    expect(one(host, 'key').status).toBe('fail');
    expect(one(host, 'key').summary).toMatch(new RegExp(`the other side ${guestFp}`));
    const text = JSON.stringify([g, host]);
    expect(text).not.toContain('doctor-test-key');
    expect(text).not.toContain('another-key-entirely');
  });

  it('a firewall rule dropping the request and the callback (nftables)', async () => {
    const conf = hostConfig('firewall');
    daemon = await startDaemon({ kind: 'ours', configFile: conf, pidFile: dir.path + '/f.pid' });
    const nft = (...a: string[]): void => void execFileSync('nft', a);
    nft('add', 'table', 'inet', 'vfdoctor');
    try {
      nft('add', 'chain', 'inet', 'vfdoctor', 'in', '{ type filter hook input priority 0 ; }');
      nft('add', 'rule', 'inet', 'vfdoctor', 'in', 'udp', 'dport', String(PORT), 'drop');
      nft('add', 'rule', 'inet', 'vfdoctor', 'in', 'tcp', 'dport', `{ 22, ${PORT} }`, 'reject');
      const host = await doctor(['host', '-f', conf]);
      expect(one(host, 'firewall').status).toBe('fail');
      expect(one(host, 'firewall').summary).toMatch(
        /nftables drops UDP to the listener port 12520 \(table inet vfdoctor chain in: udp dport 12520 drop\)/,
      );
      const g = await doctor(guest());
      expect(one(g, 'firewall').summary).toMatch(
        /drops the hypervisor's TCP callback to port 12520/,
      );
      expect(one(g, 'probe').status).toBe('fail');
    } finally {
      nft('delete', 'table', 'inet', 'vfdoctor');
    }
    expect(one(await doctor(guest()), 'probe').status).toBe('ok');
  });

  it('IGMP snooping without a querier on the bridge the listener uses', async () => {
    execFileSync('ip', ['link', 'add', 'vfbr0', 'type', 'bridge']);
    try {
      const host = await doctor(['host', '-f', hostConfig('bridge', { iface: 'vfbr0' })]);
      const q = find(host, 'igmp-querier').find((f) => f.summary.startsWith('vfbr0'))!;
      expect(q.status).toBe('fail');
      expect(q.fix).toContain('/sys/class/net/vfbr0/bridge/multicast_querier');
      execFileSync('ip', ['link', 'set', 'vfbr0', 'type', 'bridge', 'mcast_querier', '1']);
      const after = await doctor(['host', '-f', hostConfig('bridge', { iface: 'vfbr0' })]);
      expect(find(after, 'igmp-querier').find((f) => f.summary.startsWith('vfbr0'))!.status).toBe(
        'ok',
      );
    } finally {
      execFileSync('ip', ['link', 'del', 'vfbr0']);
    }
  });

  it('a guest without a route for the multicast group (a namespace of its own)', async () => {
    execFileSync('ip', ['netns', 'add', 'vfdoctor']);
    try {
      execFileSync('ip', ['netns', 'exec', 'vfdoctor', 'ip', 'link', 'set', 'lo', 'up']);
      const g = await doctor(guest(), ['ip', 'netns', 'exec', 'vfdoctor']);
      expect(one(g, 'multicast-route').status).toBe('fail');
      expect(one(g, 'multicast-route').summary).toMatch(
        /no route for the multicast group 225\.0\.0\.12: .*unreachable/i,
      );
      expect(one(g, 'probe').status).toBe('fail');
    } finally {
      execFileSync('ip', ['netns', 'del', 'vfdoctor']);
    }
  });

  it('libvirt unreachable', async () => {
    const host = await doctor([
      'host',
      '-f',
      hostConfig('nolibvirt', { uri: 'qemu+unix:///system?socket=/nonexistent/libvirt-sock' }),
    ]);
    expect(one(host, 'libvirt').status).toBe('fail');
    expect(one(host, 'libvirt').summary).toMatch(/unreachable/);
  });
});

describe('doctor with the amqp backend: the broker and the clocks', () => {
  let broker: RabbitBroker;
  const clusterKey = (): string => dir.file('cluster.key', 'doctor-cluster-key-abcdefghijklmnop');
  const amqpConfig = (name: string, url: string, password: string): string => {
    const pw = dir.file(`${name}.pw`, password + '\n');
    return dir.file(
      `${name}.conf`,
      `fence_virtd { listener = "multicast"; backend = "amqp"; }\n` +
        `listeners { multicast { key_file = "${key}"; port = "${PORT}"; } }\n` +
        `backends { amqp { url = "${url}"; username = "virtfence"; password_file = "${pw}";` +
        ` cluster = "doc"; key_file = "${clusterKey()}"; heartbeat_interval = "300"; uri = "test:///default"; } }\n`,
    );
  };

  beforeAll(async () => {
    broker = await startRabbit({ port: 5732, distPort: 25732, epmdPort: 4394 });
  }, 120_000);
  afterAll(async () => {
    await broker?.dispose();
  });

  it('a broker that is down, and one that refuses the credentials', async () => {
    const down = await doctor([
      'host',
      '-f',
      amqpConfig('down', 'amqp://127.0.0.1:5799', 'virtfence'),
    ]);
    expect(one(down, 'broker').status).toBe('fail');
    expect(one(down, 'broker').summary).toMatch(/^broker unreachable: amqp:\/\/127\.0\.0\.1:5799/);
    const refused = await doctor([
      'host',
      '-f',
      amqpConfig('refused', broker.url, 'not-the-password'),
    ]);
    expect(one(refused, 'broker').status).toBe('fail');
    expect(one(refused, 'broker').summary).toMatch(/refused the credentials of user virtfence/);
  });

  it('a host whose clock is 12 s ahead (from its heartbeats); in time otherwise', async () => {
    const key = Buffer.from('doctor-cluster-key-abcdefghijklmnop');
    const member = (
      hostId: string,
      offsetMs: number,
    ): { bus: ClusterBus; factory: MessageFactory } => ({
      bus: new ClusterBus({
        urls: [broker.url],
        hostId,
        cluster: 'doc',
        key,
        profile: resolveProfile('rabbitmq3'),
        username: 'virtfence',
        password: 'virtfence',
        maxReconnectDelayMs: 500,
        queues: { request: false, reply: false },
      }),
      factory: new MessageFactory({
        cluster: 'doc',
        hostId,
        key,
        now: () => Date.now() + offsetMs,
      }),
    });
    const hosts = [member('hv-skewed', 12_000), member('hv-good', 0)];
    for (const h of hosts) await h.bus.start({ timeoutMs: 20_000 });
    let seq = 0;
    const beat = setInterval(() => {
      seq++;
      for (const h of hosts) {
        const body = {
          host: h.factory.hostId,
          epoch: h.factory.epoch,
          seq,
          software: { name: 'virtfence', version: '0.1.0' },
          protocolVersion: 1,
          vmCount: 0,
          listeners: ['multicast'],
          intervalMs: 300,
        };
        void h.bus.publish(h.factory.create('heartbeat', body)).catch(() => undefined);
      }
    }, 300);
    try {
      const report = await doctor(['host', '-f', amqpConfig('clock', broker.url, 'virtfence')]);
      expect(one(report, 'broker').status).toBe('ok');
      const clock = one(report, 'clock');
      expect(clock.status).toBe('fail');
      expect(clock.summary).toMatch(/hv-skewed \+1[12]\.\d s/);
      expect(clock.summary).not.toContain('hv-good');
    } finally {
      clearInterval(beat);
      for (const h of hosts) await h.bus.stop();
    }
  });
});
