import { OwnershipTable } from '../../src/routing/table.js';
import {
  combineReplies,
  decideRoute,
  outcomeWithoutExecution,
  validateReply,
  type HostReply,
} from '../../src/routing/route.js';
import { DomainState, Response } from '../../src/protocol/constants.js';
import { LifecycleEventType as E } from '../../src/libvirt/hypervisor.js';
import type { FenceAction } from '../../src/backends/backend.js';

const U1 = '11111111-0000-4000-8000-000000000001';
const U2 = '11111111-0000-4000-8000-000000000002';
const HB = { heartbeatIntervalMs: 1000, deadAfterMs: 5000 };
const NOW = 10_000;

function table(): OwnershipTable {
  const t = new OwnershipTable('h1', HB);
  for (const h of ['h2', 'h3']) t.applyHeartbeat({ host: h, epoch: 1, seq: 1, sentAt: NOW }, NOW);
  return t;
}
function run(
  t: OwnershipTable,
  host: string,
  seq: number,
  state: number = DomainState.RUNNING,
  uuid = U1,
  name = 'vm1',
): void {
  const event = state === DomainState.SHUTOFF ? E.STOPPED : E.STARTED;
  t.applyVmEvent({ host, epoch: 1, seq, uuid, name, event, detail: 0, state }, NOW);
}
const ok = (state: number | null = DomainState.SHUTOFF): HostReply => ({
  code: 0,
  reason: 'ok',
  state,
});

describe('decideRoute', () => {
  test('a VM on this host is local', () => {
    const t = table();
    run(t, 'h1', 1);
    expect(decideRoute(t, 'vm1', NOW)).toMatchObject({ kind: 'local', hosts: ['h1'], uuid: U1 });
  });

  test('a VM on another live host is remote to that host', () => {
    const t = table();
    run(t, 'h3', 1);
    expect(decideRoute(t, U1.toUpperCase(), NOW)).toMatchObject({ kind: 'remote', hosts: ['h3'] });
  });

  test('a suspect owner (missed beats, not yet dead) is still asked', () => {
    const t = table();
    run(t, 'h3', 1);
    expect(decideRoute(t, 'vm1', NOW + 3000)).toMatchObject({ kind: 'remote', hosts: ['h3'] });
  });

  test('during a migration the request goes to ALL running claimants', () => {
    const t = table();
    run(t, 'h2', 1);
    run(t, 'h3', 1, DomainState.PAUSED);
    expect(decideRoute(t, 'vm1', NOW, 'off')).toMatchObject({
      kind: 'remote',
      hosts: ['h2', 'h3'],
    });
  });

  test('a stopped copy elsewhere is not a target while another host runs it', () => {
    const t = table();
    run(t, 'h2', 1, DomainState.SHUTOFF);
    run(t, 'h3', 1);
    expect(decideRoute(t, 'vm1', NOW, 'off').hosts).toEqual(['h3']);
  });

  test('on for a VM running nowhere: every host picks the same one with a definition (sim seed 271)', () => {
    // Seen from h3, which has a definition too: still h2, as every other host decides.
    const h3 = new OwnershipTable('h3', HB);
    for (const h of ['h1', 'h2'])
      h3.applyHeartbeat({ host: h, epoch: 1, seq: 1, sentAt: NOW }, NOW);
    run(h3, 'h3', 1, DomainState.SHUTOFF);
    run(h3, 'h2', 1, DomainState.SHUTOFF);
    expect(decideRoute(h3, 'vm1', NOW, 'on')).toMatchObject({ kind: 'remote', hosts: ['h2'] });
  });

  test('on for a VM running nowhere goes to exactly one host with its definition', () => {
    const t = table();
    run(t, 'h3', 1, DomainState.SHUTOFF);
    run(t, 'h2', 1, DomainState.SHUTOFF);
    expect(decideRoute(t, 'vm1', NOW, 'on').hosts).toEqual(['h2']);
    run(t, 'h1', 1, DomainState.SHUTOFF);
    expect(decideRoute(t, 'vm1', NOW, 'on')).toMatchObject({ kind: 'local', hosts: ['h1'] });
    expect(decideRoute(t, 'vm1', NOW, 'off').hosts).toEqual(['h1', 'h2', 'h3']);
  });

  test('unknown VM; two VMs sharing a name are ambiguous', () => {
    const t = table();
    expect(decideRoute(t, 'nosuch', NOW).kind).toBe('unknown');
    run(t, 'h2', 1, DomainState.RUNNING, U1, 'same');
    run(t, 'h3', 1, DomainState.RUNNING, U2, 'same');
    expect(decideRoute(t, 'same', NOW).kind).toBe('ambiguous');
    expect(decideRoute(t, U2, NOW).hosts).toEqual(['h3']);
  });

  test('an owner that stopped heartbeating is owner-dead', () => {
    const t = table();
    run(t, 'h3', 1);
    expect(decideRoute(t, 'vm1', NOW + 5001)).toMatchObject({ kind: 'owner-dead', hosts: ['h3'] });
  });

  test('one dead claimant among live ones still makes the route owner-dead', () => {
    const t = table();
    run(t, 'h2', 1);
    run(t, 'h3', 1);
    t.applyHeartbeat({ host: 'h2', epoch: 1, seq: 2, sentAt: NOW + 5000 }, NOW + 5000);
    expect(decideRoute(t, 'vm1', NOW + 5001)).toMatchObject({ kind: 'owner-dead', hosts: ['h3'] });
  });

  test('evidence newer than the dead owner last heartbeat: owner-fenced', () => {
    const t = table();
    run(t, 'h3', 1);
    t.applyEvidence({ host: 'h3', fencedAt: NOW + 100, by: 'test' }, NOW + 6000);
    expect(decideRoute(t, 'vm1', NOW + 6001)).toMatchObject({
      kind: 'owner-fenced',
      hosts: ['h3'],
    });
  });

  test('evidence older than the last heartbeat does not help', () => {
    const t = table();
    run(t, 'h3', 1);
    t.applyEvidence({ host: 'h3', fencedAt: NOW - 100, by: 'test' }, NOW + 6000);
    expect(decideRoute(t, 'vm1', NOW + 6001).kind).toBe('owner-dead');
  });

  test('a fenced claimant plus a live one: only the live one executes', () => {
    const t = table();
    run(t, 'h2', 1);
    run(t, 'h3', 1);
    t.applyEvidence({ host: 'h3', fencedAt: NOW + 100, by: 'test' }, NOW + 200);
    // h3 silent for more than two beats (suspect), h2 too but neither is dead yet
    expect(decideRoute(t, 'vm1', NOW + 2500)).toMatchObject({
      kind: 'remote',
      hosts: ['h2'],
      fenced: ['h3'],
    });
  });

  test('evidence about a host that still heartbeats is not trusted (no success without execution)', () => {
    const t = table();
    run(t, 'h3', 1);
    t.applyEvidence({ host: 'h3', fencedAt: NOW + 100, by: 'test' }, NOW + 200);
    expect(decideRoute(t, 'vm1', NOW + 300)).toMatchObject({
      kind: 'remote',
      hosts: ['h3'],
      fenced: [],
    });
    expect(decideRoute(t, 'vm1', NOW + 2500)).toMatchObject({
      kind: 'owner-fenced',
      hosts: ['h3'],
    });
  });
});

describe('answers without execution', () => {
  const t = table();
  const unknown = decideRoute(t, 'nosuch', NOW);
  test.each<[FenceAction, number]>([
    ['status', Response.OFF],
    ['off', Response.FAIL],
    ['on', Response.FAIL],
    ['reboot', Response.FAIL],
  ])('unknown VM, %s → %i (the libvirt backend answers)', (action, code) => {
    expect(outcomeWithoutExecution(unknown, action)).toEqual({ code, reason: 'unknown-vm' });
  });

  test.each<FenceAction>(['status', 'off', 'on', 'reboot'])(
    'owner-dead, %s → FAIL owner-dead',
    (action) => {
      const t2 = table();
      run(t2, 'h3', 1);
      const d = decideRoute(t2, 'vm1', NOW + 60_000);
      expect(outcomeWithoutExecution(d, action)).toEqual({
        code: Response.FAIL,
        reason: 'owner-dead',
      });
    },
  );

  test.each<[FenceAction, number, string]>([
    ['off', Response.SUCCESS, 'owner-fenced'],
    ['reboot', Response.SUCCESS, 'owner-fenced'],
    ['status', Response.OFF, 'owner-fenced'],
    ['on', Response.FAIL, 'owner-fenced-cannot-start'],
  ])('owner-fenced, %s → %i %s', (action, code, reason) => {
    const t2 = table();
    run(t2, 'h3', 1);
    t2.applyEvidence({ host: 'h3', fencedAt: NOW + 1, by: 'test' }, NOW + 1);
    const d = decideRoute(t2, 'vm1', NOW + 60_000);
    expect(outcomeWithoutExecution(d, action)).toEqual({ code, reason });
  });

  test('local and remote decisions have no pre-computed answer', () => {
    const t2 = table();
    run(t2, 'h3', 1);
    expect(outcomeWithoutExecution(decideRoute(t2, 'vm1', NOW), 'off')).toBeUndefined();
  });
});

describe('combining replies (success only when known off)', () => {
  test('off succeeds when the owner confirms SHUTOFF or the domain is gone', () => {
    expect(combineReplies('off', ['h3'], new Map([['h3', ok()]]))).toMatchObject({
      code: 0,
      executedBy: 'h3',
    });
    expect(combineReplies('off', ['h3'], new Map([['h3', ok(null)]])).code).toBe(0);
  });

  test('off "success" with the VM still running is turned into FAIL unconfirmed-off', () => {
    expect(validateReply('off', ok(DomainState.RUNNING))).toMatchObject({
      code: 1,
      reason: 'unconfirmed-off',
    });
    expect(combineReplies('off', ['h3'], new Map([['h3', ok(DomainState.PAUSED)]]))).toMatchObject({
      code: 1,
      reason: 'unconfirmed-off',
    });
  });

  test('no reply before the deadline → FAIL no-reply', () => {
    // Nothing is known to have been executed: no executedBy.
    expect(combineReplies('off', ['h3'], new Map([['h3', undefined]]))).toEqual({
      code: 1,
      reason: 'no-reply',
    });
  });

  test('off to two claimants: one missing reply fails the whole request', () => {
    const r = combineReplies(
      'off',
      ['h2', 'h3'],
      new Map<string, HostReply | undefined>([
        ['h2', ok()],
        ['h3', undefined],
      ]),
    );
    expect(r).toEqual({ code: 1, reason: 'no-reply' }); // nothing executed: no executedBy
  });

  test('off to two claimants: both confirmed → success by both', () => {
    const r = combineReplies(
      'off',
      ['h2', 'h3'],
      new Map([
        ['h2', ok()],
        ['h3', ok()],
      ]),
    );
    expect(r).toEqual({ code: 0, reason: 'ok', executedBy: 'h2,h3' });
  });

  test('a failing claimant fails the request with its reason', () => {
    const r = combineReplies(
      'off',
      ['h2', 'h3'],
      new Map<string, HostReply>([
        ['h2', ok()],
        ['h3', { code: 1, reason: 'destroy-failed', state: 1 }],
      ]),
    );
    expect(r).toEqual({ code: 1, reason: 'destroy-failed', executedBy: 'h3' });
  });

  test('status: ON from any claimant is ON; OFF only if all say OFF; a silent one → FAIL', () => {
    const on: HostReply = { code: 0, reason: 'ok', state: 1 };
    const off: HostReply = { code: 2, reason: 'ok', state: 5 };
    expect(
      combineReplies(
        'status',
        ['h2', 'h3'],
        new Map([
          ['h2', off],
          ['h3', on],
        ]),
      ).code,
    ).toBe(0);
    expect(
      combineReplies(
        'status',
        ['h2', 'h3'],
        new Map([
          ['h2', off],
          ['h3', off],
        ]),
      ).code,
    ).toBe(2);
    expect(
      combineReplies(
        'status',
        ['h2', 'h3'],
        new Map<string, HostReply | undefined>([
          ['h2', off],
          ['h3', undefined],
        ]),
      ),
    ).toMatchObject({ code: 1, reason: 'no-reply' });
  });

  test('an out-of-range code is a failure', () => {
    expect(validateReply('status', { code: 200, reason: 'ok', state: null }).code).toBe(1);
  });
});
