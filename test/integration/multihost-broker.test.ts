/**
 * Broker outages and hostile messages against three hosts running our daemon (backend amqp):
 * - broker stopped with SIGTERM and with SIGKILL in the middle of fence traffic: no success is
 *   ever reported for a VM that is not off, own VMs are still powered off locally, other hosts'
 *   VMs fail fast with `broker-unavailable`, and routing recovers after the broker restarts;
 * - a forged fence request (wrong key) powers nothing off; a replayed valid one does not
 *   execute again.
 */
import { jest } from '@jest/globals';
import { CLUSTER_KEY, SimCluster, eventually, sleep } from '../helpers/cluster.js';
import { DomainState } from '../../src/protocol/constants.js';
import type { FenceRequestMessage, Message } from '../../src/messages/schemas.js';

const VM = {
  a1: { name: 'vm-a1', uuid: '1a000000-0000-4000-8000-000000000001', running: true },
  b1: { name: 'vm-b1', uuid: '1b000000-0000-4000-8000-000000000001', running: true },
  c1: { name: 'vm-c1', uuid: '1c000000-0000-4000-8000-000000000001', running: true },
  c2: { name: 'vm-c2', uuid: '1c000000-0000-4000-8000-000000000002', running: true },
};

jest.setTimeout(240_000);

describe('routed fencing under broker outages and hostile messages', () => {
  const cluster = new SimCluster({
    amqpPort: 5722,
    epmdPort: 4381,
    basePort: 12560,
    heartbeatMs: 200,
    deadAfterMs: 1500,
    hosts: [
      { id: 'h1', vms: [VM.a1] },
      { id: 'h2', vms: [VM.b1] },
      { id: 'h3', vms: [VM.c1, VM.c2] },
    ],
  });

  async function stateOn(host: string, uuid: string): Promise<number | undefined> {
    return (await cluster.keeper(host).lookupByUuid(uuid))?.state;
  }

  async function routedWorks(): Promise<boolean> {
    const r = await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-c1'], { timeout: 5 });
    return r.code === 0 || r.code === 2;
  }

  beforeAll(async () => {
    await cluster.start();
    await cluster.waitListed('h1', ['vm-a1', 'vm-b1', 'vm-c1', 'vm-c2']);
  });
  afterAll(async () => {
    await cluster.dispose();
  });

  /**
   * Alternating off/on of vm-c1 through host 1 while `disrupt` runs. After each answer the real
   * state is read from host 3's libvirtd: a success for off must find the VM off.
   */
  async function trafficDuring(
    disrupt: () => Promise<void>,
  ): Promise<{ ok: number; failed: number }> {
    let stop = false;
    let ok = 0;
    let failed = 0;
    const violations: string[] = [];
    const loop = (async () => {
      let i = 0;
      while (!stop) {
        const action = i++ % 2 === 0 ? 'off' : 'on';
        const r = await cluster.xvm('h1', ['-o', action, '-H', 'vm-c1'], { timeout: 4 });
        const state = await stateOn('h3', VM.c1.uuid);
        if (r.code === 0) {
          ok++;
          if (action === 'off' && state !== DomainState.SHUTOFF)
            violations.push(`off reported success, state ${state}`);
        } else {
          failed++;
          expect(r.code).toBe(1);
        }
      }
    })();
    await sleep(700);
    await disrupt();
    await sleep(1500);
    stop = true;
    await loop;
    expect(violations).toEqual([]);
    return { ok, failed };
  }

  it.each<[string, NodeJS.Signals]>([
    ['SIGTERM', 'SIGTERM'],
    ['SIGKILL', 'SIGKILL'],
  ])(
    'broker stopped with %s mid-traffic: no false success, local fencing continues, recovery',
    async (_n, signal) => {
      const counts = await trafficDuring(() => cluster.broker.stop(signal));
      expect(counts.ok).toBeGreaterThan(0);
      expect(counts.failed).toBeGreaterThan(0);

      // Broker down: another host's VM fails fast with broker-unavailable (status too: never "OFF").
      const h1 = cluster.host('h1').daemon!;
      const before = await stateOn('h3', VM.c2.uuid);
      expect(before).toBe(DomainState.RUNNING);
      expect(await cluster.xvm('h1', ['-o', 'off', '-H', 'vm-c2'])).toMatchObject({ code: 1 });
      expect(await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-c2'])).toMatchObject({ code: 1 });
      expect(await stateOn('h3', VM.c2.uuid)).toBe(DomainState.RUNNING);
      expect(
        h1.logs.some(
          (e) => e.event === 'fence' && e.target === 'vm-c2' && e.reason === 'broker-unavailable',
        ),
      ).toBe(true);

      // ... while each host still powers off its own VMs; starting one needs the cluster's
      // view (it may run on a host this one cannot hear), so `on` waits for the broker.
      expect(await cluster.xvm('h3', ['-o', 'off', '-H', 'vm-c2'])).toMatchObject({ code: 0 });
      expect(await stateOn('h3', VM.c2.uuid)).toBe(DomainState.SHUTOFF);
      expect(await cluster.xvm('h3', ['-o', 'on', '-H', 'vm-c2'])).toMatchObject({ code: 1 });
      expect(await stateOn('h3', VM.c2.uuid)).toBe(DomainState.SHUTOFF);

      await cluster.broker.restart();
      await eventually(routedWorks, 30_000, 'routing after broker restart');
      await eventually(
        async () => (await cluster.xvm('h1', ['-o', 'on', '-H', 'vm-c2'])).code === 0,
        30_000,
        'on once every host has resynced',
      );
      expect(await stateOn('h3', VM.c2.uuid)).toBe(DomainState.RUNNING);
      expect(await cluster.xvm('h1', ['-o', 'off', '-H', 'vm-c2'])).toMatchObject({ code: 0 });
      expect(await stateOn('h3', VM.c2.uuid)).toBe(DomainState.SHUTOFF);
      expect(await cluster.xvm('h1', ['-o', 'on', '-H', 'vm-c2'])).toMatchObject({ code: 0 });
      expect(await stateOn('h3', VM.c2.uuid)).toBe(DomainState.RUNNING);
    },
  );

  it('a forged fence request (signed with another key) powers nothing off', async () => {
    expect(await stateOn('h2', VM.b1.uuid)).toBe(DomainState.RUNNING);
    const mallory = await cluster.memberBus('mallory', Buffer.from('not-the-cluster-key'));
    const forged = mallory.create('fence-request', {
      requestId: 'off:424242:vm-b1',
      originHost: 'mallory',
      listener: 'multicast',
      requester: '127.0.0.1',
      target: 'vm-b1',
      targetKind: 'name',
      action: 'off',
      deadline: Date.now() + 10_000,
      toHost: 'h2',
    });
    await mallory.sendToHost('h2', forged);
    const h2 = cluster.host('h2').daemon!;
    await h2.waitForLog(
      (e) =>
        e.event === 'amqp-message-dropped' && e.reason === 'bad-signature' && e.id === forged.id,
      10_000,
    );
    await sleep(500);
    expect(await stateOn('h2', VM.b1.uuid)).toBe(DomainState.RUNNING);
    expect(cluster.destroys('h2', VM.b1.uuid)).toBe(0);
    expect(h2.logs.some((e) => e.event === 'execute' && e.target === 'vm-b1')).toBe(false);
  });

  it('a replayed fence request is not executed again', async () => {
    const operator = await cluster.memberBus('operator', CLUSTER_KEY);
    const seen: Message[] = [];
    operator.onMessage((d) => seen.push(d.message));
    const request: FenceRequestMessage = operator.create('fence-request', {
      requestId: 'off:777:vm-b1',
      originHost: 'operator',
      listener: 'multicast',
      requester: '127.0.0.1',
      target: 'vm-b1',
      targetKind: 'name',
      action: 'off',
      deadline: Date.now() + 20_000,
      toHost: 'h2',
    });
    await operator.sendToHost('h2', request);
    await eventually(
      () => seen.some((m) => m.type === 'fence-reply' && m.body.requestId === 'off:777:vm-b1'),
      10_000,
      'reply to the genuine request',
    );
    const reply = seen.find(
      (m) => m.type === 'fence-reply' && m.body.requestId === 'off:777:vm-b1',
    );
    expect(reply?.type === 'fence-reply' && reply.body).toMatchObject({
      code: 0,
      executingHost: 'h2',
      vmState: DomainState.SHUTOFF,
    });
    expect(cluster.destroys('h2', VM.b1.uuid)).toBe(1);

    await cluster.keeper('h2').create(VM.b1.uuid); // somebody powers it back on
    expect(await stateOn('h2', VM.b1.uuid)).toBe(DomainState.RUNNING);
    await operator.sendToHost('h2', request); // the exact same signed message again
    const h2 = cluster.host('h2').daemon!;
    await h2.waitForLog(
      (e) => e.event === 'amqp-message-dropped' && e.reason === 'replay' && e.id === request.id,
      10_000,
    );
    await sleep(500);
    expect(await stateOn('h2', VM.b1.uuid)).toBe(DomainState.RUNNING);
    expect(cluster.destroys('h2', VM.b1.uuid)).toBe(1);
  });

  it('an owner refuses a request past its deadline and a request for a VM it does not run', async () => {
    const operator = await cluster.memberBus('operator2', CLUSTER_KEY);
    const seen: Message[] = [];
    operator.onMessage((d) => seen.push(d.message));
    const base = {
      originHost: 'operator2',
      listener: 'multicast',
      requester: '127.0.0.1',
      targetKind: 'name' as const,
      action: 'off' as const,
      toHost: 'h2',
    };
    // e.g. a request that sat in a queue while the broker was down: never acted upon late
    await operator.sendToHost(
      'h2',
      operator.create('fence-request', {
        ...base,
        requestId: 'off:901:vm-b1',
        target: 'vm-b1',
        deadline: Date.now() - 1,
      }),
    );
    // h2 does not run vm-c1 (h3 does): it must not touch anything and say so
    await operator.sendToHost(
      'h2',
      operator.create('fence-request', {
        ...base,
        requestId: 'off:902:vm-c1',
        target: 'vm-c1',
        deadline: Date.now() + 10_000,
      }),
    );
    const replyTo = (id: string) =>
      seen.find((m) => m.type === 'fence-reply' && m.body.requestId === id);
    await eventually(
      () => replyTo('off:901:vm-b1') !== undefined && replyTo('off:902:vm-c1') !== undefined,
      10_000,
      'both replies',
    );
    expect(replyTo('off:901:vm-b1')).toMatchObject({
      body: { code: 1, reason: 'deadline-passed', executingHost: 'h2' },
    });
    expect(replyTo('off:902:vm-c1')).toMatchObject({
      body: { code: 1, reason: 'not-owner', executingHost: 'h2' },
    });
    expect(await stateOn('h2', VM.b1.uuid)).toBe(DomainState.RUNNING);
    expect(await stateOn('h3', VM.c1.uuid)).not.toBe(undefined);
  });

  it('the same request id arriving from two origin hosts executes once; both get the answer', async () => {
    expect(await stateOn('h2', VM.b1.uuid)).toBe(DomainState.RUNNING);
    const before = cluster.destroys('h2', VM.b1.uuid);
    const origins = [
      await cluster.memberBus('origin-a', CLUSTER_KEY),
      await cluster.memberBus('origin-b', CLUSTER_KEY),
    ];
    const replies: Message[] = [];
    for (const o of origins)
      o.onMessage((d) => d.message.type === 'fence-reply' && replies.push(d.message));
    const send = (o: (typeof origins)[number]) =>
      o.sendToHost(
        'h2',
        o.create('fence-request', {
          requestId: 'off:555:vm-b1',
          originHost: o.hostId,
          listener: 'multicast',
          requester: '127.0.0.1',
          target: 'vm-b1',
          targetKind: 'name',
          action: 'off',
          deadline: Date.now() + 10_000,
          toHost: 'h2',
        }),
      );
    await Promise.all(origins.map(send));
    await eventually(() => replies.length >= 2, 10_000, 'two replies');
    expect(
      replies.map((m) => (m.type === 'fence-reply' ? [m.body.code, m.body.vmState] : [])),
    ).toEqual([
      [0, DomainState.SHUTOFF],
      [0, DomainState.SHUTOFF],
    ]);
    expect(cluster.destroys('h2', VM.b1.uuid)).toBe(before + 1);
    const h2 = cluster.host('h2').daemon!;
    expect(
      h2.logs.filter((e) => e.event === 'execute' && e.request === 'off:555:vm-b1'),
    ).toHaveLength(1);
  });
});
