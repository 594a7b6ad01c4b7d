/**
 * Issue items 9.5 and 9.4 on the simulated cluster, scripted: one host's inventories are all
 * lost, so another host must answer FAIL not-synced for that host's VMs, never OFF; and a
 * request to a host that dies fails with owner-dead once it is declared dead, not at its
 * deadline.
 */
import { RoutedBackend } from '../../src/backends/amqp/routed-backend.js';
import { LifecycleEventType } from '../../src/libvirt/hypervisor.js';
import { DomainState } from '../../src/protocol/constants.js';
import { silentLogger } from '../../src/util/logger.js';
import { SimBroker, SimBusPort } from '../../tools/sim/broker.js';
import { SimHypervisor, SimLocalPort } from '../../tools/sim/hypervisor.js';
import { Rng } from '../../tools/sim/rng.js';
import { Scheduler, T0 } from '../../tools/sim/scheduler.js';
import { Truth } from '../../tools/sim/truth.js';

const VM = { uuid: '5e000000-0000-4000-8000-0000000000aa', name: 'vm-x' };

function cluster(lostInventoriesOf: string | undefined) {
  const scheduler = new Scheduler();
  const rng = new Rng(7);
  const truth = new Truth(() => scheduler.time);
  const broker = new SimBroker(
    scheduler,
    rng,
    { loss: 0, duplicate: 0, slow: 0, slowMs: 0, inventoryLoss: new Map() },
    undefined,
  );
  if (lostInventoriesOf) broker.faults.inventoryLoss.set(lostInventoriesOf, 1);
  const backends = new Map<string, RoutedBackend>();
  const ports = new Map<string, SimBusPort>();
  for (const id of ['h1', 'h2', 'h3']) {
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
      logger: silentLogger,
      clock,
    });
    backends.set(id, b);
    ports.set(id, port);
    void b.start();
  }
  return { scheduler, backends, ports };
}

async function ask(
  c: ReturnType<typeof cluster>,
  host: string,
  action: 'status' | 'off',
  timeoutMs = 10_000,
) {
  const started = c.scheduler.time;
  const p = c.backends.get(host)!.fence(action, VM.name, {
    id: 't',
    listener: 'multicast',
    source: '10.0.0.1',
    seqno: Math.floor(started % 1e6),
    deadline: started + timeoutMs,
  });
  let out: { code: number; reason: string } | undefined;
  void p.then((o) => (out = o));
  await c.scheduler.runUntil(started + timeoutMs + 1000);
  return { ...out!, ms: 0 };
}

test('with one host inventory lost, its running VM is FAIL not-synced, never OFF', async () => {
  const c = cluster('h3');
  await c.scheduler.runUntil(T0 + 10_000);
  for (const host of ['h1', 'h2']) {
    expect(await ask(c, host, 'status')).toMatchObject({ code: 1, reason: 'not-synced' });
  }
  // The control: the same cluster with the inventory delivered answers ON.
  const ok = cluster(undefined);
  await ok.scheduler.runUntil(T0 + 10_000);
  expect(await ask(ok, 'h1', 'status')).toMatchObject({ code: 0, executedBy: 'h3' });
});

test('a request to an owner that dies fails owner-dead once it is dead, not at its deadline', async () => {
  const c = cluster(undefined);
  await c.scheduler.runUntil(T0 + 10_000);
  // h3 dies before the request reaches it.
  c.scheduler.kill('h3#1');
  c.ports.get('h3')!.crash();
  const started = c.scheduler.time;
  let answeredAt: number | undefined;
  let out: { code: number; reason: string } | undefined;
  void c.backends
    .get('h1')!
    .fence('off', VM.name, {
      id: 't',
      listener: 'multicast',
      source: '10.0.0.1',
      seqno: 42,
      deadline: started + 30_000,
    })
    .then((o) => {
      out = o;
      answeredAt = c.scheduler.time;
    });
  await c.scheduler.runUntil(started + 31_000);
  expect(out).toMatchObject({ code: 1, reason: 'owner-dead' });
  expect(answeredAt! - started).toBeLessThanOrEqual(6_000);
});
