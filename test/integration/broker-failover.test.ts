/**
 * Broker failover: two broker nodes serving one cluster as each broker does HA, the daemons
 * given both URLs (url, url1). The live node is killed (SIGKILL) in the middle of fence
 * traffic through host 1 to a VM on host 3:
 * - fencing resumes within 5 s of the kill;
 * - no false success: every `off` reported done finds the VM shut off in libvirt;
 * - no double execution: every request id is executed at most once on the owner.
 *
 * Artemis: shared-store primary/backup (the backup takes the journal's lock when the primary
 * dies). ActiveMQ Classic: shared-store master/slave (KahaDB lock). RabbitMQ 3.x: what its
 * AMQP 1.0 plugin works with, a two-node cluster whose virtfence queues are mirrored (classic
 * mirrored queues, policy ha-mode all; the plugin declares classic queues only).
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brokerAvailable, startBroker, type BrokerHandle } from '../../src/harness/brokers.js';
import { CLUSTER_USER, SimCluster, sleep } from '../helpers/cluster.js';
import { DomainState } from '../../src/protocol/constants.js';
import { toText } from '../../src/util/errors.js';

jest.setTimeout(180_000);

const VM = {
  a1: { name: 'vm-a1', uuid: '6a000000-0000-4000-8000-000000000001', running: true },
  c1: { name: 'vm-c1', uuid: '6c000000-0000-4000-8000-000000000001', running: true },
};

interface Pair {
  live: BrokerHandle;
  standby: BrokerHandle;
  shared: string;
}

type HaKind = 'artemis' | 'activemq' | 'rabbitmq';

async function startRabbitPair(ports: [number, number]): Promise<Pair> {
  const cookie = 'VIRTFENCEFAILOVERTESTCOOKIE';
  const nodes = ['rabbit@localhost', 'rabbit2@localhost'];
  const extraConfig = [
    'cluster_formation.peer_discovery_backend = classic_config',
    ...nodes.map((n, i) => `cluster_formation.classic_config.nodes.${i + 1} = ${n}`),
  ].join('\n');
  const node = (i: number) =>
    startBroker('rabbitmq', {
      port: ports[i] as number,
      distPort: (ports[i] as number) + 20000,
      epmdPort: 4391,
      rabbit: { nodeName: nodes[i], cookie, extraConfig },
    });
  const live = await node(0);
  const standby = await node(1);
  const status = await live.ctl!(['cluster_status']);
  if (!status.includes('rabbit2@localhost')) throw new Error(`no cluster formed:\n${status}`);
  // One policy per queue applies: the bundled one's keys, plus mirroring to every node.
  await live.ctl!([
    'set_policy',
    '--priority',
    '20',
    '--apply-to',
    'queues',
    'virtfence-ha',
    '^virtfence\\.',
    JSON.stringify({
      expires: 600000,
      'message-ttl': 60000,
      'ha-mode': 'all',
      'ha-sync-mode': 'automatic',
      'ha-promote-on-failure': 'always',
      'ha-promote-on-shutdown': 'always',
    }),
  ]);
  return { live, standby, shared: mkdtempSync(join(tmpdir(), 'virtfence-rabbit-pair-')) };
}

async function startPair(kind: HaKind, ports: [number, number]): Promise<Pair> {
  if (kind === 'rabbitmq') return startRabbitPair(ports);
  const shared = mkdtempSync(join(tmpdir(), `virtfence-${kind}-shared-`));
  const common: Record<string, string> =
    kind === 'artemis' ? { ARTEMIS_SHARED: shared } : { ACTIVEMQ_SHARED: join(shared, 'kahadb') };
  const standbyRole: Record<string, string> =
    kind === 'artemis' ? { ARTEMIS_HA: 'backup' } : { ACTIVEMQ_SLAVE: '1' };
  const live = await startBroker(kind, {
    port: ports[0],
    users: [CLUSTER_USER],
    env: kind === 'artemis' ? { ...common, ARTEMIS_HA: 'primary' } : common,
  });
  const standby = await startBroker(kind, {
    port: ports[1],
    users: [CLUSTER_USER],
    env: { ...common, ...standbyRole },
  });
  return { live, standby, shared };
}

function failoverSuite(kind: HaKind, ports: [number, number], basePort: number) {
  const describeIf = brokerAvailable(kind) ? describe : describe.skip;
  describeIf(`failover: ${kind}`, () => {
    let pair: Pair;
    let cluster: SimCluster;

    beforeAll(async () => {
      pair = await startPair(kind, ports);
      cluster = new SimCluster({
        amqpPort: ports[0],
        epmdPort: 0,
        basePort,
        sharedBroker: pair.live,
        failoverUrls: [pair.standby.url],
        heartbeatMs: 200,
        deadAfterMs: 3000,
        hosts: [
          { id: 'h1', vms: [VM.a1] },
          { id: 'h3', vms: [VM.c1] },
        ],
      });
      await cluster.start();
      await cluster.waitListed('h1', ['vm-a1', 'vm-c1']);
    }, 120_000);

    afterAll(async () => {
      await cluster?.dispose();
      await pair?.standby.dispose();
      await pair?.live.dispose();
      if (pair) rmSync(pair.shared, { recursive: true, force: true });
    }, 60_000);

    it('the live node killed mid-traffic: fencing resumes within 5 s, no false or double execution', async () => {
      const state = async () => (await cluster.keeper('h3').lookupByUuid(VM.c1.uuid))?.state;
      const violations: string[] = [];
      const successes: { sent: number; done: number }[] = [];
      let stop = false;
      let i = 0;
      const loop = (async () => {
        while (!stop) {
          const action = i++ % 2 === 0 ? 'off' : 'on';
          const sent = Date.now();
          const r = await cluster.xvm('h1', ['-o', action, '-H', 'vm-c1'], { timeout: 3 });
          if (r.code === 0) {
            successes.push({ sent, done: Date.now() });
            if (action === 'off' && (await state()) !== DomainState.SHUTOFF)
              violations.push(`off #${i} reported done, VM state ${await state()}`);
          } else if (r.code !== 1) {
            violations.push(`${action} #${i}: exit ${r.code}`);
          }
        }
      })();
      await sleep(1500);
      const before = successes.length;
      expect(before).toBeGreaterThan(0);
      const killedAt = Date.now();
      await pair.live.kill();
      const deadline = killedAt + 20_000;
      // the first request sent after the kill that succeeded
      const resumed = () => successes.find((s) => s.sent > killedAt);
      while (!resumed() && Date.now() < deadline) await sleep(50);
      const resumedAfter = (resumed()?.done ?? Infinity) - killedAt;
      await sleep(1500);
      stop = true;
      await loop;
      console.log(`${kind}: fencing resumed ${resumedAfter} ms after the live node was killed`);
      if (process.env.FAILOVER_DEBUG)
        console.log(
          cluster
            .host('h1')
            .daemon!.logs.filter((e) => Date.parse(String(e.time)) > killedAt - 200)
            .map(
              (e) =>
                `${toText(e.time).slice(11)} ${e.event} ${toText(e.reason)} ${toText(e.result)} ${toText(e.target)}`,
            )
            .join('\n'),
        );
      expect(violations).toEqual([]);
      expect(resumedAfter).toBeLessThanOrEqual(5000);
      const executed = new Map<string, number>();
      for (const e of cluster.host('h3').daemon!.logs)
        if (e.event === 'execute')
          executed.set(String(e.request), (executed.get(String(e.request)) ?? 0) + 1);
      expect([...executed.entries()].filter(([, n]) => n > 1)).toEqual([]);
      expect(executed.size).toBeGreaterThan(0);
    });
  });
}

failoverSuite('artemis', [5821, 5822], 12641);
failoverSuite('activemq', [5823, 5824], 12651);
failoverSuite('rabbitmq', [5825, 5826], 12661);
