/**
 * LibvirtBackend against two private libvirtd hosts (two URIs): every row of docs/protocol.md §12,
 * reboot, host list concatenation and order, the event-driven cache, and libvirtd loss.
 */
import type { FenceAction, RequestContext } from '../../src/backends/backend.js';
import { LibvirtBackend, type DomainChange } from '../../src/backends/libvirt/backend.js';
import { LifecycleEventType } from '../../src/libvirt/hypervisor.js';
import { DomainState, Response } from '../../src/protocol/constants.js';
import { silentLogger } from '../../src/util/logger.js';
import { seedHost, startLibvirtd, vmXml, type SimHost, type VmSpec } from '../helpers/libvirtd.js';
import { eventually } from '../helpers/eventually.js';

const H1_VMS: VmSpec[] = [
  { name: 'run1', uuid: '33333333-0000-4000-8000-000000000001', running: true },
  { name: 'paused1', uuid: '33333333-0000-4000-8000-000000000002', running: true, paused: true },
  { name: 'off1', uuid: '33333333-0000-4000-8000-000000000003', running: false },
  { name: 'Zeta', uuid: '33333333-0000-4000-8000-000000000004', running: true },
];
const H2_VMS: VmSpec[] = [
  { name: 'alpha', uuid: '33333333-0000-4000-8000-000000000011', running: true },
  { name: 'Beta', uuid: '33333333-0000-4000-8000-000000000012', running: false },
];
const [RUN1, PAUSED1, OFF1] = H1_VMS as [VmSpec, VmSpec, VmSpec, VmSpec];
const [ALPHA] = H2_VMS as [VmSpec, VmSpec];
const UNKNOWN = 'no-such-vm';

function ctx(): RequestContext {
  return {
    id: 'test',
    listener: 'test',
    source: undefined,
    seqno: 1,
    deadline: Date.now() + 10_000,
  };
}

/** One fence call and the outcome it must give: action, target, code, reason. */
type Step = [FenceAction, string, number, string];

const until = (check: () => Promise<boolean> | boolean, what: string): Promise<void> =>
  eventually(check, 10_000, what, 20);

describe('LibvirtBackend with two private libvirtd hosts', () => {
  let h1: SimHost;
  let h2: SimHost;
  let backend: LibvirtBackend;
  const changes: DomainChange[] = [];

  beforeAll(async () => {
    [h1, h2] = await Promise.all([startLibvirtd('be1'), startLibvirtd('be2')]);
    await seedHost(h1, H1_VMS);
    await seedHost(h2, H2_VMS);
    backend = new LibvirtBackend({ uris: [h1.uri, h2.uri] }, silentLogger, { backoffMaxMs: 500 });
    backend.onDomainChange((change) => changes.push(change));
    await backend.start();
  });

  afterAll(async () => {
    await backend?.stop();
    await h1?.stop();
    await h2?.stop();
  });

  async function state(host: SimHost, uuid: string): Promise<number | undefined> {
    return (await host.keeper?.lookupByUuid(uuid))?.state;
  }

  /** Runs fence steps in order; a failing step shows its action and target. */
  async function expectSteps(steps: readonly Step[]): Promise<void> {
    for (const [action, target, code, reason] of steps) {
      const outcome = await backend.fence(action, target, ctx());
      expect({ action, target, outcome }).toEqual({ action, target, outcome: { code, reason } });
    }
  }

  it.each<Step>([
    ['status', RUN1.name, Response.SUCCESS, 'ok'],
    ['status', PAUSED1.name, Response.SUCCESS, 'ok'],
    ['status', OFF1.name, Response.OFF, 'ok'],
    ['status', UNKNOWN, Response.OFF, 'not-found'],
    // UUIDs match case-insensitively; names exactly; the second URI is searched too.
    ['status', RUN1.uuid.toUpperCase(), Response.SUCCESS, 'ok'],
    ['status', 'RUN1', Response.OFF, 'not-found'],
    ['status', ALPHA.name, Response.SUCCESS, 'ok'],
    // null fails and devstatus succeeds without looking at libvirt.
    ['null', RUN1.name, Response.FAIL, 'no-handler'],
    ['devstatus', '', Response.SUCCESS, 'ok'],
  ])('%s %s: code %i (%s)', async (...step) => {
    await expectSteps([step]);
  });

  it('off: unknown fails, off is a no-op success, running is destroyed', async () => {
    await expectSteps([
      ['off', UNKNOWN, Response.FAIL, 'not-found'],
      ['off', OFF1.name, Response.SUCCESS, 'already-off'],
      ['off', RUN1.uuid, Response.SUCCESS, 'ok'],
    ]);
    expect(await state(h1, RUN1.uuid)).toBe(DomainState.SHUTOFF);
  });

  it('on: unknown fails, running is left alone, off is started', async () => {
    await expectSteps([
      ['on', UNKNOWN, Response.FAIL, 'not-found'],
      ['on', RUN1.name, Response.SUCCESS, 'ok'],
    ]);
    expect(await state(h1, RUN1.uuid)).toBe(DomainState.RUNNING);
    await expectSteps([
      ['on', RUN1.name, Response.SUCCESS, 'already-on'],
      ['on', PAUSED1.name, Response.SUCCESS, 'already-on'],
    ]);
    expect(await state(h1, PAUSED1.uuid)).toBe(DomainState.PAUSED);
  });

  it('reboot: unknown fails, off stays off, running comes back with the same UUID', async () => {
    await expectSteps([
      ['reboot', UNKNOWN, Response.FAIL, 'not-found'],
      ['reboot', OFF1.name, Response.SUCCESS, 'already-off'],
    ]);
    expect(await state(h1, OFF1.uuid)).toBe(DomainState.SHUTOFF);

    const idBefore = (await h2.keeper?.lookupByUuid(ALPHA.uuid))?.id;
    changes.length = 0;
    expect(await backend.fence('reboot', ALPHA.name, ctx())).toEqual({
      code: Response.SUCCESS,
      reason: 'ok',
    });
    const after = await h2.keeper?.lookupByUuid(ALPHA.uuid);
    expect(after).toMatchObject({ name: ALPHA.name, state: DomainState.RUNNING });
    expect(after?.id).not.toBe(idBefore);
    // The domain stays persistent (still defined after a destroy).
    await h2.keeper?.destroy(ALPHA.uuid);
    expect(await state(h2, ALPHA.uuid)).toBe(DomainState.SHUTOFF);
    await h2.keeper?.create(ALPHA.uuid);
    await until(
      () => changes.filter((c) => c.uuid === ALPHA.uuid && c.source === 'event').length >= 4,
      'reboot and manual cycle events',
    );
    const events = changes
      .filter((c) => c.uuid === ALPHA.uuid && c.source === 'event')
      .map((c) => c.event);
    expect(events.slice(0, 2)).toEqual([LifecycleEventType.STOPPED, LifecycleEventType.STARTED]);
  });

  it('reboot brings back a transient domain (create from the saved live XML)', async () => {
    const vm = { name: 'transient1', uuid: '33333333-0000-4000-8000-000000000021', running: true };
    await h1.keeper?.createXml(vmXml(vm));
    await expectSteps([['reboot', vm.uuid, Response.SUCCESS, 'ok']]);
    expect(await h1.keeper?.lookupByUuid(vm.uuid)).toMatchObject({
      name: vm.name,
      state: DomainState.RUNNING,
    });
    // off makes a transient domain disappear; on cannot bring it back (docs/protocol.md §14.1).
    await expectSteps([
      ['off', vm.name, Response.SUCCESS, 'ok'],
      ['on', vm.name, Response.FAIL, 'not-found'],
    ]);
  });

  it('lists every domain of both URIs, sorted by name case-insensitively', async () => {
    const list = await backend.hostlist(ctx());
    expect(list.code).toBe(0);
    expect(list.entries.map((e) => e.name)).toEqual([
      'alpha',
      'Beta',
      'off1',
      'paused1',
      'run1',
      'Zeta',
    ]);
    expect(list.entries.find((e) => e.name === 'paused1')).toEqual({
      name: 'paused1',
      uuid: PAUSED1.uuid,
      state: DomainState.PAUSED,
    });
  });

  it('keeps an event-driven cache: domains(), findLocal() and onDomainChange', async () => {
    expect(
      backend
        .domains()
        .map((d) => d.name)
        .sort(),
    ).toEqual(['Beta', 'Zeta', 'alpha', 'off1', 'paused1', 'run1']);
    expect(backend.findLocal(OFF1.uuid.toUpperCase())).toMatchObject({
      name: 'off1',
      state: DomainState.SHUTOFF,
    });
    expect(backend.findLocal('OFF1')).toBeUndefined();
    changes.length = 0;
    await h1.keeper?.create(OFF1.uuid);
    await until(
      () => backend.findLocal(OFF1.name)?.state === DomainState.RUNNING,
      'cache to see off1 running',
    );
    expect(changes).toContainEqual(
      expect.objectContaining({
        uuid: OFF1.uuid,
        name: OFF1.name,
        state: DomainState.RUNNING,
        event: LifecycleEventType.STARTED,
        present: true,
        uri: h1.uri,
        source: 'event',
      }),
    );
    await h1.keeper?.destroy(OFF1.uuid);
    await until(
      () => backend.findLocal(OFF1.name)?.state === DomainState.SHUTOFF,
      'cache to see off1 off',
    );
  });

  it('answers FAIL libvirt-unavailable while a libvirtd is down, then recovers', async () => {
    await h2.kill();
    // h1 still answers for its own VMs.
    expect((await backend.fence('status', RUN1.name, ctx())).code).toBe(Response.SUCCESS);
    // A VM that may be on the dead host can be neither found nor declared missing.
    expect(await backend.fence('status', ALPHA.name, ctx())).toEqual({
      code: Response.FAIL,
      reason: 'libvirt-unavailable',
    });
    expect(await backend.fence('off', ALPHA.uuid, ctx())).toEqual({
      code: Response.FAIL,
      reason: 'libvirt-unavailable',
    });
    expect(backend.findLocal(ALPHA.uuid)).toBeUndefined();
    expect((await backend.hostlist(ctx())).entries.map((e) => e.name)).toEqual([
      'off1',
      'paused1',
      'run1',
      'Zeta',
    ]);

    await h2.restart();
    await seedHost(h2, H2_VMS);
    await until(
      async () => (await backend.fence('status', ALPHA.name, ctx())).code === Response.SUCCESS,
      'backend to reconnect to the restarted libvirtd',
    );
    await until(
      () => backend.findLocal(ALPHA.uuid)?.state === DomainState.RUNNING,
      'resynchronised cache',
    );
    expect(await backend.fence('off', ALPHA.name, ctx())).toEqual({
      code: Response.SUCCESS,
      reason: 'ok',
    });
  });
});

describe('LibvirtBackend start-up', () => {
  it('fails with "Could not connect to any hypervisors" when no URI answers', async () => {
    const backend = new LibvirtBackend(
      { uris: ['test+unix:///default?socket=/nonexistent/sock'] },
      silentLogger,
    );
    await expect(backend.start()).rejects.toThrow('Could not connect to any hypervisors');
    await backend.stop();
    const none = new LibvirtBackend({ uris: [] }, silentLogger);
    await expect(none.start()).rejects.toThrow('Could not connect to any hypervisors');
  });

  it('with waitForInit keeps retrying until a libvirtd appears', async () => {
    const host = await startLibvirtd('late');
    await host.kill();
    const backend = new LibvirtBackend({ uris: [host.uri] }, silentLogger, {
      waitForInit: true,
      initRetryMs: 100,
    });
    try {
      const started = backend.start();
      await host.restart();
      await started;
      expect((await backend.fence('status', 'test', ctx())).code).toBe(Response.SUCCESS);
    } finally {
      await backend.stop();
      await host.stop();
    }
  });

  it('works in-process on test:///default', async () => {
    const backend = new LibvirtBackend({ uris: ['test:///default'] }, silentLogger);
    await backend.start();
    try {
      expect((await backend.hostlist(ctx())).entries).toEqual([
        { name: 'test', uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f', state: DomainState.RUNNING },
      ]);
      expect(await backend.fence('reboot', 'test', ctx())).toEqual({
        code: Response.SUCCESS,
        reason: 'ok',
      });
      expect((await backend.fence('status', 'test', ctx())).code).toBe(Response.SUCCESS);
    } finally {
      await backend.stop();
    }
  });
});
