/**
 * The libvirt backend against REAL QEMU guests (software emulation) on a private libvirtd with
 * the QEMU driver: status, off, on and reboot with real destroy and create (the QEMU process
 * goes away, a new one boots to its console), a VM already off, a VM started behind the
 * backend's back, libvirtd restarting while guests run, and what the event cache does with the
 * lifecycle events the real driver sends.
 */
import { jest } from '@jest/globals';
import type { RequestContext } from '../../src/backends/backend.js';
import { LibvirtBackend, type DomainChange } from '../../src/backends/libvirt/backend.js';
import { LifecycleEventType } from '../../src/libvirt/hypervisor.js';
import { DomainState, Response } from '../../src/protocol/constants.js';
import { createLogger } from '../../src/util/logger.js';
import { QemuGuest, startQemuHost, type QemuHost } from '../helpers/qemu.js';
import { eventually } from '../helpers/eventually.js';

jest.setTimeout(120_000);

const ALPHA = { name: 'q-alpha', uuid: '9e000000-0000-4000-8000-0000000000a1' };
const BETA = { name: 'q-beta', uuid: '9e000000-0000-4000-8000-0000000000b2' };
const GAMMA = { name: 'q-gamma', uuid: '9e000000-0000-4000-8000-0000000000c3', acpi: true };

function ctx(): RequestContext {
  return {
    id: 'qemu',
    listener: 'test',
    source: undefined,
    seqno: 1,
    deadline: Date.now() + 30_000,
  };
}

const until = (check: () => Promise<boolean> | boolean, what: string, ms = 20_000): Promise<void> =>
  eventually(check, ms, what, 50);

describe('LibvirtBackend on real QEMU guests', () => {
  let host: QemuHost;
  let alpha: QemuGuest;
  let beta: QemuGuest;
  let gamma: QemuGuest;
  let backend: LibvirtBackend;
  const changes: DomainChange[] = [];
  const logs: Record<string, unknown>[] = [];

  beforeAll(async () => {
    host = await startQemuHost('qbe');
    alpha = new QemuGuest(host, ALPHA);
    beta = new QemuGuest(host, BETA);
    gamma = new QemuGuest(host, GAMMA);
    for (const g of [alpha, beta, gamma]) await g.define();
    await alpha.start();
    backend = new LibvirtBackend(
      { uris: [host.uri] },
      createLogger({ write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) }),
      { backoffMinMs: 200, backoffMaxMs: 500, rebootPollMs: 200 },
    );
    backend.onDomainChange((c) => changes.push(c));
    await backend.start();
  });

  afterAll(async () => {
    await backend?.stop();
    await host?.stop();
  });

  const state = async (uuid: string) => (await host.keeper?.lookupByUuid(uuid))?.state;
  const changesOf = (uuid: string, from = 0) => changes.slice(from).filter((c) => c.uuid === uuid);
  /** The driver's own STOPPED event; a lookup racing it may report a resync STOPPED first. */
  const isStopEvent = (c: DomainChange): boolean =>
    c.event === LifecycleEventType.STOPPED && c.source === 'event';

  it('status: a booted guest is ON, a defined guest that never ran is OFF, unknown is OFF', async () => {
    expect(alpha.sinceBoot()).toContain('vfguest: ready q-alpha');
    expect(await backend.fence('status', ALPHA.name, ctx())).toEqual({
      code: Response.SUCCESS,
      reason: 'ok',
    });
    expect(await backend.fence('status', BETA.uuid.toUpperCase(), ctx())).toEqual({
      code: Response.OFF,
      reason: 'ok',
    });
    expect(await backend.fence('status', 'q-none', ctx())).toMatchObject({ code: Response.OFF });
    expect(backend.findLocal(ALPHA.name)?.state).toBe(DomainState.RUNNING);
  });

  it('off of a VM already off succeeds without acting; on of an unknown VM fails', async () => {
    const mark = changes.length;
    expect(await backend.fence('off', BETA.name, ctx())).toEqual({
      code: Response.SUCCESS,
      reason: 'already-off',
    });
    expect(await backend.fence('on', 'q-none', ctx())).toMatchObject({ code: Response.FAIL });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(changesOf(BETA.uuid, mark)).toEqual([]);
  });

  it('off destroys the QEMU process; the STOPPED/DESTROYED event reaches the cache', async () => {
    const pid = host.qemuPid(ALPHA.name);
    expect(pid).toBeDefined();
    const mark = changes.length;
    expect(await backend.fence('off', ALPHA.name, ctx())).toEqual({
      code: Response.SUCCESS,
      reason: 'ok',
    });
    expect(await state(ALPHA.uuid)).toBe(DomainState.SHUTOFF);
    await until(() => host.qemuPid(ALPHA.name) === undefined, 'the QEMU process to exit');
    expect(() => process.kill(pid!, 0)).toThrow();
    await until(() => changesOf(ALPHA.uuid, mark).some(isStopEvent), 'the stop event');
    // QEMU reports the SIGTERM libvirt sends as a shutdown requested by the host (SHUTDOWN/HOST)
    // before libvirt reports STOPPED/DESTROYED: the cache keeps the VM running until the latter.
    const seen = changesOf(ALPHA.uuid, mark);
    expect(seen[0]).toMatchObject({
      event: LifecycleEventType.SHUTDOWN,
      detail: 2, // HOST
      state: DomainState.RUNNING,
      source: 'event',
    });
    const firstStop = seen.findIndex((c) => c.event === LifecycleEventType.STOPPED);
    expect(seen.slice(0, firstStop).every((c) => c.state === DomainState.RUNNING)).toBe(true);
    expect(
      seen
        .filter((c) => c.event === LifecycleEventType.STOPPED)
        .every((c) => c.state === DomainState.SHUTOFF),
    ).toBe(true);
    expect(seen).toContainEqual(
      expect.objectContaining({ event: LifecycleEventType.STOPPED, detail: 1, source: 'event' }),
    );
    expect(backend.findLocal(ALPHA.name)?.state).toBe(DomainState.SHUTOFF);
    expect(await backend.fence('status', ALPHA.name, ctx())).toMatchObject({ code: Response.OFF });
  });

  it('on starts a new QEMU process that boots to its console', async () => {
    alpha.markBoot();
    const mark = changes.length;
    const t0 = Date.now();
    expect(await backend.fence('on', ALPHA.uuid, ctx())).toEqual({
      code: Response.SUCCESS,
      reason: 'ok',
    });
    expect(host.qemuPid(ALPHA.name)).toBeDefined();
    await alpha.waitReady();
    console.log(`on → console ready: ${Date.now() - t0} ms`);
    expect((await alpha.run('cat /proc/uptime')).code).toBe(0);
    await until(
      () => changesOf(ALPHA.uuid, mark).some((c) => c.event === LifecycleEventType.STARTED),
      'the start event',
    );
    expect(backend.findLocal(ALPHA.name)?.state).toBe(DomainState.RUNNING);
  });

  it('reboot: one destroy, a new QEMU process from the live XML, the guest boots again', async () => {
    const before = host.qemuPid(ALPHA.name);
    alpha.markBoot();
    const mark = changes.length;
    expect(await backend.fence('reboot', ALPHA.name, ctx())).toEqual({
      code: Response.SUCCESS,
      reason: 'ok',
    });
    const after = host.qemuPid(ALPHA.name);
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    await alpha.waitReady();
    const events = changesOf(ALPHA.uuid, mark).map((c) => [c.event, c.detail]);
    // One destroy: a single STOPPED/DESTROYED (the host-requested SHUTDOWN comes before it).
    expect(events.filter(([e, d]) => e === LifecycleEventType.STOPPED && d === 1)).toHaveLength(1);
    expect(events.some(([e]) => e === LifecycleEventType.STARTED)).toBe(true);
    // The live XML of a real QEMU domain is accepted by createXML (no fallback to the definition).
    expect(
      logs.filter((l) => l.event === 'Failed to create domain from XML; starting its definition'),
    ).toEqual([]);
    // The domain is still persistent: off and on work on it afterwards.
    expect(await host.virsh('domstate', ALPHA.name)).toContain('running');
  });

  it('a VM started behind the backend (virsh start) is in the cache through its event', async () => {
    const mark = changes.length;
    gamma.markBoot();
    await host.virsh('start', GAMMA.name);
    await until(
      () => changesOf(GAMMA.uuid, mark).some((c) => c.event === LifecycleEventType.STARTED),
      'the start event of gamma',
    );
    expect(backend.findLocal(GAMMA.name)?.state).toBe(DomainState.RUNNING);
    await gamma.waitReady();
    expect(await backend.fence('status', GAMMA.name, ctx())).toMatchObject({
      code: Response.SUCCESS,
    });
  });

  it('a guest powering itself off: STOPPED/SHUTDOWN from the driver, status OFF', async () => {
    const mark = changes.length;
    // The guest's own poweroff (ACPI): QEMU exits, libvirt applies on_poweroff = destroy.
    void gamma.run('poweroff -f', 5_000).catch(() => undefined);
    await until(() => host.qemuPid(GAMMA.name) === undefined, 'gamma to power off');
    await until(() => changesOf(GAMMA.uuid, mark).some(isStopEvent), 'the stop event of gamma');
    const seen = changesOf(GAMMA.uuid, mark).map((c) => [c.event, c.detail, c.state, c.source]);
    expect(seen[0]).toEqual([LifecycleEventType.SHUTDOWN, 1, DomainState.RUNNING, 'event']); // by the guest
    // SHUTDOWN detail, from the driver (a lookup racing the event may add a resync STOPPED).
    expect(seen).toContainEqual([LifecycleEventType.STOPPED, 0, DomainState.SHUTOFF, 'event']);
    expect(seen.some(([e, d]) => e === LifecycleEventType.STOPPED && d === 1)).toBe(false);
    expect(await backend.fence('status', GAMMA.name, ctx())).toMatchObject({ code: Response.OFF });
  });

  it('libvirtd restarts while a guest runs: QEMU survives, the backend reconnects and fences', async () => {
    const pid = host.qemuPid(ALPHA.name);
    expect(pid).toBeDefined();
    const reconnectsBefore = logs.filter((l) => l.event === 'libvirt-connected').length;
    await host.restart();
    await host.connection();
    expect(host.qemuPid(ALPHA.name)).toBe(pid); // the same QEMU process, reattached
    expect(await state(ALPHA.uuid)).toBe(DomainState.RUNNING);
    await until(
      async () => (await backend.fence('status', ALPHA.name, ctx())).code === Response.SUCCESS,
      'the backend to answer again',
    );
    expect(logs.filter((l) => l.event === 'libvirt-connected').length).toBeGreaterThan(
      reconnectsBefore,
    );
    // The guest still runs commands: nothing rebooted it.
    expect((await alpha.run('echo still-here')).output).toContain('still-here');
    const mark = changes.length;
    expect(await backend.fence('off', ALPHA.name, ctx())).toEqual({
      code: Response.SUCCESS,
      reason: 'ok',
    });
    await until(() => host.qemuPid(ALPHA.name) === undefined, 'alpha to be destroyed');
    await until(
      () => changesOf(ALPHA.uuid, mark).some(isStopEvent),
      'the stop event through the new connection',
    );
  });
});
