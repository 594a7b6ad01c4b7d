/**
 * A guest without networking on host 1 fences a VM on host 3 through its serial port: the real
 * /usr/sbin/fence_virt opens a pty that socat joins to the guest's unix socket (QEMU's side);
 * host 1's fence_virtd serves it with its serial listener and routes the request through
 * RabbitMQ to host 3, which executes it.
 */
import { jest } from '@jest/globals';
import { join } from 'node:path';
import { C_VIRT, runAgent, tempDir, type TempDir } from '../helpers/daemon.js';
import { SimCluster, eventually } from '../helpers/cluster.js';
import { PtyRelay } from '../helpers/guest-relays.js';
import { DomainState } from '../../src/protocol/constants.js';

jest.setTimeout(120_000);

const GUEST = { name: 'guest-1', uuid: '5e000000-0000-4000-8000-000000000001', running: true };
const TARGET = { name: 'db-3', uuid: '5e000000-0000-4000-8000-000000000003', running: true };
const OTHER = { name: 'web-2', uuid: '5e000000-0000-4000-8000-000000000002', running: true };

describe('cross-host fencing through a serial port (3 hosts, RabbitMQ)', () => {
  let guestDir: TempDir;
  let relay: PtyRelay;
  let cluster: SimCluster;
  let tty: string;

  beforeAll(async () => {
    guestDir = tempDir('vf-guest-');
    const socket = join(guestDir.path, 'guest-1.sock');
    tty = join(guestDir.path, 'ttyS1');
    relay = await PtyRelay.start(socket, tty);
    cluster = new SimCluster({
      amqpPort: 5736,
      epmdPort: 4388,
      basePort: 12590,
      hosts: [
        { id: 'h1', vms: [{ ...GUEST, serialPaths: [socket] }] },
        { id: 'h2', vms: [OTHER] },
        { id: 'h3', vms: [TARGET] },
      ],
      extraListenersFor: (index, uri) =>
        index === 0
          ? {
              names: ['serial'],
              blocks: `\tserial {\n\t\turi = "${uri}";\n\t\tpath = "${guestDir.path}";\n\t\tmode = "serial";\n\t}`,
            }
          : undefined,
    });
    await cluster.start();
    await relay.waitConnected();
  });

  afterAll(async () => {
    await cluster?.dispose();
    await relay?.stop();
    guestDir?.remove();
  });

  const virt = (args: string[]) => runAgent(C_VIRT, ['-D', tty, '-t', '10', ...args]);
  const stateOnHost3 = async () => (await cluster.keeper('h3').lookupByUuid(TARGET.uuid))?.state;

  it('announces each host with its listeners', async () => {
    // Announcements go out at start: host 1, started first, hears hosts 2 and 3.
    const h1 = cluster.host('h1').daemon!;
    const h3 = await h1.waitForLog((e) => e.event === 'host-announced' && e.peer === 'h3');
    expect(h3.listeners).toBe('multicast');
  });

  it('lists every host VM through the serial port', async () => {
    const list = await virt(['-o', 'list']);
    expect(list.code).toBe(0);
    for (const vm of [GUEST, OTHER, TARGET]) expect(list.stdout).toContain(vm.uuid);
  });

  it('status, off and on of a VM on host 3, executed on host 3, traced for observers', async () => {
    const observer = SimCluster.collect(await cluster.memberBus('observer'));
    expect(await virt(['-o', 'status', '-n', TARGET.name])).toMatchObject({
      code: 0,
      stdout: 'Status: ON\n',
    });
    expect(await virt(['-o', 'off', '-n', TARGET.name])).toMatchObject({ code: 0 });
    expect(await stateOnHost3()).toBe(DomainState.SHUTOFF);
    expect(await virt(['-o', 'status', '-n', TARGET.name])).toMatchObject({
      code: 2,
      stdout: 'Status: OFF\n',
    });
    expect(await virt(['-o', 'on', '-n', TARGET.uuid])).toMatchObject({ code: 0 });
    expect(await stateOnHost3()).toBe(DomainState.RUNNING);
    const h1 = cluster.host('h1').daemon!;
    const served = h1.logs.filter(
      (e) => e.event === 'request' && e.listener === 'serial' && e.action === 'off',
    );
    expect(served).toHaveLength(1);
    // The serial listener identifies the guest by its domain's UUID; host 3 executed.
    expect(served[0]).toMatchObject({ source: GUEST.uuid, target: TARGET.name, executed_by: 'h3' });
    // Host 1 published what it answered, so `virtfence trace` sees it on any broker.
    const offTrace = () =>
      observer
        .map((d) => d.message)
        .find((m) => m.type === 'fence-trace' && m.body.action === 'off');
    await eventually(() => offTrace() !== undefined, 10_000, 'the fence-trace of the off');
    const traced = offTrace();
    expect(traced).toMatchObject({
      from: 'h1',
      body: {
        listener: 'serial',
        requester: GUEST.uuid,
        target: TARGET.name,
        executedBy: ['h3'],
        code: 0,
      },
    });
  });
});
