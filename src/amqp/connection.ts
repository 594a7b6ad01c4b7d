/**
 * Connection lifecycle of the cluster bus: how one connection attempt is opened (URL, SASL,
 * TLS, container id, the AMQP open's hostname), how a link attach is judged, and when to try
 * the next attempt (backoff over the failover list, giving up on refused credentials).
 */
import { isIP } from 'node:net';
import type { Connection, ConnectionOptions, Receiver, Sender } from 'rhea';
import { Backoff } from '../util/backoff.js';
import type { BusConnectionError } from './errors.js';

export interface ConnectionSettings {
  url: string;
  containerId: string;
  username: string | undefined;
  password: string | undefined;
  /** TLS even with amqp:// (amqps:// implies it). */
  tls: boolean;
  ca: Buffer | undefined;
  idleTimeoutMs: number;
  /** Hostname sent in the AMQP open (virtual host on Qpid Broker-J); default the URL's host. */
  hostname: string | undefined;
}

/** rhea options for one attempt. rhea's own reconnect stays off: the bus rebuilds everything. */
export function connectionOptions(s: ConnectionSettings): ConnectionOptions {
  const parsed = new URL(s.url);
  const tls = parsed.protocol === 'amqps:' || s.tls;
  const username =
    s.username ?? (parsed.username ? decodeURIComponent(parsed.username) : undefined);
  const password =
    s.password ?? (parsed.password ? decodeURIComponent(parsed.password) : undefined);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const options: Record<string, unknown> = {
    host,
    port: Number(parsed.port || (tls ? 5671 : 5672)),
    transport: tls ? 'tls' : 'tcp',
    reconnect: false,
    container_id: s.containerId,
    idle_time_out: s.idleTimeoutMs || undefined,
    tcp_no_delay: true,
  };
  if (s.hostname !== undefined) options.hostname = s.hostname;
  if (username !== undefined) options.username = username;
  if (password !== undefined) options.password = password;
  if (tls) {
    // Node verifies the certificate chain and that it names the host (no opt-out here). SNI
    // only for names (RFC 6066 forbids an IP address as server name; '' keeps rhea from
    // setting one, and Node then checks the certificate against the host).
    options.servername = isIP(host) === 0 ? host : '';
    options.rejectUnauthorized = true;
    if (s.ca) options.ca = s.ca;
  }
  return options as unknown as ConnectionOptions;
}

/** The URL without its password, for logs. */
export function safeUrl(url: string): string {
  const u = new URL(url);
  u.password = '';
  return u.toString();
}

/**
 * A broker refuses an attach by answering with no source (receiver) or no target (sender) and
 * detaching right after; rhea still reports the link as opened. Such a link is a refusal.
 */
export function attachRefused(
  link: Sender | Receiver | undefined,
  kind: 'sender' | 'receiver',
): boolean {
  const attach = (
    link as unknown as { remote?: { attach?: { source?: unknown; target?: unknown } } }
  )?.remote?.attach;
  if (!attach) return true;
  const terminus = kind === 'sender' ? attach.target : attach.source;
  if (terminus === null || terminus === undefined) return true;
  // rhea keeps an absent terminus as a typed AMQP null ({ type, value: null }).
  const typed = terminus as { type?: unknown; value?: unknown };
  return typed.type !== undefined && (typed.value === null || typed.value === undefined);
}

/** Whether the peer's open offered a capability (e.g. ANONYMOUS-RELAY). */
export function peerOffers(conn: Connection | undefined, capability: string): boolean {
  const offered = (conn as unknown as { offered_capabilities?: unknown } | undefined)
    ?.offered_capabilities;
  const list = Array.isArray(offered) ? offered : offered === undefined ? [] : [offered];
  return list.some((c) => String(c) === capability);
}

/**
 * Drops the socket through rhea's own abort path, which also clears its idle/heartbeat timers
 * (a bare socket.destroy() leaves them running and keeps the process alive).
 */
export function abortSocket(conn: Connection | undefined): void {
  const c = conn as unknown as
    { socket?: unknown; abort_socket?: (socket: unknown) => void } | undefined;
  if (!c?.socket) return;
  try {
    c.abort_socket?.(c.socket);
  } catch {
    // the socket is gone already
  }
}

export const INITIAL_RECONNECT_DELAY_MS = 100;

/**
 * When to try again: the shared reconnect backoff (100 ms doubling up to the maximum, with
 * jitter). A connection counts as established only once it stayed up for `stableMs`: one that
 * is refused or dropped at once (a refused attach, a broker that accepts and closes) keeps the
 * delay growing instead of resetting it. Refused credentials are tried `authAttempts` times in
 * all, then the bus gives up.
 */
export class ReconnectBackoff {
  private readonly delays: Backoff;
  private authFailures = 0;
  private upSince: number | undefined;

  constructor(
    maxDelayMs: number,
    private readonly stableMs: number,
    private readonly authAttempts: number,
    private readonly now: () => number = Date.now,
  ) {
    this.delays = new Backoff({ minMs: INITIAL_RECONNECT_DELAY_MS, maxMs: maxDelayMs });
  }

  /** Every link attached. */
  connected(): void {
    this.upSince = this.now();
    this.authFailures = 0;
  }

  /** The attempt (or the established connection) failed: the delay before the next one, or
   *  undefined when the bus should stop trying. */
  failed(error: BusConnectionError | undefined): number | undefined {
    if (this.upSince !== undefined && this.now() - this.upSince >= this.stableMs)
      this.delays.reset();
    this.upSince = undefined;
    if (error && !error.retryable) {
      this.authFailures++;
      if (this.authFailures >= this.authAttempts) return undefined;
    }
    return this.delays.next();
  }
}
