import { OwnershipTable, comparePosition, type VmEventInput } from '../../src/routing/table.js';
import { DomainState } from '../../src/protocol/constants.js';
import { LifecycleEventType as E } from '../../src/libvirt/hypervisor.js';

const U1 = '11111111-0000-4000-8000-000000000001';
const U2 = '11111111-0000-4000-8000-000000000002';
const HB = { heartbeatIntervalMs: 1000, deadAfterMs: 5000 };

function ev(
  host: string,
  seq: number,
  event: number,
  state: number,
  extra: Partial<VmEventInput> = {},
): VmEventInput {
  return { host, epoch: 100, seq, uuid: U1, name: 'vm1', event, detail: 0, state, ...extra };
}

describe('OwnershipTable ordering', () => {
  test('positions compare by epoch then seq', () => {
    expect(comparePosition({ epoch: 1, seq: 9 }, { epoch: 2, seq: 0 })).toBe(-1);
    expect(comparePosition({ epoch: 2, seq: 1 }, { epoch: 2, seq: 0 })).toBe(1);
    expect(comparePosition({ epoch: 2, seq: 1 }, { epoch: 2, seq: 1 })).toBe(0);
  });

  test('a started VM is claimed by its host, found by uuid (any case) and exact name', () => {
    const t = new OwnershipTable('h1', HB);
    expect(t.applyVmEvent(ev('h2', 1, E.STARTED, DomainState.RUNNING), 0)).toBe('applied');
    expect(t.resolve(U1.toUpperCase())).toEqual([U1]);
    expect(t.resolve('vm1')).toEqual([U1]);
    expect(t.resolve('VM1')).toEqual([]); // names are case-sensitive, like libvirt
    expect(t.claims(U1).map((c) => c.host)).toEqual(['h2']);
  });

  test('a reordered older event is ignored (stop at seq 5, then a late start at seq 4)', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyVmEvent(ev('h2', 3, E.STARTED, DomainState.RUNNING), 0);
    t.applyVmEvent(ev('h2', 5, E.UNDEFINED, DomainState.SHUTOFF), 0);
    expect(t.applyVmEvent(ev('h2', 4, E.STARTED, DomainState.RUNNING), 0)).toBe('stale');
    expect(t.claims(U1)).toHaveLength(0);
    expect(t.resolve('vm1')).toEqual([]);
  });

  test('a duplicate event is stale', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyVmEvent(ev('h2', 3, E.STARTED, DomainState.RUNNING), 0);
    expect(t.applyVmEvent(ev('h2', 3, E.STOPPED, DomainState.SHUTOFF), 0)).toBe('stale');
    expect(t.claims(U1)[0]?.state).toBe(DomainState.RUNNING);
  });

  test('an event from an older epoch than the claim is ignored; a newer epoch wins even with a lower seq', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyVmEvent(ev('h2', 1, E.STARTED, DomainState.RUNNING, { epoch: 200 }), 0);
    expect(t.applyVmEvent(ev('h2', 99, E.STOPPED, DomainState.SHUTOFF, { epoch: 100 }), 0)).toBe(
      'stale',
    );
    expect(t.applyVmEvent(ev('h2', 0, E.STOPPED, DomainState.SHUTOFF, { epoch: 300 }), 0)).toBe(
      'applied',
    );
    expect(t.claims(U1)[0]?.state).toBe(DomainState.SHUTOFF);
  });

  test('STOPPED keeps an inactive claim (state SHUTOFF) whatever state the event carried; UNDEFINED removes it', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyVmEvent(ev('h2', 1, E.STARTED, DomainState.RUNNING), 0);
    t.applyVmEvent(ev('h2', 2, E.STOPPED, DomainState.RUNNING), 0);
    expect(t.claims(U1)[0]?.state).toBe(DomainState.SHUTOFF);
    t.applyVmEvent(ev('h2', 3, E.UNDEFINED, DomainState.SHUTOFF), 0);
    expect(t.claims(U1)).toHaveLength(0);
  });

  test('during a migration every claimant is recorded', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyVmEvent(ev('h2', 1, E.STARTED, DomainState.RUNNING), 0);
    // destination: Started-Migrated (detail 1); source: Suspended-Migrated — both still claim
    t.applyVmEvent(ev('h3', 1, E.STARTED, DomainState.PAUSED, { detail: 1 }), 0);
    t.applyVmEvent(ev('h2', 2, E.SUSPENDED, DomainState.PAUSED, { detail: 1 }), 0);
    expect(
      t
        .claims(U1)
        .map((c) => c.host)
        .sort(),
    ).toEqual(['h2', 'h3']);
    // source: Stopped-Migrated (detail 3) → inactive there; destination resumes
    t.applyVmEvent(ev('h2', 3, E.STOPPED, DomainState.SHUTOFF, { detail: 3 }), 0);
    t.applyVmEvent(ev('h3', 2, E.RESUMED, DomainState.RUNNING, { detail: 1 }), 0);
    const states = Object.fromEntries(t.claims(U1).map((c) => [c.host, c.state]));
    expect(states).toEqual({ h2: DomainState.SHUTOFF, h3: DomainState.RUNNING });
  });

  test('a rename re-indexes the name', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyVmEvent(ev('h2', 1, E.STARTED, DomainState.RUNNING), 0);
    t.applyVmEvent(ev('h2', 2, E.DEFINED, DomainState.RUNNING, { name: 'vm1-new', detail: 2 }), 0);
    expect(t.resolve('vm1')).toEqual([]);
    expect(t.resolve('vm1-new')).toEqual([U1]);
  });
});

describe('OwnershipTable inventory snapshots', () => {
  test('a snapshot replaces the host claims, removes what it does not list, keeps other hosts', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyVmEvent(ev('h2', 1, E.STARTED, DomainState.RUNNING), 0);
    t.applyVmEvent(ev('h3', 1, E.STARTED, DomainState.RUNNING, { uuid: U2, name: 'vm2' }), 0);
    t.applyInventory(
      { host: 'h2', epoch: 100, seq: 5, vms: [{ uuid: U2, name: 'vm2', state: 5 }] },
      0,
    );
    expect(t.claims(U1)).toHaveLength(0);
    expect(t.claims(U2).map((c) => [c.host, c.state])).toEqual([
      ['h3', DomainState.RUNNING],
      ['h2', DomainState.SHUTOFF],
    ]);
  });

  test('events at or below the snapshot position are ignored; newer ones apply', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyInventory({ host: 'h2', epoch: 100, seq: 10, vms: [] }, 0);
    expect(t.applyVmEvent(ev('h2', 9, E.STARTED, DomainState.RUNNING), 0)).toBe('stale');
    expect(t.applyVmEvent(ev('h2', 11, E.STARTED, DomainState.RUNNING), 0)).toBe('applied');
  });

  test('an older snapshot is stale; an event newer than a later-arriving snapshot survives it', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyVmEvent(ev('h2', 12, E.STARTED, DomainState.RUNNING), 0);
    expect(t.applyInventory({ host: 'h2', epoch: 100, seq: 10, vms: [] }, 0)).toBe('applied');
    expect(t.claims(U1)).toHaveLength(1);
    expect(t.applyInventory({ host: 'h2', epoch: 100, seq: 9, vms: [] }, 0)).toBe('stale');
  });

  test('a removal newer than a snapshot is not undone by that snapshot', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyVmEvent(ev('h2', 12, E.UNDEFINED, DomainState.SHUTOFF), 0);
    t.applyInventory(
      { host: 'h2', epoch: 100, seq: 10, vms: [{ uuid: U1, name: 'vm1', state: 1 }] },
      0,
    );
    expect(t.claims(U1)).toHaveLength(0);
  });

  test('tombstones are dropped once a newer snapshot covers them', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyVmEvent(ev('h2', 1, E.STARTED, DomainState.RUNNING), 0);
    t.applyVmEvent(ev('h2', 2, E.UNDEFINED, DomainState.SHUTOFF), 0);
    expect(t.stats().tombstones).toBe(1);
    t.applyInventory({ host: 'h2', epoch: 100, seq: 3, vms: [] }, 0);
    expect(t.stats().tombstones).toBe(0);
  });

  test('list is cluster-wide, one entry per VM, running claim preferred', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyInventory(
      { host: 'h1', epoch: 1, seq: 1, vms: [{ uuid: U1, name: 'vm1', state: 5 }] },
      0,
    );
    t.applyInventory(
      {
        host: 'h3',
        epoch: 1,
        seq: 1,
        vms: [
          { uuid: U1, name: 'vm1', state: 1 },
          { uuid: U2, name: 'vm2', state: 3 },
        ],
      },
      0,
    );
    const l = t.list().sort((a, b) => a.name.localeCompare(b.name));
    expect(l.map((e) => [e.name, e.state, e.hosts.sort()])).toEqual([
      ['vm1', 1, ['h1', 'h3']],
      ['vm2', 3, ['h3']],
    ]);
  });
});

describe('OwnershipTable liveness and evidence', () => {
  test('alive, suspect after two missed beats, dead after dead_after; self is always alive', () => {
    const t = new OwnershipTable('h1', HB);
    expect(t.livenessOf('h2', 0)).toBe('unknown');
    t.applyHeartbeat({ host: 'h2', epoch: 1, seq: 1, sentAt: 1000 }, 1000);
    expect(t.livenessOf('h2', 2000)).toBe('alive');
    expect(t.livenessOf('h2', 3500)).toBe('suspect');
    expect(t.livenessOf('h2', 6001)).toBe('dead');
    expect(t.livenessOf('h1', 1e12)).toBe('alive');
  });

  test('a stale heartbeat does not refresh liveness', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyHeartbeat({ host: 'h2', epoch: 1, seq: 5, sentAt: 1000 }, 1000);
    expect(t.applyHeartbeat({ host: 'h2', epoch: 1, seq: 4, sentAt: 900 }, 9000)).toBe('stale');
    expect(t.livenessOf('h2', 9000)).toBe('dead');
  });

  test('evidence newer than the last heartbeat marks the host fenced', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyHeartbeat({ host: 'h3', epoch: 1, seq: 1, sentAt: 1000 }, 1000);
    t.applyEvidence({ host: 'h3', fencedAt: 900, by: 'op' }, 1100);
    expect(t.isFenced('h3')).toBe(false); // older than its last heartbeat
    t.applyEvidence({ host: 'h3', fencedAt: 2000, by: 'op' }, 2100);
    expect(t.isFenced('h3')).toBe(true);
  });

  test('with a time given, evidence counts only once the host stopped heartbeating', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyHeartbeat({ host: 'h3', epoch: 1, seq: 1, sentAt: 1000 }, 1000);
    t.applyEvidence({ host: 'h3', fencedAt: 1500, by: 'op' }, 1500);
    expect(t.isFenced('h3', 1600)).toBe(false); // still alive
    expect(t.isFenced('h3', 3500)).toBe(true); // two beats missed
    expect(t.hostInfo('h3', 3500)).toMatchObject({ liveness: 'suspect', fenced: true });
  });

  test('a heartbeat after the evidence (the host came back) cancels it', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyHeartbeat({ host: 'h3', epoch: 1, seq: 1, sentAt: 1000 }, 1000);
    t.applyEvidence({ host: 'h3', fencedAt: 2000, by: 'op' }, 2000);
    t.applyHeartbeat({ host: 'h3', epoch: 5000, seq: 1, sentAt: 5000 }, 5000);
    expect(t.isFenced('h3')).toBe(false);
  });

  test('evidence naming an older boot epoch does not cover a newer incarnation', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyHeartbeat({ host: 'h3', epoch: 2, seq: 1, sentAt: 1000 }, 1000);
    t.applyEvidence({ host: 'h3', epoch: 1, fencedAt: 2000, by: 'op' }, 2000);
    expect(t.isFenced('h3')).toBe(false);
  });

  test('fenced hosts list their VMs as off', () => {
    const t = new OwnershipTable('h1', HB);
    t.applyVmEvent(ev('h3', 1, E.STARTED, DomainState.RUNNING), 0);
    t.applyHeartbeat({ host: 'h3', epoch: 1, seq: 1, sentAt: 1000 }, 1000);
    t.applyEvidence({ host: 'h3', fencedAt: 2000, by: 'op' }, 2000);
    expect(t.list()[0]?.state).toBe(DomainState.SHUTOFF);
  });
});
