/**
 * Route decisions and result rules for broker-routed fencing (docs/routing.md §5, §6). Pure
 * functions over the ownership table; the AMQP backend does the I/O.
 *
 * Safety rules (each one unit-tested in test/unit/routing-route.test.ts):
 *  - success for off is only reported when the VM is known off: every live claimant replied
 *    success with the state after SHUTOFF (or the domain gone), or the claimant was fenced;
 *  - a claimant that did not reply before the deadline makes the whole request FAIL `no-reply`;
 *  - a claimant whose heartbeats stopped (dead) makes it FAIL `owner-dead`, unless fencing
 *    evidence newer than its last heartbeat exists (then off/reboot succeed `owner-fenced`,
 *    status says OFF);
 *  - an unknown VM gets the libvirt backend's answers: status 2, off/on/reboot 1.
 */
import { DomainState, Response } from '../protocol/constants.js';
import type { FenceAction, FenceOutcome, FenceReason } from '../core/fence.js';
import { isActiveState, type OwnershipTable } from './table.js';

export type RouteKind =
  'local' | 'remote' | 'unknown' | 'ambiguous' | 'owner-dead' | 'owner-fenced' | 'migrated-away';

export interface RouteDecision {
  kind: RouteKind;
  /** Hosts that must execute (local/remote), or the dead/fenced claimants. */
  hosts: string[];
  /** VM uuid when the target resolved to exactly one VM. */
  uuid: string | undefined;
  /** Claimants covered by fencing evidence (their copy of the VM counts as off). */
  fenced: string[];
  reason: FenceReason;
  /** Reboot of a VM several hosts run: the one host that starts it again (the others power off). */
  restartOn?: string;
}

/** Every reason string the routing layer produces (distinct, logged). */
export const RouteReason = {
  local: 'local-owner',
  remote: 'remote-owner',
  unknown: 'unknown-vm',
  ambiguous: 'ambiguous-name',
  ownerDead: 'owner-dead',
  ownerFenced: 'owner-fenced',
  ownerFencedOn: 'owner-fenced-cannot-start',
  noReply: 'no-reply',
  brokerUnavailable: 'broker-unavailable',
  unconfirmedOff: 'unconfirmed-off',
  deadlinePassed: 'deadline-passed',
  notOwner: 'not-owner',
  notSynced: 'not-synced',
  migratedAway: 'migrated-away',
  staleRequest: 'stale-request',
  nullOp: 'null-op',
  devstatus: 'devstatus',
} as const satisfies Record<string, FenceReason>;

/**
 * Where must `target` be executed? `action` only matters for `on` of a VM that runs nowhere:
 * then exactly one host with its definition starts it, the lowest host id, whichever host
 * decides (never several).
 */
export function decideRoute(
  table: OwnershipTable,
  target: string,
  now: number,
  action: FenceAction = 'status',
): RouteDecision {
  const uuids = table.resolve(target);
  if (uuids.length === 0) {
    return { kind: 'unknown', hosts: [], uuid: undefined, fenced: [], reason: RouteReason.unknown };
  }
  if (uuids.length > 1) {
    return {
      kind: 'ambiguous',
      hosts: [],
      uuid: undefined,
      fenced: [],
      reason: RouteReason.ambiguous,
    };
  }
  const uuid = uuids[0] as string;
  const claims = table.claims(uuid);
  const fenced: string[] = [];
  const dead: string[] = [];
  const live: (typeof claims)[number][] = [];
  for (const c of claims) {
    if (table.isFenced(c.host, now)) fenced.push(c.host);
    else if (table.livenessOf(c.host, now) === 'dead') dead.push(c.host);
    else live.push(c);
  }
  fenced.sort();
  dead.sort();
  if (dead.length > 0) {
    // A dead claimant may still run the VM (partitioned, not fenced): nothing can be promised.
    return { kind: 'owner-dead', hosts: dead, uuid, fenced, reason: RouteReason.ownerDead };
  }
  if (live.length === 0) {
    return { kind: 'owner-fenced', hosts: fenced, uuid, fenced, reason: RouteReason.ownerFenced };
  }
  const active = live.filter((c) => isActiveState(c.state)).map((c) => c.host);
  if (active.length === 0 && claims.length === 1 && claims[0]?.migratedAway) {
    // Its only host saw it leave for another host, which has not told us yet: it runs there.
    return {
      kind: 'migrated-away',
      hosts: [claims[0].host],
      uuid,
      fenced,
      reason: RouteReason.migratedAway,
    };
  }
  let hosts: string[];
  if (active.length > 0) {
    hosts = active.sort();
  } else {
    const defined = live.map((c) => c.host).sort();
    // Every host must pick the same one: copies of one request reach several hosts, and two
    // hosts each starting "their" copy would run the VM twice.
    hosts = action === 'on' ? [defined[0] as string] : defined;
  }
  const local = hosts.length === 1 && hosts[0] === table.self;
  // A migration under way: the source runs, the incoming copy is paused until switch-over.
  const running = live
    .filter((c) => c.state === DomainState.RUNNING)
    .map((c) => c.host)
    .sort();
  return {
    kind: local ? 'local' : 'remote',
    hosts,
    uuid,
    fenced,
    reason: local ? RouteReason.local : RouteReason.remote,
    ...(hosts.length > 1 ? { restartOn: running[0] ?? hosts[0] } : {}),
  };
}

/**
 * The answer for decisions that execute nowhere (unknown, ambiguous, owner-dead,
 * owner-fenced). Undefined for local/remote.
 */
export function outcomeWithoutExecution(
  decision: RouteDecision,
  action: FenceAction,
): FenceOutcome | undefined {
  switch (decision.kind) {
    case 'unknown':
      // Same answers as the libvirt backend for a domain it cannot find (docs/protocol.md §12).
      return {
        code: action === 'status' ? Response.OFF : Response.FAIL,
        reason: RouteReason.unknown,
      };
    case 'ambiguous':
      return { code: Response.FAIL, reason: RouteReason.ambiguous };
    case 'owner-dead':
      return { code: Response.FAIL, reason: RouteReason.ownerDead };
    case 'migrated-away':
      return { code: Response.FAIL, reason: RouteReason.migratedAway };
    case 'owner-fenced':
      if (action === 'status') return { code: Response.OFF, reason: RouteReason.ownerFenced };
      if (action === 'off' || action === 'reboot') {
        return { code: Response.SUCCESS, reason: RouteReason.ownerFenced };
      }
      return { code: Response.FAIL, reason: RouteReason.ownerFencedOn };
    default:
      return undefined;
  }
}

/** What one executing host answered (the fence-reply body, reduced). */
export interface HostReply {
  code: number;
  reason: FenceReason;
  /** virDomainState after the action; null when the domain no longer exists. */
  state: number | null;
}

/**
 * Check one host's reply for consistency: a success for `off` must come with the VM off
 * (state SHUTOFF, or gone). Anything else is turned into a FAIL.
 */
export function validateReply(action: FenceAction, reply: HostReply): HostReply {
  if (action === 'off' && reply.code === Response.SUCCESS) {
    if (reply.state !== null && reply.state !== DomainState.SHUTOFF) {
      return { code: Response.FAIL, reason: RouteReason.unconfirmedOff, state: reply.state };
    }
  }
  if (![Response.SUCCESS, Response.FAIL, Response.OFF, Response.PERM].includes(reply.code as 0)) {
    return { code: Response.FAIL, reason: 'bad-code', state: reply.state };
  }
  return reply;
}

/**
 * Combine the replies of every host a request went to. `replies` has an entry per target;
 * undefined means no reply arrived before the deadline.
 */
export function combineReplies(
  action: FenceAction,
  targets: readonly string[],
  replies: ReadonlyMap<string, HostReply | undefined>,
): FenceOutcome {
  const executedBy = targets.join(',');
  const checked: Array<[string, HostReply]> = [];
  const missing: string[] = [];
  for (const host of targets) {
    const r = replies.get(host);
    if (r === undefined) missing.push(host);
    else checked.push([host, validateReply(action, r)]);
  }
  if (action === 'status') {
    // ON if any live claimant says it runs: true whatever the others say.
    const on = checked.find(([, r]) => r.code === Response.SUCCESS);
    if (on) return { code: Response.SUCCESS, reason: on[1].reason, executedBy: on[0] };
  }
  if (missing.length > 0) {
    // Nothing is known to have been executed: no executedBy (logs must not claim one).
    return { code: Response.FAIL, reason: RouteReason.noReply };
  }
  const failed = checked.find(([, r]) => r.code !== Response.SUCCESS && r.code !== Response.OFF);
  if (failed) return { code: Response.FAIL, reason: failed[1].reason, executedBy: failed[0] };
  if (action === 'status') {
    // Nobody said ON, nobody failed: all OFF.
    return { code: Response.OFF, reason: checked[0]?.[1].reason ?? 'ok', executedBy };
  }
  const notOk = checked.find(([, r]) => r.code !== Response.SUCCESS);
  if (notOk) {
    // off/on/reboot answered 2: only the libvirt backend's "never" case; pass through.
    return { code: notOk[1].code, reason: notOk[1].reason, executedBy: notOk[0] };
  }
  return { code: Response.SUCCESS, reason: checked[0]?.[1].reason ?? 'ok', executedBy };
}
