/**
 * fence_xvm from a real QEMU guest on a network: the guest's virtio NIC sits on a bridge in host
 * A's network namespace; host B lives in another namespace, joined to A through a bridge of the
 * test's own namespace. The guest's real C fence_xvm multicasts one request; both hosts' daemons
 * (same group and port) receive it and connect back into the guest over TCP; host B, which runs
 * the target (a real QEMU guest), destroys it exactly once.
 *
 *   test namespace: bridge vfq-br 10.232.0.1 (+ a relay to the broker on 127.0.0.1)
 *   vfq-a: bridge br-a 10.232.0.11 = veth to vfq-br + the guest's tap; guest 10.232.0.50
 *   vfq-b: eth0 10.232.0.12 (veth to vfq-br)
 */
import { jest } from '@jest/globals';
import { DomainState } from '../../src/protocol/constants.js';
import { QemuCluster } from '../helpers/qemu-cluster.js';
import { XVM_KEY, sleep } from '../helpers/cluster.js';
import { ip, tcpRelay, tryIp } from '../../tools/harness/netns.js';

jest.setTimeout(240_000);

const BRIDGE = 'vfq-br';
const NS_A = 'vfq-a';
const NS_B = 'vfq-b';
const AMQP_PORT = 5742;
const RELAY_PORT = 5743;
const MCAST_PORT = 12640;
const GUEST = { name: 'app-a', uuid: '9a000000-0000-4000-8000-000000000001' };
const TARGET = { name: 'db-b', uuid: '9a000000-0000-4000-8000-000000000002' };

function teardownNetwork(): void {
  tryIp('link', 'del', 'vfq-va');
  tryIp('link', 'del', 'vfq-vb');
  tryIp('netns', 'del', NS_A);
  tryIp('netns', 'del', NS_B);
  tryIp('link', 'del', BRIDGE);
}

function setupNetwork(): void {
  teardownNetwork();
  ip('link', 'add', BRIDGE, 'type', 'bridge', 'mcast_snooping', '0');
  ip('addr', 'add', '10.232.0.1/24', 'dev', BRIDGE);
  ip('link', 'set', BRIDGE, 'up');
  for (const ns of [NS_A, NS_B]) ip('netns', 'add', ns);
  // Host A: its uplink and the guest's tap on bridge br-a, the host's address on the bridge.
  ip('link', 'add', 'vfq-va', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS_A);
  ip('-n', NS_A, 'link', 'add', 'br-a', 'type', 'bridge', 'mcast_snooping', '0');
  ip('-n', NS_A, 'link', 'set', 'eth0', 'master', 'br-a');
  ip('-n', NS_A, 'addr', 'add', '10.232.0.11/24', 'dev', 'br-a');
  // Host B: one interface.
  ip('link', 'add', 'vfq-vb', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS_B);
  ip('-n', NS_B, 'addr', 'add', '10.232.0.12/24', 'dev', 'eth0');
  for (const outer of ['vfq-va', 'vfq-vb']) {
    ip('link', 'set', outer, 'master', BRIDGE);
    ip('link', 'set', outer, 'up');
  }
  for (const [ns, dev] of [
    [NS_A, 'br-a'],
    [NS_B, 'eth0'],
  ] as const) {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    if (ns === NS_A) ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', dev, 'up');
    ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', dev);
  }
}

describe('fence_xvm in a QEMU guest on a bridge, two hosts in their own namespaces', () => {
  let relay: { stop(): Promise<void> } | undefined;
  const q = new QemuCluster({
    amqpPort: AMQP_PORT,
    epmdPort: 4391,
    basePort: MCAST_PORT,
    portFor: () => MCAST_PORT,
    daemonBrokerUrl: `amqp://10.232.0.1:${RELAY_PORT}`,
    hosts: [
      {
        id: 'ha',
        netns: NS_A,
        guests: [
          {
            ...GUEST,
            nic: { bridge: 'br-a', mac: '52:54:00:9a:00:01', ip: '10.232.0.50/24' },
          },
        ],
      },
      { id: 'hb', netns: NS_B, guests: [TARGET] },
    ],
  });

  beforeAll(async () => {
    setupNetwork();
    relay = tcpRelay('10.232.0.1', RELAY_PORT, AMQP_PORT);
    await q.start();
    const guest = q.guest(GUEST.name);
    const key = await guest.run(
      `printf %s '${XVM_KEY.toString('latin1')}' > /etc/cluster/fence_xvm.key`,
    );
    expect(key.code).toBe(0);
  });

  afterAll(async () => {
    await q.dispose();
    await relay?.stop();
    teardownNetwork();
  });

  const xvm = (args: string) =>
    q
      .guest(GUEST.name)
      .run(`fence_xvm -p ${MCAST_PORT} -k /etc/cluster/fence_xvm.key -t 20 -r 10 ${args}`);

  function received(host: string, action: string, from: number): boolean {
    return q.cluster
      .host(host)
      .daemon!.logs.slice(from)
      .some(
        (e) =>
          e.target === TARGET.name &&
          (e.event === 'callback-failed' || (e.event === 'request' && e.action === action)),
      );
  }

  it('the guest has one NIC, on the bridge', async () => {
    const r = await q.guest(GUEST.name).run('ls /sys/class/net; ip -4 -o addr show eth0');
    expect(r.code).toBe(0);
    expect(r.output).toContain('eth0');
    expect(r.output).toContain('10.232.0.50/24');
  });

  it('one multicast off reaches both hosts; host B destroys its real guest exactly once', async () => {
    const hb = q.host('hb');
    expect(hb.qemuPid(TARGET.name)).toBeDefined();
    const marks = {
      ha: q.cluster.host('ha').daemon!.logs.length,
      hb: q.cluster.host('hb').daemon!.logs.length,
    };
    expect(await xvm(`-o status -H ${TARGET.name}`)).toMatchObject({ code: 0 });
    const r = await xvm(`-o off -H ${TARGET.name}`);
    expect(r).toEqual({ code: 0, output: '' });
    expect((await hb.keeper?.lookupByUuid(TARGET.uuid))?.state).toBe(DomainState.SHUTOFF);
    expect(hb.qemuPid(TARGET.name)).toBeUndefined();
    await sleep(1000);
    expect(received('ha', 'off', marks.ha)).toBe(true);
    expect(received('hb', 'off', marks.hb)).toBe(true);
    expect(q.cluster.destroys('hb', TARGET.uuid)).toBe(1);
    const executions = q.cluster
      .host('hb')
      .daemon!.logs.filter(
        (e) => e.event === 'execute' && e.target === TARGET.name && e.action === 'off',
      );
    expect(executions).toHaveLength(1);
    // fence_xvm takes the first callback only: one daemon served it, with the guest as source.
    const served = (['ha', 'hb'] as const).flatMap((id) =>
      q.cluster
        .host(id)
        .daemon!.logs.slice(marks[id])
        .filter((e) => e.event === 'request' && e.action === 'off'),
    );
    expect(served).toHaveLength(1);
    expect(served[0]).toMatchObject({
      source: '10.232.0.50',
      target: TARGET.name,
      result: 'success',
    });
    expect(await xvm(`-o status -H ${TARGET.name}`)).toMatchObject({ code: 2 });
  });
});
