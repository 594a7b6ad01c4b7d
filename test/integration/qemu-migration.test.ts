/**
 * Live migration of a real QEMU guest between two simulated hosts, each a private libvirtd (QEMU
 * driver) in its own mount and network namespace, joined by a bridge: `virsh migrate --live`
 * over TCP. Fence requests (the real fence_xvm, multicast on the bridge) before and after the
 * move go to the host that runs the guest; the real MIGRATED events of both libvirtds reach
 * every daemon's routing table.
 *
 *   test namespace: bridge vfm-br 10.233.0.1 (fence_xvm, relay to the broker on 127.0.0.1)
 *   vfm-a: eth0 10.233.0.11, libvirtd on TCP 16509    vfm-b: eth0 10.233.0.12, the same
 */
import { jest } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LifecycleEventType } from '../../src/libvirt/hypervisor.js';
import { DomainState } from '../../src/protocol/constants.js';
import { QemuCluster } from '../helpers/qemu-cluster.js';
import { QemuGuest, type QemuHost } from '../helpers/qemu.js';
import { SimCluster, eventually, type DaemonProcess } from '../helpers/cluster.js';
import { C_XVM, runAgent } from '../helpers/daemon.js';
import { bridgedNamespaces, tcpRelay } from '../../tools/harness/netns.js';

jest.setTimeout(240_000);

const BRIDGE = 'vfm-br';
const NS = ['vfm-a', 'vfm-b'] as const;
const ADDR = ['10.233.0.11', '10.233.0.12'] as const;
const AMQP_PORT = 5744;
const RELAY_PORT = 5745;
const MCAST_PORT = 12650;
const LIBVIRT_TCP = 16509;
const VM = { name: 'mig-1', uuid: '9b000000-0000-4000-8000-000000000001' };

describe('live migration of a real QEMU guest between two hosts', () => {
  let network: { teardown(): void } | undefined;
  let relay: { stop(): Promise<void> } | undefined;
  const q = new QemuCluster({
    amqpPort: AMQP_PORT,
    epmdPort: 4393,
    basePort: MCAST_PORT,
    portFor: () => MCAST_PORT,
    daemonBrokerUrl: `amqp://10.233.0.1:${RELAY_PORT}`,
    hosts: [
      {
        id: 'ma',
        netns: NS[0],
        listenTcp: { address: ADDR[0], port: LIBVIRT_TCP },
        guests: [VM],
      },
      { id: 'mb', netns: NS[1], listenTcp: { address: ADDR[1], port: LIBVIRT_TCP }, guests: [] },
    ],
  });

  beforeAll(async () => {
    network = bridgedNamespaces(BRIDGE, '10.233.0', NS);
    relay = tcpRelay('10.233.0.1', RELAY_PORT, AMQP_PORT);
    await q.start();
  });

  afterAll(async () => {
    await q.dispose();
    await relay?.stop();
    network?.teardown();
  });

  const xvm = (args: string[]) =>
    runAgent(C_XVM, [
      '-p',
      String(MCAST_PORT),
      '-k',
      q.cluster.xvmKeyFile,
      '-t',
      '20',
      '-r',
      '10',
      ...args,
    ]);

  function routes(d: DaemonProcess, from: number, action: string) {
    return d.logs
      .slice(from)
      .filter((e) => e.event === 'route' && e.target === VM.name && e.action === action);
  }

  let observer: ReturnType<typeof SimCluster.collect>;
  const events = (from = 0) =>
    observer
      .slice(from)
      .flatMap(({ message: m }) =>
        m.type === 'vm-event' && m.body.uuid === VM.uuid
          ? [`${m.from}:${m.body.event}/${m.body.detail}`]
          : [],
      );

  /**
   * `virsh migrate --live` from one host to the other, bandwidth-limited (32 MiB/s) so that the
   * guest runs on both hosts for a few seconds. The console socket and log move to the
   * destination's directory (the same paths would collide). Resolves with the time taken.
   */
  async function migrate(from: QemuHost, to: QemuHost, toAddress: string): Promise<number> {
    const xml = (await from.virsh('dumpxml', '--migratable', VM.name))
      .split(from.guestDir)
      .join(to.guestDir);
    const xmlFile = join(to.dir, `${VM.name}.xml`);
    writeFileSync(xmlFile, xml);
    const started = Date.now();
    await from.virsh(
      'migrate',
      '--live',
      '--persistent',
      '--undefinesource',
      '--bandwidth',
      '32',
      '--xml',
      xmlFile,
      VM.name,
      `qemu+tcp://${toAddress}:${LIBVIRT_TCP}/system`,
      `tcp://${toAddress}`,
    );
    return Date.now() - started;
  }

  it('status before, migrate --live over TCP, status after: each goes to the owner', async () => {
    observer = SimCluster.collect(await q.cluster.memberBus('observer'));
    const da = q.cluster.host('ma').daemon!;
    const db = q.cluster.host('mb').daemon!;
    let marks = [da.logs.length, db.logs.length];
    expect(await xvm(['-o', 'status', '-H', VM.name])).toMatchObject({ code: 0 });
    for (const [i, d] of [da, db].entries())
      expect(routes(d, marks[i]!, 'status').map((e) => e.hosts)).not.toContain('mb');

    const ha = q.host('ma');
    const hb = q.host('mb');
    const migrationDone = migrate(ha, hb, ADDR[1]).catch((e: Error) => e);

    // During: host B's STARTED/MIGRATED is in, host A's STOPPED/MIGRATED not yet: the request
    // goes to both hosts that run the guest.
    await eventually(
      () => events().includes(`mb:${LifecycleEventType.STARTED}/1`),
      60_000,
      'the incoming guest',
    );
    const moving = !events().includes(`ma:${LifecycleEventType.STOPPED}/3`);
    marks = [da.logs.length, db.logs.length];
    expect(await xvm(['-o', 'status', '-H', VM.name])).toMatchObject({ code: 0 });
    const during = [da, db].flatMap((d, i) => routes(d, marks[i]!, 'status'));
    console.log(
      `status during the migration (still moving: ${moving}): routes ${during.map((r) => String(r.hosts)).join(' ')}`,
    );
    expect(moving).toBe(true);
    expect(during.length).toBeGreaterThan(0);
    for (const r of during) expect(String(r.hosts).split(',').sort()).toEqual(['ma', 'mb']);

    const migrateMs = await migrationDone;
    if (migrateMs instanceof Error) throw migrateMs;
    console.log(`virsh migrate --live: ${migrateMs} ms`);
    expect((await hb.keeper?.lookupByUuid(VM.uuid))?.state).toBe(DomainState.RUNNING);
    expect(ha.qemuPid(VM.name)).toBeUndefined();
    expect(hb.qemuPid(VM.name)).toBeDefined();

    // The real MIGRATED events of both libvirtds, as published to every daemon.
    await eventually(
      () =>
        events().includes(`mb:${LifecycleEventType.RESUMED}/1`) &&
        events().includes(`ma:${LifecycleEventType.STOPPED}/3`),
      10_000,
      'the MIGRATED events',
    );
    console.log(`vm events: ${events().join(' ')}`);

    marks = [da.logs.length, db.logs.length];
    expect(await xvm(['-o', 'status', '-H', VM.name])).toMatchObject({ code: 0 });
    for (const [i, d] of [da, db].entries())
      for (const r of routes(d, marks[i]!, 'status')) expect(r.hosts).toBe('mb');

    // The guest kept running: its command loop answers on host B, behind its new console socket.
    const moved = new QemuGuest(hb, VM);
    expect(await moved.run('echo migrated')).toEqual({ code: 0, output: 'migrated\n' });
  });

  it('off while the guest migrates back: both hosts execute it once, it runs nowhere, never a false success', async () => {
    const ha = q.host('ma');
    const hb = q.host('mb');
    const mark = observer.length;
    const destroys = {
      ma: q.cluster.destroys('ma', VM.uuid),
      mb: q.cluster.destroys('mb', VM.uuid),
    };
    const migration = migrate(hb, ha, ADDR[0]).then(
      () => 'completed',
      (e: Error) => e.message,
    );
    await eventually(
      () => events(mark).includes(`ma:${LifecycleEventType.STARTED}/1`),
      60_000,
      'the incoming guest on host A',
    );
    const marks = {
      ma: q.cluster.host('ma').daemon!.logs.length,
      mb: q.cluster.host('mb').daemon!.logs.length,
    };
    const off = await xvm(['-o', 'off', '-H', VM.name]);
    const outcome = await migration;
    console.log(`off during the migration back: exit ${off.code}; migration: ${outcome}`);
    console.log(`vm events: ${events(mark).join(' ')}`);
    const routed = (['ma', 'mb'] as const).flatMap((id) =>
      routes(q.cluster.host(id).daemon!, marks[id], 'off'),
    );
    expect(routed.length).toBeGreaterThan(0);
    for (const r of routed) expect(String(r.hosts).split(',').sort()).toEqual(['ma', 'mb']);
    // Known off everywhere: no QEMU process, no running domain on either host.
    for (const host of [ha, hb]) {
      expect(host.qemuPid(VM.name)).toBeUndefined();
      const state = (await host.keeper?.lookupByUuid(VM.uuid))?.state;
      expect(state === undefined || state === DomainState.SHUTOFF).toBe(true);
    }
    expect(outcome).not.toBe('completed');
    const executed = (['ma', 'mb'] as const).map((id) =>
      q.cluster
        .host(id)
        .daemon!.logs.slice(marks[id])
        .filter((e) => e.event === 'execute' && e.action === 'off'),
    );
    // Each host ran the off once (one request id); host B destroyed its copy (shut off, or gone
    // when the failed migration had already undefined it).
    expect(executed.map((list) => list.map((e) => e.host))).toEqual([['ma'], ['mb']]);
    expect(executed[1]![0]).toMatchObject({ code: 0 });
    expect([DomainState.SHUTOFF, 'gone']).toContain(executed[1]![0]!.state);
    expect(q.cluster.destroys('mb', VM.uuid)).toBe(destroys.mb + 1);
    // Host A's incoming copy is gone either way: destroyed by host A (exit 0), or removed by
    // libvirt when host B's destroy aborted the migration before host A's destroy ran. Then
    // host A answers FAIL (not-found or destroy-failed) and the whole request fails safe (exit 1); the agent's
    // retry, as Pacemaker makes it, finds the VM off.
    const hostA = executed[0]![0]!;
    if (off.code === 0) {
      expect(hostA).toMatchObject({ code: 0, state: 'gone' });
    } else {
      expect(off.code).toBe(1);
      expect(hostA).toMatchObject({ code: 1, state: 'gone' });
      // Gone before host A's lookup, or between its lookup and its destroy.
      expect(['not-found', 'destroy-failed']).toContain(hostA.reason);
      expect(await xvm(['-o', 'off', '-H', VM.name])).toMatchObject({ code: 0 });
    }
    expect(await xvm(['-o', 'status', '-H', VM.name])).toMatchObject({ code: 2 });
  });
});
