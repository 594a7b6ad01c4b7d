import { toText } from '../util/errors.js';

/**
 * Typed errors of the cluster bus. Every failure keeps what the broker or the transport said
 * (the AMQP error condition and description, or the socket error code) and whether trying
 * again can help, so logs name the cause and the bus knows when to stop retrying.
 */

/** An AMQP error as the broker sent it (`amqp:unauthorized-access`, `amqp:not-found`, …). */
export interface AmqpCondition {
  condition: string;
  description: string | undefined;
}

/**
 * Where a connection attempt failed:
 * - `auth`: SASL refused the credentials (or offered no mechanism we can use);
 * - `refused`: the broker refused a link (attach answered without a terminus, or detached
 *   with an error) or closed the connection with an error condition;
 * - `protocol`: a frame could not be read or written;
 * - `transport`: the socket failed (refused, reset, TLS);
 * - `timeout`: links not attached in time;
 * - `closed`: the connection ended without an error.
 */
export type BusFailureKind = 'auth' | 'refused' | 'protocol' | 'transport' | 'timeout' | 'closed';

export class BusConnectionError extends Error {
  constructor(
    readonly kind: BusFailureKind,
    /** What failed, e.g. "connection error", "attach of virtfence.c.req.h1". */
    readonly where: string,
    readonly amqp: AmqpCondition | undefined,
    /** False when the same attempt will fail the same way (bad credentials). */
    readonly retryable: boolean,
    detail: string,
  ) {
    super(`${where}: ${detail}`);
    this.name = 'BusConnectionError';
  }
}

export type BusSendFailure =
  'not-connected' | 'released' | 'rejected' | 'modified' | 'timeout' | 'disconnected' | 'stopped';

/** A send that did not end in `accepted`, with the broker's condition when it gave one. The bus
 *  never retries a send: the caller decides (a fence request has a deadline). */
export class BusSendError extends Error {
  constructor(
    readonly reason: BusSendFailure,
    detail?: string,
    readonly amqp?: AmqpCondition,
  ) {
    super(detail ? `send failed: ${reason} (${detail})` : `send failed: ${reason}`);
    this.name = 'BusSendError';
  }
}

/** The AMQP condition carried by an error-like value (rhea errors, remote close/detach). */
export function amqpCondition(err: unknown): AmqpCondition | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const e = err as {
    condition?: unknown;
    description?: unknown;
    code?: unknown;
    message?: unknown;
  };
  const condition =
    typeof e.condition === 'string'
      ? e.condition
      : typeof e.code === 'string' && e.code.startsWith('amqp:')
        ? e.code
        : undefined;
  if (condition === undefined) return undefined;
  const description =
    typeof e.description === 'string'
      ? e.description
      : typeof e.message === 'string'
        ? e.message
        : undefined;
  return { condition, description };
}

/** One line for any error-like value; never "unknown" when something was said. */
export function errorText(err: unknown): string {
  if (err === undefined || err === null) return 'no error given';
  const amqp = amqpCondition(err);
  if (amqp) return amqp.description ? `${amqp.condition} ${amqp.description}` : amqp.condition;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
  }
  if (typeof err === 'object') {
    const e = err as { code?: unknown; message?: unknown };
    if (typeof e.message === 'string')
      return typeof e.code === 'string' ? `${e.code} ${e.message}` : e.message;
    if (typeof e.code === 'string') return e.code;
  }
  return toText(err);
}

const AUTH_CONDITIONS = new Set(['amqp:unauthorized-access']);

/**
 * Classifies a failure of a connection attempt from what rhea reported. `unauthorized-access`
 * on the connection (SASL) is refused credentials; on a link or session it is a permission
 * the user lacks for one address: a refusal like any other.
 */
export function connectionFailure(
  where: string,
  err: unknown,
  fallback: BusFailureKind,
  scope: 'connection' | 'link' = 'connection',
): BusConnectionError {
  const amqp = amqpCondition(err);
  let kind = fallback;
  if (amqp && scope === 'connection' && AUTH_CONDITIONS.has(amqp.condition)) kind = 'auth';
  else if (amqp && scope === 'link') kind = 'refused';
  else if (amqp && fallback === 'closed') kind = 'refused';
  return new BusConnectionError(kind, where, amqp, kind !== 'auth', errorText(err));
}
