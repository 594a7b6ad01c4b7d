/**
 * The `hosts` key on the simulated cluster, scripted: h3 is cut off from the broker before its
 * first heartbeat reaches anyone (seed 319's situation). With the key, h1 answers FAIL
 * not-synced for h3's running VM, never OFF, and ON once h3 is heard; fencing evidence for h3
 * ends the wait. Without the key the VM is answered OFF: the residual risk the README states.
 */
import { RoutedBackend } from '../../src/backends/amqp/routed-backend.js';
import { LifecycleEventType } from '../../src/libvirt/hypervisor.js';
import { DomainState } from '../../src/protocol/constants.js';
import { silentLogger } from '../../src/util/logger.js';
import { SimBroker, SimBusPort } from '../../sim/broker.js';
import { SimHypervisor, SimLocalPort } from '../../sim/hypervisor.js';
import { Rng } from '../../sim/rng.js';
import { Scheduler, T0 } from '../../sim/scheduler.js';
import { Truth } from '../../sim/truth.js';

const VM = { uuid: '5e000000-0000-4000-8000-0000000000bb', name: 'vm-y' };
const HOSTS = ['h1', 'h2', 'h3'];

function cluster(configure: boolean) {
  const scheduler = new Scheduler();
  const rng = new Rng(11);
  const truth = new Truth(() => scheduler.time);
  const broker = new SimBroker(
    scheduler,
    rng,
    { loss: 0, duplicate: 0, slow: 0, slowMs: 0, inventoryLoss: new Map() },
    undefined,
  );
  broker.partition('h3', true);
  const backends = new Map<string, RoutedBackend>();
  for (const id of HOSTS) {
    const hv = new SimHypervisor(id, scheduler, rng.fork(), { slow: 0, slowMs: 0 }, truth);
    if (id === 'h3') {
      hv.define(VM.uuid, VM.name);
      hv.setState(VM.uuid, DomainState.RUNNING, undefined, LifecycleEventType.STARTED);
    }
    const clock = scheduler.clock(`${id}#1`, () => 0);
    const port = new SimBusPort(broker, id, 1, clock.now(), () => clock.now());
    const local = new SimLocalPort(hv, scheduler, `${id}#1`, () => clock.now(), rng.fork());
    const b = new RoutedBackend(local, port, {
      hostId: id,
      heartbeatIntervalMs: 1000,
      deadAfterMs: 5000,
      ...(configure ? { hosts: HOSTS } : {}),
      logger: silentLogger,
      clock,
    });
    backends.set(id, b);
    void b.start();
  }
  return { scheduler, broker, backends };
}

async function status(c: ReturnType<typeof cluster>, host: string) {
  const started = c.scheduler.time;
  let out: { code: number; reason: string; executedBy?: string } | undefined;
  void c.backends
    .get(host)!
    .fence('status', VM.name, {
      id: 't',
      listener: 'multicast',
      source: '10.0.0.1',
      seqno: Math.floor(started % 1e6),
      deadline: started + 5000,
    })
    .then((o) => (out = o));
  await c.scheduler.runUntil(started + 6000);
  return out;
}

test('with hosts, a VM of a host never heard of is not-synced, then ON once it is heard', async () => {
  const c = cluster(true);
  await c.scheduler.runUntil(T0 + 10_000);
  expect(c.backends.get('h1')!.health()).toMatchObject({ serving: false });
  for (const host of ['h1', 'h2'])
    expect(await status(c, host)).toMatchObject({ code: 1, reason: 'not-synced' });
  c.broker.partition('h3', false);
  await c.scheduler.runUntil(c.scheduler.time + 6000);
  expect(await status(c, 'h1')).toMatchObject({ code: 0, executedBy: 'h3' });
});

test('with hosts, fencing evidence for the silent host ends the wait (a fenced host runs nothing)', async () => {
  const c = cluster(true);
  await c.scheduler.runUntil(T0 + 10_000);
  await c.backends.get('h1')!.publishHostFenced('h3', c.scheduler.time, 'test', 'power off');
  await c.scheduler.runUntil(c.scheduler.time + 3000);
  expect(await status(c, 'h1')).toMatchObject({ code: 2, reason: 'unknown-vm' });
});

test('without hosts (residual risk): the running VM is answered OFF', async () => {
  const c = cluster(false);
  await c.scheduler.runUntil(T0 + 10_000);
  expect(await status(c, 'h1')).toMatchObject({ code: 2, reason: 'unknown-vm' });
});
