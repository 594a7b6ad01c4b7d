/**
 * Exactly-once across hosts: two hosts in separate network namespaces on one bridge, both
 * daemons bound to the SAME multicast group:port, and the real fence_xvm in a third namespace.
 * Both daemons receive every request; the VM's owner executes it once (destroy events are
 * counted on its libvirtd) and both answer.
 *
 * Topology: bridge vfr-br (10.231.0.1) in the root namespace; vfr-na (10.231.0.11) and
 * vfr-nb (10.231.0.12) run the daemons; vfr-nc (10.231.0.13) runs fence_xvm. The broker
 * listens on 127.0.0.1 in the root namespace; a socat relay by pid exposes it on the bridge.
 */
import { jest } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { SimCluster, sleep } from '../helpers/cluster.js';
import { DomainState } from '../../src/protocol/constants.js';
import { bridgedNamespaces, tcpRelay } from '../../tools/harness/netns.js';

jest.setTimeout(180_000);

const VM = { b1: { name: 'vm-nb1', uuid: '2b000000-0000-4000-8000-000000000001', running: true } };
const NS = ['vfr-na', 'vfr-nb', 'vfr-nc'];
const BRIDGE = 'vfr-br';
const AMQP_PORT = 5724;
const RELAY_PORT = 5725;
const MCAST_PORT = 12570;

function netnsAvailable(): boolean {
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

const describeNetns = netnsAvailable() ? describe : describe.skip;

describeNetns('two hosts in separate network namespaces on one multicast group:port', () => {
  let network: { teardown(): void } | undefined;
  let relay: { stop(): Promise<void> } | undefined;
  const cluster = new SimCluster({
    amqpPort: AMQP_PORT,
    epmdPort: 4382,
    basePort: MCAST_PORT,
    portFor: () => MCAST_PORT,
    heartbeatMs: 200,
    deadAfterMs: 1500,
    // Debug logging: each daemon logs `request-received` for every request it accepts.
    daemonKeysFor: () => 'debug = "1";',
    daemonBrokerUrl: `amqp://10.231.0.1:${RELAY_PORT}`,
    prefixFor: (i) => ['ip', 'netns', 'exec', NS[i] as string],
    hosts: [
      { id: 'na', vms: [] },
      { id: 'nb', vms: [VM.b1] },
    ],
  });
  const client = ['ip', 'netns', 'exec', 'vfr-nc'];

  beforeAll(async () => {
    network = bridgedNamespaces(BRIDGE, '10.231.0', NS);
    relay = tcpRelay('10.231.0.1', RELAY_PORT, AMQP_PORT);
    await cluster.start();
    await cluster.waitListed('na', ['vm-nb1']);
  });

  afterAll(async () => {
    await cluster.dispose();
    await relay?.stop();
    network?.teardown();
  });

  async function xvmFromGuest(args: string[]) {
    return cluster.xvm('na', args, { prefix: client });
  }

  /**
   * Did a daemon receive the request? Both do; only one wins fence_xvm's callback, so the
   * loser's proof of receipt is its debug `request-received` line (read from `from` on).
   */
  function received(host: string, action: string, from: number): boolean {
    const d = cluster.host(host).daemon!;
    return d.logs
      .slice(from)
      .some((e) => e.event === 'request-received' && e.target === 'vm-nb1' && e.op === action);
  }

  function executions(action: string): number {
    const nb = cluster.host('nb').daemon!;
    return nb.logs.filter(
      (e) => e.event === 'execute' && e.target === 'vm-nb1' && e.action === action,
    ).length;
  }

  it('both daemons receive one fence_xvm multicast; the owner executes off exactly once', async () => {
    const stateOf = async () => (await cluster.keeper('nb').lookupByUuid(VM.b1.uuid))?.state;
    expect(await stateOf()).toBe(DomainState.RUNNING);
    const marks = {
      na: cluster.host('na').daemon!.logs.length,
      nb: cluster.host('nb').daemon!.logs.length,
    };

    const r = await xvmFromGuest(['-o', 'off', '-H', 'vm-nb1']);
    expect(r).toMatchObject({ code: 0, stdout: '' });
    expect(await stateOf()).toBe(DomainState.SHUTOFF);
    await sleep(1000);
    expect(received('na', 'off', marks.na)).toBe(true);
    expect(received('nb', 'off', marks.nb)).toBe(true);
    expect(cluster.destroys('nb', VM.b1.uuid)).toBe(1);
    expect(executions('off')).toBe(1);
  });

  it('the same holds for reboot (one destroy, the VM runs again) and on', async () => {
    const marks = {
      na: cluster.host('na').daemon!.logs.length,
      nb: cluster.host('nb').daemon!.logs.length,
    };
    expect(await xvmFromGuest(['-o', 'on', '-H', 'vm-nb1'])).toMatchObject({ code: 0 });
    expect((await cluster.keeper('nb').lookupByUuid(VM.b1.uuid))?.state).toBe(DomainState.RUNNING);
    const before = cluster.destroys('nb', VM.b1.uuid);
    expect(await xvmFromGuest(['-o', 'reboot', '-H', 'vm-nb1'])).toMatchObject({ code: 0 });
    await sleep(1000);
    expect(cluster.destroys('nb', VM.b1.uuid)).toBe(before + 1);
    expect((await cluster.keeper('nb').lookupByUuid(VM.b1.uuid))?.state).toBe(DomainState.RUNNING);
    expect(executions('reboot')).toBe(1);
    expect(received('na', 'reboot', marks.na)).toBe(true);
    expect(received('nb', 'reboot', marks.nb)).toBe(true);
  });
});
