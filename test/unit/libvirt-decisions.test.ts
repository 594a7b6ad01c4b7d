/** The pure rules of the libvirt backend: docs/protocol.md §12 result table, target matching, event → state. */
import {
  Reason,
  classifyTarget,
  domainChanged,
  matchesTarget,
  offDecision,
  onDecision,
  rebootDecision,
  stateAfterEvent,
  statusOutcome,
  syntheticEvent,
} from '../../src/backends/libvirt/decisions.js';
import { LifecycleEventType as Ev, type DomainInfo } from '../../src/libvirt/hypervisor.js';
import { DomainState as S, Response } from '../../src/protocol/constants.js';

const UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f';

function dom(state: number, name = 'vm'): DomainInfo {
  return { uuid: UUID, name, state, id: state === S.SHUTOFF ? -1 : 3 };
}

const ALL_STATES = Object.values(S);
const ON_STATES = ALL_STATES.filter((s) => s !== S.SHUTOFF);

describe('status (docs/protocol.md §12)', () => {
  it('is OFF for an unknown domain and for SHUTOFF', () => {
    expect(statusOutcome(undefined)).toEqual({ code: Response.OFF, reason: Reason.NOT_FOUND });
    expect(statusOutcome(dom(S.SHUTOFF))).toEqual({ code: Response.OFF, reason: Reason.OK });
  });

  it.each(ON_STATES)(
    'is ON for state %i (paused, crashed, pmsuspended, blocked, nostate too)',
    (state) => {
      expect(statusOutcome(dom(state))).toEqual({ code: Response.SUCCESS, reason: Reason.OK });
    },
  );
});

describe('off / on / reboot decisions (docs/protocol.md §12, §14.1)', () => {
  it('unknown domain: every power action fails with not-found', () => {
    for (const decide of [offDecision, onDecision, rebootDecision]) {
      expect(decide(undefined)).toEqual({
        done: { code: Response.FAIL, reason: Reason.NOT_FOUND },
      });
    }
  });

  it('off of an off domain succeeds without action; otherwise destroys', () => {
    expect(offDecision(dom(S.SHUTOFF))).toEqual({
      done: { code: Response.SUCCESS, reason: Reason.ALREADY_OFF },
    });
    for (const state of ON_STATES) expect(offDecision(dom(state))).toEqual({ act: 'destroy' });
  });

  it('on of anything but SHUTOFF succeeds without action; SHUTOFF starts', () => {
    for (const state of ON_STATES) {
      expect(onDecision(dom(state))).toEqual({
        done: { code: Response.SUCCESS, reason: Reason.ALREADY_ON },
      });
    }
    expect(onDecision(dom(S.SHUTOFF))).toEqual({ act: 'start' });
  });

  it('reboot never powers on an off domain', () => {
    expect(rebootDecision(dom(S.SHUTOFF))).toEqual({
      done: { code: Response.SUCCESS, reason: Reason.ALREADY_OFF },
    });
    for (const state of ON_STATES) expect(rebootDecision(dom(state))).toEqual({ act: 'reboot' });
  });
});

describe('target classification (docs/protocol.md §14.3)', () => {
  it('UUID-looking targets match by UUID, case-insensitively', () => {
    const key = classifyTarget(UUID.toUpperCase());
    expect(key).toEqual({ by: 'uuid', uuid: UUID });
    expect(matchesTarget(dom(S.RUNNING), key)).toBe(true);
  });

  it('everything else matches by exact, case-sensitive name', () => {
    expect(classifyTarget('Web-1')).toEqual({ by: 'name', name: 'Web-1' });
    expect(matchesTarget(dom(S.RUNNING, 'Web-1'), classifyTarget('Web-1'))).toBe(true);
    expect(matchesTarget(dom(S.RUNNING, 'Web-1'), classifyTarget('web-1'))).toBe(false);
    // Near-UUIDs are names.
    expect(classifyTarget(UUID.slice(0, 35)).by).toBe('name');
    expect(classifyTarget(`${UUID} `).by).toBe('name');
  });
});

describe('lifecycle events and the cache', () => {
  it('maps the settling events to states', () => {
    expect(stateAfterEvent(Ev.STARTED, S.SHUTOFF)).toBe(S.RUNNING);
    expect(stateAfterEvent(Ev.RESUMED, S.PAUSED)).toBe(S.RUNNING);
    expect(stateAfterEvent(Ev.SUSPENDED, S.RUNNING)).toBe(S.PAUSED);
    expect(stateAfterEvent(Ev.STOPPED, S.RUNNING)).toBe(S.SHUTOFF);
    expect(stateAfterEvent(Ev.CRASHED, S.RUNNING)).toBe(S.CRASHED);
    expect(stateAfterEvent(Ev.PMSUSPENDED, S.RUNNING)).toBe(S.PMSUSPENDED);
  });

  it('define adds an inactive domain and keeps a known state; shutdown keeps the state', () => {
    expect(stateAfterEvent(Ev.DEFINED, undefined)).toBe(S.SHUTOFF);
    expect(stateAfterEvent(Ev.DEFINED, S.RUNNING)).toBe(S.RUNNING);
    expect(stateAfterEvent(Ev.SHUTDOWN, S.RUNNING)).toBe(S.RUNNING);
  });

  it('undefine removes an inactive domain but not a running one (it becomes transient)', () => {
    expect(stateAfterEvent(Ev.UNDEFINED, S.SHUTOFF)).toBeUndefined();
    expect(stateAfterEvent(Ev.UNDEFINED, undefined)).toBeUndefined();
    expect(stateAfterEvent(Ev.UNDEFINED, S.RUNNING)).toBe(S.RUNNING);
  });

  it('describes list differences as lifecycle events', () => {
    expect(syntheticEvent(undefined, S.SHUTOFF)).toBe(Ev.DEFINED);
    expect(syntheticEvent(undefined, S.RUNNING)).toBe(Ev.STARTED);
    expect(syntheticEvent(S.RUNNING, undefined)).toBe(Ev.UNDEFINED);
    expect(syntheticEvent(S.RUNNING, S.SHUTOFF)).toBe(Ev.STOPPED);
    expect(syntheticEvent(S.RUNNING, S.PAUSED)).toBe(Ev.SUSPENDED);
    expect(syntheticEvent(S.PAUSED, S.RUNNING)).toBe(Ev.RESUMED);
    expect(syntheticEvent(S.SHUTOFF, S.RUNNING)).toBe(Ev.STARTED);
    expect(syntheticEvent(S.RUNNING, S.CRASHED)).toBe(Ev.CRASHED);
  });

  it('counts a change only in presence, state or name (not the hypervisor id)', () => {
    expect(domainChanged(undefined, undefined)).toBe(false);
    expect(domainChanged(undefined, dom(S.RUNNING))).toBe(true);
    expect(domainChanged(dom(S.RUNNING), undefined)).toBe(true);
    expect(domainChanged(dom(S.RUNNING), { ...dom(S.RUNNING), id: 9 })).toBe(false);
    expect(domainChanged(dom(S.RUNNING), dom(S.PAUSED))).toBe(true);
    expect(domainChanged(dom(S.RUNNING, 'a'), dom(S.RUNNING, 'b'))).toBe(true);
  });
});
