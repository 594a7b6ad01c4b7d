/**
 * Broker-routed fencing across three simulated hosts: one RabbitMQ, a private libvirtd per
 * host, our fence_virtd per host as a separate process (backend amqp, multicast listener on a
 * port per host), and the real fence_xvm as the guest.
 */
import { jest } from '@jest/globals';
import { SimCluster, eventually, sleep } from '../helpers/cluster.js';
import { moveVm, vmXml } from '../helpers/libvirtd.js';
import { DomainState } from '../../src/protocol/constants.js';

const VM = {
  a1: { name: 'vm-a1', uuid: '0a000000-0000-4000-8000-000000000001', running: true },
  b1: { name: 'vm-b1', uuid: '0b000000-0000-4000-8000-000000000001', running: true },
  mig: { name: 'vm-mig', uuid: '0b000000-0000-4000-8000-0000000000ff', running: true },
  c1: { name: 'vm-c1', uuid: '0c000000-0000-4000-8000-000000000001', running: true },
  c2: { name: 'vm-c2', uuid: '0c000000-0000-4000-8000-000000000002', running: false },
};

jest.setTimeout(180_000);

describe('multi-host routed fencing (3 hosts, RabbitMQ, real fence_xvm)', () => {
  const cluster = new SimCluster({
    amqpPort: 5720,
    epmdPort: 4380,
    basePort: 12550,
    heartbeatMs: 200,
    deadAfterMs: 1500,
    hosts: [
      { id: 'h1', vms: [VM.a1] },
      { id: 'h2', vms: [VM.b1, VM.mig] },
      { id: 'h3', vms: [VM.c1, VM.c2] },
    ],
  });

  async function stateOn(host: string, uuid: string): Promise<number | undefined> {
    return (await cluster.keeper(host).lookupByUuid(uuid))?.state;
  }

  beforeAll(async () => {
    await cluster.start();
    await cluster.waitListed('h1', ['vm-a1', 'vm-b1', 'vm-mig', 'vm-c1', 'vm-c2']);
  });
  afterAll(async () => {
    await cluster.dispose();
  });

  it('list through host 1 shows every host VMs with their state', async () => {
    const r = await cluster.xvm('h1', ['-o', 'list']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        `${'vm-a1'.padEnd(32)} ${VM.a1.uuid} on`,
        `${'vm-b1'.padEnd(32)} ${VM.b1.uuid} on`,
        `${'vm-c1'.padEnd(32)} ${VM.c1.uuid} on`,
        `${'vm-c2'.padEnd(32)} ${VM.c2.uuid} off`,
        `${'vm-mig'.padEnd(32)} ${VM.mig.uuid} on`,
        '',
      ].join('\n'),
    );
  });

  it('fence_xvm aimed at host 1 drives a VM on host 3: status, off, on, reboot', async () => {
    expect(await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-c1'])).toMatchObject({
      code: 0,
      stdout: 'Status: ON\n',
    });
    expect(await cluster.xvm('h1', ['-o', 'status', '-H', VM.c2.uuid])).toMatchObject({
      code: 2,
      stdout: 'Status: OFF\n',
    });

    expect(await cluster.xvm('h1', ['-o', 'off', '-H', 'vm-c1'])).toMatchObject({
      code: 0,
      stdout: '',
    });
    expect(await stateOn('h3', VM.c1.uuid)).toBe(DomainState.SHUTOFF);
    expect(cluster.destroys('h3', VM.c1.uuid)).toBe(1);
    const executed = await cluster
      .host('h1')
      .daemon!.waitForLog((e) => e.event === 'fence' && e.target === 'vm-c1' && e.action === 'off');
    expect(executed).toMatchObject({ code: 0, executed_by: 'h3' });
    expect(await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-c1'])).toMatchObject({
      code: 2,
      stdout: 'Status: OFF\n',
    });

    expect(await cluster.xvm('h1', ['-o', 'on', '-H', 'vm-c1'])).toMatchObject({ code: 0 });
    expect(await stateOn('h3', VM.c1.uuid)).toBe(DomainState.RUNNING);

    expect(await cluster.xvm('h1', ['-o', 'reboot', '-H', VM.c1.uuid])).toMatchObject({ code: 0 });
    expect(cluster.destroys('h3', VM.c1.uuid)).toBe(2);
    expect(await stateOn('h3', VM.c1.uuid)).toBe(DomainState.RUNNING);
  });

  it('an unknown VM gets the libvirt answers (status OFF, off/on/reboot FAIL)', async () => {
    expect(await cluster.xvm('h1', ['-o', 'status', '-H', 'no-such-vm'])).toMatchObject({
      code: 2,
    });
    expect(await cluster.xvm('h1', ['-o', 'off', '-H', 'no-such-vm'])).toMatchObject({
      code: 1,
      stdout: 'Operation failed\n',
    });
    expect(await cluster.xvm('h1', ['-o', 'on', '-H', 'no-such-vm'])).toMatchObject({ code: 1 });
    expect(await cluster.xvm('h1', ['-o', 'reboot', '-H', 'no-such-vm'])).toMatchObject({
      code: 1,
    });
  });

  it('a VM moved from host 2 to host 3 is then fenced on host 3', async () => {
    const before2 = cluster.destroys('h2', VM.mig.uuid);
    await moveVm(cluster.host('h2').sim, cluster.host('h3').sim, VM.mig.uuid);
    expect(cluster.destroys('h2', VM.mig.uuid)).toBeGreaterThanOrEqual(before2); // the move's own destroy
    const movedDestroys2 = cluster.destroys('h2', VM.mig.uuid);
    // host 1 learns the move from the events of hosts 2 and 3
    await eventually(
      async () => (await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-mig'])).code === 0,
      10_000,
      'vm-mig on',
    );
    expect(await cluster.xvm('h1', ['-o', 'off', '-H', 'vm-mig'])).toMatchObject({ code: 0 });
    expect(await stateOn('h3', VM.mig.uuid)).toBe(DomainState.SHUTOFF);
    expect(cluster.destroys('h3', VM.mig.uuid)).toBe(1);
    expect(cluster.destroys('h2', VM.mig.uuid)).toBe(movedDestroys2);
    expect(await stateOn('h2', VM.mig.uuid)).toBeUndefined();
  });

  it('a VM running on two hosts at once (mid-migration, split brain): off goes to both', async () => {
    const dual = { name: 'vm-dual', uuid: '0d000000-0000-4000-8000-000000000001', running: true };
    const xml = vmXml(dual);
    for (const h of ['h2', 'h3']) {
      await cluster.keeper(h).defineXml(xml);
      await cluster.keeper(h).create(dual.uuid);
    }
    const routedToBoth = (): boolean =>
      cluster
        .host('h1')
        .daemon!.logs.some(
          (e) => e.event === 'route' && e.target === 'vm-dual' && e.hosts === 'h2,h3',
        );
    await eventually(
      async () => (await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-dual'])).code === 0,
      10_000,
      'vm-dual known',
    );
    // Each try asks again: a status routed before h3's claim arrived names h2 alone, and
    // only a new request is routed with the newer table.
    await eventually(
      async () => {
        if (routedToBoth()) return true;
        await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-dual']);
        return routedToBoth();
      },
      10_000,
      'both claimants known to h1',
    );
    expect(await cluster.xvm('h1', ['-o', 'off', '-H', 'vm-dual'])).toMatchObject({ code: 0 });
    expect(cluster.destroys('h2', dual.uuid)).toBe(1);
    expect(cluster.destroys('h3', dual.uuid)).toBe(1);
    expect(await stateOn('h2', dual.uuid)).toBe(DomainState.SHUTOFF);
    expect(await stateOn('h3', dual.uuid)).toBe(DomainState.SHUTOFF);
    expect(await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-dual'])).toMatchObject({ code: 2 });
  });

  it('owner dead → FAIL owner-dead; then host-fenced evidence → off succeeds, status OFF; owner back → its truth again', async () => {
    expect(await stateOn('h3', VM.c1.uuid)).toBe(DomainState.RUNNING);
    await cluster.host('h3').daemon!.stop('SIGKILL');
    await sleep(2000); // > dead_after (1.5 s) without heartbeats from h3

    const h1 = cluster.host('h1').daemon!;
    expect(await cluster.xvm('h1', ['-o', 'off', '-H', 'vm-c1'])).toMatchObject({
      code: 1,
      stdout: 'Operation failed\n',
    });
    expect(await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-c1'])).toMatchObject({ code: 1 });
    expect(
      h1.logs.some((e) => e.event === 'fence' && e.target === 'vm-c1' && e.reason === 'owner-dead'),
    ).toBe(true);
    expect(await stateOn('h3', VM.c1.uuid)).toBe(DomainState.RUNNING); // nothing touched it

    // The host cluster fenced h3: an operator publishes signed evidence through the bus.
    const operator = await cluster.memberBus('operator');
    await operator.publish(
      operator.create('host-fenced', {
        host: 'h3',
        fencedAt: Date.now(),
        by: 'operator',
        evidence: 'ipmi power off',
      }),
    );
    await eventually(
      () =>
        h1.logs.some(
          (e) => e.event === 'host-fenced-evidence' && e.peer === 'h3' && e.fenced === true,
        ),
      5000,
      'evidence applied on h1',
    );
    expect(await cluster.xvm('h1', ['-o', 'off', '-H', 'vm-c1'])).toMatchObject({ code: 0 });
    expect(await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-c1'])).toMatchObject({
      code: 2,
      stdout: 'Status: OFF\n',
    });
    expect(await cluster.xvm('h1', ['-o', 'on', '-H', 'vm-c1'])).toMatchObject({ code: 1 });
    expect(
      h1.logs.some(
        (e) => e.event === 'fence' && e.target === 'vm-c1' && e.reason === 'owner-fenced',
      ),
    ).toBe(true);

    // h3 comes back: its heartbeat is newer than the evidence, its inventory rules again.
    await cluster.startDaemon('h3');
    await eventually(
      async () => (await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-c1'])).code === 0,
      10_000,
      'vm-c1 ON again',
    );
  });
});
