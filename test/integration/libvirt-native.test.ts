/**
 * The native binding against the real libvirt test driver (in-process test:///default):
 * results, error codes, events, and survival when every JS reference is dropped mid-flight.
 */
import {
  LibvirtError,
  LifecycleEventType,
  type LifecycleEvent,
} from '../../src/libvirt/hypervisor.js';
import { loadAddon, openHypervisor } from '../../src/libvirt/native.js';
import { DomainState } from '../../src/protocol/constants.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TEST_DOMAIN, startLibvirtd, vmXml } from '../helpers/libvirtd.js';
import { eventually } from '../helpers/eventually.js';

const TEST = DEFAULT_TEST_DOMAIN;
const URI = 'test:///default';

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run jest with node --expose-gc');
  collect();
}

const until = (check: () => boolean, what: string, ms = 5_000): Promise<void> =>
  eventually(check, ms, what, 10);

describe('native libvirt binding', () => {
  // Keeps the in-process test driver state alive and acts on it.
  let keeper: Awaited<ReturnType<typeof openHypervisor>>;

  beforeAll(async () => {
    keeper = await openHypervisor(URI);
  });

  afterAll(async () => {
    await keeper?.close();
  });

  it('lists, looks up by name and UUID (case-insensitive), and reads live XML', async () => {
    const list = await keeper.listDomains();
    expect(list).toEqual([
      { uuid: TEST.uuid, name: 'test', state: DomainState.RUNNING, id: expect.any(Number) },
    ]);
    expect(await keeper.lookupByName('test')).toMatchObject({ uuid: TEST.uuid });
    expect(await keeper.lookupByUuid(TEST.uuid.toUpperCase())).toMatchObject({ name: 'test' });
    expect(await keeper.lookupByName('TEST')).toBeUndefined();
    expect(await keeper.lookupByUuid('00000000-0000-4000-8000-000000000000')).toBeUndefined();
    expect(await keeper.getXml(TEST.uuid)).toContain(`<uuid>${TEST.uuid}</uuid>`);
    expect(keeper.isAlive()).toBe(true);
  });

  it('rejects with libvirt error code and domain', async () => {
    const vm = { name: 'native-off', uuid: '22222222-0000-4000-8000-000000000001', running: false };
    await keeper.defineXml(vmXml(vm));
    try {
      const error = await keeper.destroy(vm.uuid).then(
        () => undefined,
        (cause: unknown) => cause,
      );
      expect(error).toBeInstanceOf(LibvirtError);
      expect(error).toMatchObject({ code: 55, domain: expect.any(Number) });
      await expect(keeper.createXml('<domain')).rejects.toBeInstanceOf(LibvirtError);
      await expect(keeper.destroy('00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({
        code: 42,
      });
    } finally {
      await keeper.undefine(vm.uuid);
    }
  });

  it('delivers lifecycle events for destroy, create, define and undefine', async () => {
    const events: LifecycleEvent[] = [];
    const watcher = await openHypervisor(URI);
    watcher.onLifecycle((event) => events.push(event));
    const vm = { name: 'native-ev', uuid: '22222222-0000-4000-8000-000000000002', running: false };
    await keeper.defineXml(vmXml(vm));
    await keeper.create(vm.uuid);
    await keeper.destroy(vm.uuid);
    await keeper.undefine(vm.uuid);
    await until(() => events.length >= 4, 'four events');
    expect(events.map((e) => [e.uuid, e.name, e.event, e.detail])).toEqual([
      [vm.uuid, vm.name, LifecycleEventType.DEFINED, 0],
      [vm.uuid, vm.name, LifecycleEventType.STARTED, 0],
      [vm.uuid, vm.name, LifecycleEventType.STOPPED, 1],
      [vm.uuid, vm.name, LifecycleEventType.UNDEFINED, 0],
    ]);
    await watcher.close();
    await expect(watcher.listDomains()).rejects.toMatchObject({ code: 5 });
    expect(watcher.isAlive()).toBe(false);
  });

  it('createXml starts a transient domain that vanishes on destroy', async () => {
    const vm = { name: 'native-tr', uuid: '22222222-0000-4000-8000-000000000003', running: true };
    const info = await keeper.createXml(vmXml(vm));
    expect(info).toMatchObject({ uuid: vm.uuid, state: DomainState.RUNNING });
    await keeper.destroy(vm.uuid);
    expect(await keeper.lookupByUuid(vm.uuid)).toBeUndefined();
  });

  it('close() while calls are in flight lets them finish and frees the connection', async () => {
    const hv = await openHypervisor(URI);
    const calls = [hv.listDomains(), hv.lookupByName('test'), hv.getXml(TEST.uuid)];
    const closing = hv.close();
    const results = await Promise.allSettled(calls);
    await closing;
    for (const result of results) {
      if (result.status === 'rejected')
        expect(result.reason).toMatchObject({ code: expect.any(Number) });
    }
  });

  it('survives forced GC of every JS reference while calls and events are in flight', async () => {
    const addon = loadAddon();
    const before = addon.stats();
    let eventsSeen = 0;
    for (let round = 0; round < 10; round++) {
      // Raw connection: nothing but the pending calls refer to it once `conn` is dropped.
      let conn: Awaited<ReturnType<typeof addon.open>> | undefined = await addon.open(URI, {
        keepaliveInterval: 0,
        keepaliveCount: 0,
        onLifecycle: () => eventsSeen++,
        onClose: () => undefined,
      });
      const calls = [conn.listDomains(), conn.lookupByUuid(TEST.uuid), conn.getXml(TEST.uuid, 0)];
      conn = undefined;
      // Events fire into the dropped connection's callbacks while it is being collected.
      const churn = (async () => {
        await keeper.destroy(TEST.uuid);
        await keeper.create(TEST.uuid);
      })();
      gc();
      const [list, found, xml] = await Promise.all(calls);
      expect(list).toEqual([expect.objectContaining({ uuid: TEST.uuid })]);
      expect(found).toMatchObject({ name: 'test' });
      expect(xml).toContain('<name>test</name>');
      await churn;
      gc();
      // Same through the TypeScript wrapper.
      let hv: Awaited<ReturnType<typeof openHypervisor>> | undefined = await openHypervisor(URI);
      hv.onLifecycle(() => eventsSeen++);
      const pending = hv.lookupByName('test');
      hv = undefined;
      gc();
      expect(await pending).toMatchObject({ uuid: TEST.uuid });
    }
    expect(eventsSeen).toBeGreaterThan(0);
    // Every dropped connection is finalised and released by the native side.
    await until(
      () => {
        gc();
        const now = addon.stats();
        return now.wrappers <= before.wrappers && now.states <= before.states;
      },
      'native connections to be released',
      10_000,
    );
    expect(await keeper.lookupByUuid(TEST.uuid)).toMatchObject({ state: DomainState.RUNNING });
  });

  it('reports connection loss once (eof) and never into collected connections', async () => {
    const host = await startLibvirtd('nat');
    try {
      const reasons: string[] = [];
      const hv = await openHypervisor(host.uri);
      hv.onClose((reason) => reasons.push(reason));
      for (let i = 0; i < 5; i++) {
        let dropped: Awaited<ReturnType<typeof openHypervisor>> | undefined = await openHypervisor(
          host.uri,
        );
        dropped.onClose((reason) => reasons.push(`dropped:${reason}`));
        dropped = undefined;
      }
      gc();
      await host.kill();
      await until(() => reasons.includes('eof'), 'close notice');
      expect(hv.isAlive()).toBe(false);
      await expect(hv.listDomains()).rejects.toBeInstanceOf(LibvirtError);
      await hv.close();
      expect(reasons.filter((r) => r === 'eof')).toHaveLength(1);
    } finally {
      await host.stop();
    }
  });

  it('lets a process exit cleanly with open connections while events are firing', () => {
    const addonPath = fileURLToPath(
      new URL('../../build/Release/virtfence_libvirt.node', import.meta.url),
    );
    const script = `
      const b = require(${JSON.stringify(addonPath)});
      (async () => {
        const opts = { keepaliveInterval: 0, keepaliveCount: 0, onLifecycle: () => {}, onClose: () => {} };
        const c = await b.open('test:///default', opts);
        for (let i = 0; i < 3; i++) await b.open('test:///default', opts);
        const churn = async () => { for (;;) { await c.destroy('${TEST.uuid}'); await c.create('${TEST.uuid}'); } };
        churn();
        setTimeout(() => process.exit(0), 30);
      })();`;
    for (let run = 0; run < 5; run++) {
      const result = spawnSync(process.execPath, ['-e', script], {
        encoding: 'utf8',
        timeout: 10_000,
      });
      expect({ status: result.status, signal: result.signal, stderr: result.stderr }).toEqual({
        status: 0,
        signal: null,
        stderr: '',
      });
    }
    // And without process.exit(): an open connection does not keep the process alive.
    const natural = spawnSync(
      process.execPath,
      [
        '-e',
        `require(${JSON.stringify(addonPath)}).open('test:///default', { onLifecycle() {} }).then((c) => c.listDomains())`,
      ],
      { encoding: 'utf8', timeout: 10_000 },
    );
    expect(natural.status).toBe(0);
  });
});
