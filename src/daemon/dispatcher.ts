/**
 * Turns a listener's request into a backend call: request id, permission map, deadline, one
 * structured log line per request. Listeners stay transport-only.
 */
import { randomUUID } from 'node:crypto';
import type { Backend, FenceAction, RequestContext } from '../backends/backend.js';
import type { IncomingRequest, RequestHandler, RequestResult } from '../listeners/listener.js';
import { Op, Response, opName, responseName } from '../protocol/constants.js';
import type { PermissionMap } from '../routing/permissions.js';
import type { Logger } from '../util/logger.js';
import type { RequestObservation } from './metrics.js';

const FENCE_ACTIONS: Record<number, FenceAction> = {
  [Op.NULL]: 'null',
  [Op.OFF]: 'off',
  [Op.ON]: 'on',
  [Op.REBOOT]: 'reboot',
  [Op.STATUS]: 'status',
  [Op.DEVSTATUS]: 'devstatus',
};

/** Operations subject to the permission map (docs/protocol.md §13); null and devstatus are not. */
const CHECKED_OPS = new Set<number>([Op.OFF, Op.ON, Op.REBOOT, Op.STATUS]);

export interface DispatcherOptions {
  backend: Backend;
  permissions: PermissionMap;
  logger: Logger;
  /** Upper bound for one backend call; the answer is FAIL after it. */
  requestTimeoutMs?: number;
  /** Called once per answered request (metrics). */
  observe?: (o: RequestObservation) => void;
}

export function createDispatcher(options: DispatcherOptions): RequestHandler {
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  return async (request) => {
    const started = process.hrtime.bigint();
    const ctx: RequestContext = {
      id: randomUUID().slice(0, 8),
      listener: request.listener,
      source: request.source,
      seqno: request.seqno,
      deadline: Date.now() + timeoutMs,
    };
    const result = await withDeadline(execute(options, request, ctx), ctx.deadline);
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    options.observe?.({
      listener: request.listener,
      action: opName(request.op),
      result: responseName(result.code),
      reason: result.reason,
      executedBy: result.executedBy,
      durationMs,
    });
    options.logger.info('request', {
      id: ctx.id,
      listener: request.listener,
      source: request.source ?? 'unknown',
      target: request.target,
      action: opName(request.op),
      seqno: request.seqno,
      result: responseName(result.code),
      reason: result.reason,
      executed_by: result.executedBy,
      entries: result.hostlist?.length,
      duration_ms: Math.round(durationMs * 100) / 100,
    });
    return result;
  };
}

async function execute(
  { backend, permissions }: DispatcherOptions,
  request: IncomingRequest,
  ctx: RequestContext,
): Promise<RequestResult> {
  try {
    if (request.op === Op.HOSTLIST) {
      const list = await backend.hostlist(ctx);
      const hostlist = list.entries.filter((e) =>
        permissions.allows(request.source, e.uuid, e.name),
      );
      return { code: Response.HOSTLIST, reason: 'ok', hostlist, hostlistCode: list.code };
    }
    const action = FENCE_ACTIONS[request.op];
    if (action === undefined) return { code: Response.FAIL, reason: 'no-handler' };
    if (CHECKED_OPS.has(request.op) && !permissions.allows(request.source, request.target)) {
      return { code: Response.PERM, reason: 'permission-denied' };
    }
    return await backend.fence(action, request.target, ctx);
  } catch (err) {
    // Backends attach a machine-readable reason to errors they understand (libvirt-unavailable, …).
    const reason = (err as { reason?: unknown }).reason;
    return {
      code: Response.FAIL,
      reason: typeof reason === 'string' ? reason : `backend-error: ${(err as Error).message}`,
    };
  }
}

/** A backend that overruns the deadline gets FAIL: never a late or implied success. */
function withDeadline(work: Promise<RequestResult>, deadline: number): Promise<RequestResult> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<RequestResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ code: Response.FAIL, reason: 'backend-timeout' }),
      Math.max(0, deadline - Date.now()),
    );
  });
  return Promise.race([work, expiry]).finally(() => clearTimeout(timer));
}
