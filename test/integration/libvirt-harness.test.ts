/** The private-libvirtd harness: start, seed with fixed UUIDs, devices in live XML, move, kill, restart, stop. */
import { existsSync } from 'node:fs';
import { DomainState } from '../../src/protocol/constants.js';
import {
  DEFAULT_TEST_DOMAIN,
  moveVm,
  seedHost,
  startLibvirtd,
  virsh,
  type SimHost,
} from '../helpers/libvirtd.js';
import { openHypervisor } from '../../src/libvirt/native.js';

const VM_A = { name: 'vm-a', uuid: '11111111-0000-4000-8000-00000000000a', running: true };
const VM_B = { name: 'vm-b', uuid: '11111111-0000-4000-8000-00000000000b', running: false };
const VM_P = {
  name: 'vm-p',
  uuid: '11111111-0000-4000-8000-00000000000c',
  running: true,
  paused: true,
};

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('private libvirtd harness', () => {
  let h1: SimHost;
  let h2: SimHost;

  beforeAll(async () => {
    h1 = await startLibvirtd('h1');
    h2 = await startLibvirtd('h2');
  });

  afterAll(async () => {
    await h1?.stop();
    await h2?.stop();
  });

  it('starts with the default test domain and seeds fixed UUIDs in the requested states', async () => {
    expect(pidAlive(h1.pid)).toBe(true);
    const fresh = await openHypervisor(h1.uri);
    expect((await fresh.listDomains()).map((d) => d.uuid)).toEqual([DEFAULT_TEST_DOMAIN.uuid]);
    await fresh.close();

    await seedHost(h1, [VM_A, VM_B, VM_P]);
    const other = await openHypervisor(h1.uri);
    const byName = new Map((await other.listDomains()).map((d) => [d.name, d]));
    await other.close();
    expect([...byName.keys()].sort()).toEqual(['vm-a', 'vm-b', 'vm-p']);
    expect(byName.get('vm-a')).toMatchObject({ uuid: VM_A.uuid, state: DomainState.RUNNING });
    expect(byName.get('vm-b')).toMatchObject({
      uuid: VM_B.uuid,
      state: DomainState.SHUTOFF,
      id: -1,
    });
    expect(byName.get('vm-p')).toMatchObject({ uuid: VM_P.uuid, state: DomainState.PAUSED });
    // State survives other clients leaving because the keeper stays connected.
    expect(await virsh(h1.uri, 'domstate', 'vm-a')).toContain('running');
  });

  it('keeps unix serial and channel devices in the live XML', async () => {
    const vm = {
      name: 'vm-serial',
      uuid: '11111111-0000-4000-8000-0000000000d1',
      running: true,
      serialPaths: ['/tmp/vf-serial/vm.sock'],
      channelPaths: ['/tmp/vf-serial/vm.chan'],
    };
    const hv = await seedHost(h2, [vm]);
    const xml = await hv.getXml(vm.uuid);
    expect(xml).toMatch(
      /<serial type='unix'>\s*<source mode='bind' path='\/tmp\/vf-serial\/vm.sock'\/>/,
    );
    expect(xml).toMatch(
      /<channel type='unix'>\s*<source mode='bind' path='\/tmp\/vf-serial\/vm.chan'\/>/,
    );
  });

  it('moves a VM between hosts with the same UUID', async () => {
    await seedHost(h1, [VM_A]);
    await seedHost(h2, []);
    await moveVm(h1, h2, VM_A.uuid);
    expect(await h1.keeper?.lookupByUuid(VM_A.uuid)).toBeUndefined();
    expect(await h2.keeper?.lookupByUuid(VM_A.uuid)).toMatchObject({
      name: 'vm-a',
      state: DomainState.RUNNING,
    });
  });

  it('kill() takes libvirtd away and restart() brings back a fresh one on the same URI', async () => {
    const oldPid = h2.pid;
    await h2.kill();
    expect(pidAlive(oldPid)).toBe(false);
    await expect(openHypervisor(h2.uri)).rejects.toThrow();
    await h2.restart();
    expect(h2.pid).not.toBe(oldPid);
    const hv = await seedHost(h2, [VM_B]);
    expect((await hv.listDomains()).map((d) => d.name)).toEqual(['vm-b']);
  });

  it('stop() ends the process and removes the temp dir', async () => {
    const host = await startLibvirtd('h3');
    const { pid, dir } = host;
    await host.stop();
    expect(pidAlive(pid)).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });
});
