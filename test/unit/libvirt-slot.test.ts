/**
 * Ordering rules of the per-URI cache (src/backends/libvirt/slot.ts) with a scripted, in-memory
 * Hypervisor: it lets a test hold a list open while events arrive, which the real test driver
 * cannot be made to do on demand. No I/O.
 */
import { HypervisorSlot, type DomainChange } from '../../src/backends/libvirt/slot.js';
import { LifecycleEventType as Ev, type Hypervisor } from '../../src/libvirt/hypervisor.js';
import { DomainState as S } from '../../src/protocol/constants.js';
import { silentLogger } from '../../src/util/logger.js';
import { ScriptedHypervisor } from '../helpers/libvirtd.js';

const A = '44444444-0000-4000-8000-00000000000a';
const B = '44444444-0000-4000-8000-00000000000b';

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

function makeSlot(
  opens: (() => Hypervisor)[],
  overrides: { reconcileIntervalMs?: number; backoffMinMs?: number } = {},
) {
  const changes: DomainChange[] = [];
  let attempts = 0;
  const slot = new HypervisorSlot('scripted:///', {
    open: async () => {
      const next = opens[Math.min(attempts++, opens.length - 1)];
      if (!next) throw new Error('no hypervisor');
      return next();
    },
    logger: silentLogger,
    reconcileIntervalMs: overrides.reconcileIntervalMs ?? 60_000,
    backoffMinMs: overrides.backoffMinMs ?? 5,
    backoffMaxMs: Math.max(20, overrides.backoffMinMs ?? 0),
    onChange: (c) => changes.push(c),
  });
  return { slot, changes, attempts: () => attempts };
}

describe('HypervisorSlot cache ordering', () => {
  it('an event that arrives while the first list is in flight beats the older snapshot', async () => {
    const hv = new ScriptedHypervisor();
    hv.set(A, 'a', S.RUNNING);
    let release!: () => void;
    hv.holdList = new Promise((resolve) => (release = resolve));
    const { slot, changes } = makeSlot([() => hv]);
    const connecting = slot.connect();
    await flush();
    // The list snapshot says running; meanwhile the VM stops.
    hv.set(A, 'a', S.SHUTOFF);
    hv.fire(A, Ev.STOPPED, 1);
    release();
    expect(await connecting).toBe(true);
    await flush();
    expect(slot.cached(A)?.state).toBe(S.SHUTOFF);
    expect(changes.map((c) => [c.event, c.state, c.source])).toEqual([
      [Ev.STOPPED, S.SHUTOFF, 'event'],
    ]);
    await slot.stop();
  });

  it('a transient domain that vanishes on stop is removed after the confirming lookup', async () => {
    const hv = new ScriptedHypervisor();
    hv.set(A, 'a', S.RUNNING);
    const { slot, changes } = makeSlot([() => hv]);
    await slot.connect();
    hv.domainsNow.delete(A);
    hv.fire(A, Ev.STOPPED, 1);
    await flush();
    expect(slot.cached(A)).toBeUndefined();
    expect(changes.at(-1)).toMatchObject({
      uuid: A,
      present: false,
      event: Ev.UNDEFINED,
      source: 'resync',
    });
    await slot.stop();
  });

  it('answers nothing while disconnected, reconnects with backoff and reports what changed meanwhile', async () => {
    const first = new ScriptedHypervisor();
    first.set(A, 'a', S.RUNNING);
    const second = new ScriptedHypervisor();
    second.set(B, 'b', S.RUNNING);
    const failing = (): Hypervisor => {
      throw new Error('connection refused');
    };
    const { slot, changes, attempts } = makeSlot([() => first, failing, failing, () => second]);
    expect(await slot.connect()).toBe(true);
    changes.length = 0;
    first.loseConnection();
    expect(slot.connected).toBe(false);
    expect(slot.domains()).toEqual([]);
    expect(slot.cached(A)).toBeUndefined();
    await expect(slot.call((h) => h.listDomains(), Date.now() + 1000)).rejects.toMatchObject({
      reason: 'libvirt-unavailable',
    });
    for (let i = 0; i < 200 && !slot.connected; i++)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(slot.connected).toBe(true);
    expect(attempts()).toBe(4);
    expect(slot.domains().map((d) => d.uuid)).toEqual([B]);
    expect(changes.map((c) => [c.uuid, c.present, c.source]).sort()).toEqual([
      [A, false, 'resync'],
      [B, true, 'resync'],
    ]);
    await slot.stop();
  });

  it('a call that finds the connection down reconnects at once instead of waiting for the backoff', async () => {
    const first = new ScriptedHypervisor();
    first.set(A, 'a', S.RUNNING);
    const second = new ScriptedHypervisor();
    second.set(A, 'a', S.SHUTOFF);
    const { slot, attempts } = makeSlot([() => first, () => second], { backoffMinMs: 60_000 });
    expect(await slot.connect()).toBe(true);
    first.loseConnection();
    expect(slot.connected).toBe(false);
    // The backoff timer would wait a minute; the call itself reconnects and is answered.
    const info = await slot.call((h) => h.lookupByUuid(A), Date.now() + 1000);
    expect(info?.state).toBe(S.SHUTOFF);
    expect(slot.connected).toBe(true);
    expect(attempts()).toBe(2);
    await slot.stop();
  });

  it('a call that finds the connection down and libvirt still away fails as unavailable', async () => {
    const first = new ScriptedHypervisor();
    const { slot, attempts } = makeSlot(
      [
        () => first,
        () => {
          throw new Error('connection refused');
        },
      ],
      { backoffMinMs: 60_000 },
    );
    expect(await slot.connect()).toBe(true);
    first.loseConnection();
    await expect(slot.call((h) => h.listDomains(), Date.now() + 1000)).rejects.toMatchObject({
      reason: 'libvirt-unavailable',
    });
    expect(attempts()).toBe(2);
    await slot.stop();
  });

  it('the reconciliation poll catches a change that produced no event', async () => {
    const hv = new ScriptedHypervisor();
    hv.set(A, 'a', S.RUNNING);
    const { slot, changes } = makeSlot([() => hv], { reconcileIntervalMs: 10 });
    await slot.connect();
    changes.length = 0;
    hv.set(A, 'a', S.PAUSED);
    for (let i = 0; i < 200 && changes.length === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(changes).toEqual([
      expect.objectContaining({
        uuid: A,
        state: S.PAUSED,
        event: Ev.SUSPENDED,
        source: 'resync',
        present: true,
      }),
    ]);
    await slot.stop();
  });
});
