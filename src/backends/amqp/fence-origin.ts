/**
 * The origin side of a routed fence request, written once for the daemon's routed backend and
 * the CLI's `virtfence fence`: given a route decision, answer without execution where the
 * decision allows it, otherwise send a signed fence request to every host the decision names
 * (or execute locally, for the daemon's own VMs), wait for each reply until the deadline, and
 * combine the replies with the safety rules of src/routing.
 *
 * While a reply is awaited, the target host is watched: once it is declared dead, or it is
 * suspect and the deadline would come before it could be declared dead, the wait ends at once
 * with FAIL `owner-dead` instead of `no-reply` at the deadline.
 */
import { Response } from '../../protocol/constants.js';
import { isUuid } from '../../protocol/uuid.js';
import type {
  FenceReplyBody,
  FenceReplyMessage,
  FenceRequestBody,
} from '../../messages/schemas.js';
import { receivedReplyKey, replyKey } from '../../messages/reply.js';
import {
  RouteReason,
  combineReplies,
  outcomeWithoutExecution,
  validateReply,
  type HostReply,
  type RouteDecision,
} from '../../routing/route.js';
import type { Liveness } from '../../routing/table.js';
import {
  asFenceReason,
  type FenceAction,
  type FenceOutcome,
  type FenceReason,
} from '../../core/fence.js';
import type { Clock, TimerHandle } from './clock.js';

/** One host's answer as the origin saw it. */
export interface ReplyRecord extends HostReply {
  host: string;
  /** Request sent (or execution started) → reply received, origin clock. */
  latencyMs: number;
  /** The executing host's timings, when the reply came over the bus. */
  timings?: FenceReplyBody['timings'];
}

export interface OriginRequest {
  id: string;
  action: FenceAction;
  target: string;
  decision: RouteDecision;
  /** Absolute time (origin clock) until which replies are awaited. */
  waitUntil: number;
  /** The deadline written into the request: the executing host refuses to act after it. */
  requestDeadline: number;
  listener: string;
  requester: string;
  seqno: number;
}

/**
 * The action each host of a decision executes. A reboot of a VM that several hosts run (a
 * migration under way) restarts it on one host only, the first running claimant, and
 * powers off the other copies: restarting every copy would run the VM twice.
 */
export function actionFor(
  request: Pick<OriginRequest, 'action' | 'decision'>,
  host: string,
): FenceAction {
  const { action, decision } = request;
  if (action !== 'reboot' || decision.hosts.length < 2) return action;
  const first = decision.restartOn ?? decision.hosts[0];
  return host === first ? 'reboot' : 'off';
}

export interface OriginResult {
  outcome: FenceOutcome;
  /** One per host the request went to; `reply` undefined: none before the deadline. */
  replies: Array<{ host: string; reply: ReplyRecord | undefined }>;
  /** False when answered without execution. */
  sent: boolean;
}

export interface FenceOriginOptions {
  /** The id this side sends as (`originHost`); the daemon's host id or the CLI's observer id. */
  self: string;
  clock: Clock;
  /** Puts a fence request on a host's request queue; rejects when the broker did not take it. */
  send(host: string, body: FenceRequestBody): Promise<void>;
  /** Executes on this host (the daemon's own VMs); absent for an observer, which owns none. */
  executeLocal?: (request: OriginRequest) => Promise<HostReply>;
  /** The boot epoch of a host as last heard (written into requests as `toEpoch`). */
  epochOf?: (host: string) => number | undefined;
  /** Liveness of a host now, for ending waits on hosts that stopped heartbeating. */
  liveness?: (host: string, now: number) => Liveness;
  /** How long a host stays suspect at most before it counts as dead (dead_after, ms). */
  deadAfterMs?: number;
  /** How often waits are checked against liveness (ms). */
  checkEveryMs?: number;
  /** Told when a request could not be handed to the broker. */
  onSendFailed?: (host: string, id: string, error: unknown) => void;
}

interface Waiter {
  host: string;
  sentAt: number;
  waitUntil: number;
  resolve: (reply: ReplyRecord | undefined) => void;
  timer: TimerHandle;
}

export class FenceOrigin {
  private readonly waiters = new Map<string, Waiter>();
  private checkTimer: TimerHandle | undefined;
  /** Requests handed to the broker (each host of each request counts once). */
  sent = 0;

  constructor(private readonly options: FenceOriginOptions) {}

  /** Requests still waiting for a reply. */
  get pending(): number {
    return this.waiters.size;
  }

  /** Route decision → answer (without execution where possible) → send → combine. */
  async run(request: OriginRequest): Promise<OriginResult> {
    const { decision, action } = request;
    const fixed = outcomeWithoutExecution(decision, action);
    // Answered without execution: nobody executed it (no executedBy).
    if (fixed) return { outcome: fixed, replies: [], sent: false };
    const replies = await Promise.all(
      decision.hosts.map(async (host) => ({ host, reply: await this.replyFrom(host, request) })),
    );
    const map = new Map<string, HostReply | undefined>();
    for (const r of replies) map.set(r.host, r.reply);
    return { outcome: combineReplies(action, decision.hosts, map), replies, sent: true };
  }

  /**
   * A verified fence-reply. It settles the wait for its request id and signer only (a reply
   * whose signer says another host executed it binds to nothing). False when nobody waits.
   */
  deliver(message: FenceReplyMessage, receivedAt: number): boolean {
    const k = receivedReplyKey(message);
    const w = k === undefined ? undefined : this.waiters.get(k);
    if (k === undefined || !w) return false;
    const body = message.body;
    this.settle(k, {
      host: message.from,
      code: body.code,
      reason: asFenceReason(body.reason),
      state: body.vmState,
      latencyMs: receivedAt - w.sentAt,
      timings: body.timings,
    });
    return true;
  }

  /** Ends every wait with FAIL `reason` (broker connection lost, shutdown). */
  failAll(reason: FenceReason): void {
    for (const [k, w] of [...this.waiters])
      this.settle(k, failed(w.host, reason, w.sentAt, this.now()));
  }

  /** Ends the waits on hosts that stopped heartbeating (see the module comment). */
  checkOwners(): void {
    const liveness = this.options.liveness;
    if (!liveness) return;
    const now = this.now();
    for (const [k, w] of [...this.waiters]) {
      const l = liveness(w.host, now);
      // A suspect host is declared dead within dead_after of its last heartbeat; when less
      // than that is left of the wait, waiting longer can only end in no-reply.
      const hopeless =
        l === 'dead' ||
        (l === 'suspect' &&
          this.options.deadAfterMs !== undefined &&
          w.waitUntil - now < this.options.deadAfterMs);
      if (hopeless) this.settle(k, failed(w.host, RouteReason.ownerDead, w.sentAt, now));
    }
  }

  stop(): void {
    this.failAll('shutdown');
    this.checkTimer?.cancel();
    this.checkTimer = undefined;
  }

  private now(): number {
    return this.options.clock.now();
  }

  private async replyFrom(host: string, request: OriginRequest): Promise<ReplyRecord | undefined> {
    const started = this.now();
    const action = actionFor(request, host);
    const mine = action === request.action ? request : { ...request, action };
    if (host === this.options.self && this.options.executeLocal) {
      // Our own execution gets the same deadline as a remote one: past it, no-reply.
      const r = await this.withinWait(this.options.executeLocal(mine), request.waitUntil);
      if (r === undefined) return undefined;
      return { host, ...validateReply(action, r), latencyMs: this.now() - started };
    }
    const reply = await this.ask(host, mine);
    return reply ? { ...reply, ...validateReply(action, reply) } : undefined;
  }

  private withinWait<T>(work: Promise<T>, waitUntil: number): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      const timer = this.options.clock.setTimeout(
        () => resolve(undefined),
        Math.max(0, waitUntil - this.now()),
      );
      work.then(
        (v) => {
          timer.cancel();
          resolve(v);
        },
        (e: unknown) => {
          timer.cancel();
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  /** Sends the request to one host and waits for its reply until `waitUntil`. */
  private async ask(host: string, request: OriginRequest): Promise<ReplyRecord | undefined> {
    const k = replyKey(request.id, host);
    const now = this.now();
    const waitMs = request.waitUntil - now;
    if (waitMs <= 0) return undefined;
    const existing = this.waiters.get(k);
    if (existing) {
      // Callers of one request id normally share one attempt; if not, they share the reply.
      return new Promise((resolve) => {
        const prev = existing.resolve;
        existing.resolve = (r) => {
          prev(r);
          resolve(r);
        };
      });
    }
    const reply = new Promise<ReplyRecord | undefined>((resolve) => {
      const timer = this.options.clock.setTimeout(() => {
        this.waiters.delete(k);
        resolve(undefined);
        this.stopCheckingWhenIdle();
      }, waitMs);
      this.waiters.set(k, { host, sentAt: now, waitUntil: request.waitUntil, resolve, timer });
    });
    this.startChecking();
    this.sent++;
    const toEpoch = this.options.epochOf?.(host);
    try {
      await this.options.send(host, {
        requestId: request.id,
        originHost: this.options.self,
        listener: request.listener,
        requester: request.requester,
        target: request.target,
        targetKind: isUuid(request.target) ? 'uuid' : 'name',
        action: request.action,
        deadline: request.requestDeadline,
        toHost: host,
        fenceSeqno: request.seqno >>> 0,
        ...(toEpoch !== undefined && toEpoch > 0 ? { toEpoch } : {}),
      });
    } catch (err) {
      this.options.onSendFailed?.(host, request.id, err);
      this.settle(k, failed(host, RouteReason.brokerUnavailable, now, this.now()));
    }
    // A host already hopeless when the request left is not waited for.
    this.checkOwners();
    return reply;
  }

  private settle(k: string, reply: ReplyRecord | undefined): void {
    const w = this.waiters.get(k);
    if (!w) return;
    w.timer.cancel();
    this.waiters.delete(k);
    w.resolve(reply);
    this.stopCheckingWhenIdle();
  }

  private startChecking(): void {
    if (this.checkTimer || !this.options.liveness) return;
    const every = Math.max(10, this.options.checkEveryMs ?? 250);
    this.checkTimer = this.options.clock.setInterval(() => this.checkOwners(), every);
  }

  private stopCheckingWhenIdle(): void {
    if (this.waiters.size > 0 || !this.checkTimer) return;
    this.checkTimer.cancel();
    this.checkTimer = undefined;
  }
}

function failed(host: string, reason: FenceReason, sentAt: number, now: number): ReplyRecord {
  return { host, code: Response.FAIL, reason, state: null, latencyMs: now - sentAt };
}
