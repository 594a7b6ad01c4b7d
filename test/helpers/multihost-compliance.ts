/**
 * The multi-host fencing suite, run once per broker: three simulated hypervisors (a private
 * libvirtd each), our fence_virtd per host with `backend = "amqp"` and the broker's profile,
 * and the real /usr/sbin/fence_xvm aimed at host 1 only.
 *
 * - list through host 1 shows every host's VMs;
 * - status, off, on, reboot of VMs on hosts 2 and 3, executed there (libvirt's state checked);
 * - one request reaching the owner from two origins executes once;
 * - the owner's daemon killed: its VM is never reported off (owner-dead), it keeps running;
 * - the broker restarted: routing comes back, and fencing works again.
 */
import { SimCluster, eventually, sleep } from './cluster.js';
import type { BrokerFixture } from './broker-compliance.js';
import { DomainState } from '../../src/protocol/constants.js';
import { toText } from '../../src/util/errors.js';
import type { Message } from '../../src/messages/schemas.js';

const VM = {
  a1: { name: 'vm-a1', uuid: '5a000000-0000-4000-8000-000000000001', running: true },
  b1: { name: 'vm-b1', uuid: '5b000000-0000-4000-8000-000000000001', running: true },
  c1: { name: 'vm-c1', uuid: '5c000000-0000-4000-8000-000000000001', running: true },
  c2: { name: 'vm-c2', uuid: '5c000000-0000-4000-8000-000000000002', running: false },
};

export function multihostCompliance(fixture: BrokerFixture, options: { basePort: number }): void {
  describe(`multi-host fencing over ${fixture.kind}`, () => {
    let cluster: SimCluster;

    async function stateOn(host: string, uuid: string): Promise<number | undefined> {
      return (await cluster.keeper(host).lookupByUuid(uuid))?.state;
    }

    beforeAll(async () => {
      const started = Date.now();
      cluster = new SimCluster({
        amqpPort: fixture.broker().port,
        epmdPort: 0,
        basePort: options.basePort,
        sharedBroker: fixture.broker(),
        heartbeatMs: 200,
        deadAfterMs: 1500,
        hosts: [
          { id: 'h1', vms: [VM.a1] },
          { id: 'h2', vms: [VM.b1] },
          { id: 'h3', vms: [VM.c1, VM.c2] },
        ],
      });
      await cluster.start();
      await cluster.waitListed('h1', ['vm-a1', 'vm-b1', 'vm-c1', 'vm-c2']);
      console.log(`${fixture.kind}: three hosts synced ${Date.now() - started} ms after start`);
    }, 120_000);

    afterAll(async () => {
      await cluster?.dispose();
    }, 60_000);

    it('list through host 1 shows every host VMs with their state', async () => {
      const r = await cluster.xvm('h1', ['-o', 'list']);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        [
          `${'vm-a1'.padEnd(32)} ${VM.a1.uuid} on`,
          `${'vm-b1'.padEnd(32)} ${VM.b1.uuid} on`,
          `${'vm-c1'.padEnd(32)} ${VM.c1.uuid} on`,
          `${'vm-c2'.padEnd(32)} ${VM.c2.uuid} off`,
          '',
        ].join('\n'),
      );
    });

    it('status, off, on and reboot of a VM on host 3, through host 1', async () => {
      expect(await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-c1'])).toMatchObject({
        code: 0,
        stdout: 'Status: ON\n',
      });
      expect(await cluster.xvm('h1', ['-o', 'status', '-H', VM.c2.uuid])).toMatchObject({
        code: 2,
        stdout: 'Status: OFF\n',
      });
      expect(await cluster.xvm('h1', ['-o', 'off', '-H', 'vm-c1'])).toMatchObject({ code: 0 });
      expect(await stateOn('h3', VM.c1.uuid)).toBe(DomainState.SHUTOFF);
      // destroys are counted from libvirt's lifecycle events, which may trail the answer
      await eventually(() => cluster.destroys('h3', VM.c1.uuid) === 1, 5000, 'the destroy');
      expect(await cluster.xvm('h1', ['-o', 'on', '-H', 'vm-c1'])).toMatchObject({ code: 0 });
      expect(await stateOn('h3', VM.c1.uuid)).toBe(DomainState.RUNNING);
      expect(await cluster.xvm('h1', ['-o', 'reboot', '-H', 'vm-c1'])).toMatchObject({ code: 0 });
      await eventually(
        () => cluster.destroys('h3', VM.c1.uuid) === 2,
        5000,
        "the reboot's destroy",
      );
      expect(cluster.destroys('h3', VM.c1.uuid)).toBe(2);
      expect(await stateOn('h3', VM.c1.uuid)).toBe(DomainState.RUNNING);
    });

    it('one request reaching the owner from two origins is executed once', async () => {
      expect(await stateOn('h2', VM.b1.uuid)).toBe(DomainState.RUNNING);
      const before = cluster.destroys('h2', VM.b1.uuid);
      const origins = [await cluster.memberBus('origin-a'), await cluster.memberBus('origin-b')];
      const replies: Message[] = [];
      for (const o of origins)
        o.onMessage((d) => d.message.type === 'fence-reply' && replies.push(d.message));
      await Promise.all(
        origins.map((o) =>
          o.sendToHost(
            'h2',
            o.create('fence-request', {
              requestId: `off:${fixture.kind.length}4242:vm-b1`,
              originHost: o.hostId,
              listener: 'multicast',
              requester: '127.0.0.1',
              target: 'vm-b1',
              targetKind: 'name',
              action: 'off',
              deadline: Date.now() + 10_000,
              toHost: 'h2',
            }),
          ),
        ),
      );
      await eventually(() => replies.length >= 2, 10_000, 'both replies');
      await eventually(() => cluster.destroys('h2', VM.b1.uuid) >= before + 1, 5000, 'the destroy');
      await sleep(300); // a second execution would show by now
      expect(
        replies.map((m) => (m.type === 'fence-reply' ? [m.body.code, m.body.vmState] : [])),
      ).toEqual([
        [0, DomainState.SHUTOFF],
        [0, DomainState.SHUTOFF],
      ]);
      expect(cluster.destroys('h2', VM.b1.uuid)).toBe(before + 1);
      expect(await cluster.xvm('h1', ['-o', 'on', '-H', 'vm-b1'])).toMatchObject({ code: 0 });
      expect(await stateOn('h2', VM.b1.uuid)).toBe(DomainState.RUNNING);
    });

    it('the owner killed: its VM is never reported off, and stays running', async () => {
      await cluster.host('h2').daemon?.stop('SIGKILL');
      await sleep(2000); // dead_after 1500 ms
      const off = await cluster.xvm('h1', ['-o', 'off', '-H', 'vm-b1'], { timeout: 5 });
      expect(off.code).toBe(1);
      const status = await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-b1'], { timeout: 5 });
      expect(status.code).not.toBe(2);
      expect(status.code).not.toBe(0);
      expect(await stateOn('h2', VM.b1.uuid)).toBe(DomainState.RUNNING);
      const h1 = cluster.host('h1').daemon!;
      expect(
        h1.logs.some(
          (e) => e.event === 'fence' && e.target === 'vm-b1' && e.reason === 'owner-dead',
        ),
      ).toBe(true);
      await cluster.startDaemon('h2');
      expect(await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-b1'])).toMatchObject({ code: 0 });
    });

    it('the broker restarted: routing comes back and fencing works again', async () => {
      await cluster.broker.restart();
      // every host reconnects on its own backoff and resyncs: wait for both owners
      for (const vm of ['vm-c1', 'vm-b1'])
        await eventually(
          async () =>
            (await cluster.xvm('h1', ['-o', 'status', '-H', vm], { timeout: 3 })).code === 0,
          60_000,
          `routing to ${vm} after the broker restart`,
        );
      // A request may still FAIL while the hosts resync (safe); it must never be a false
      // success, and fencing must come back.
      const falseSuccesses: string[] = [];
      await eventually(
        async () => {
          const r = await cluster.xvm('h1', ['-o', 'off', '-H', 'vm-b1'], { timeout: 5 });
          const state = await stateOn('h2', VM.b1.uuid);
          if (r.code === 0 && state !== DomainState.SHUTOFF)
            falseSuccesses.push(`off, state ${state}`);
          return r.code === 0;
        },
        30_000,
        'off of vm-b1 after the broker restart',
      );
      expect(falseSuccesses).toEqual([]);
      expect(await stateOn('h2', VM.b1.uuid)).toBe(DomainState.SHUTOFF);
      expect(await cluster.xvm('h1', ['-o', 'on', '-H', 'vm-b1'])).toMatchObject({ code: 0 });
      expect(await stateOn('h2', VM.b1.uuid)).toBe(DomainState.RUNNING);
      const failed = cluster
        .host('h1')
        .daemon!.logs.filter((e) => e.event === 'fence' && e.target === 'vm-b1' && e.code === 1)
        .map((e) => toText(e.reason));
      if (failed.length)
        console.log(
          `${fixture.kind}: FAIL answers for vm-b1 around the restart: ${failed.join(', ')}`,
        );
    });
  });
}
