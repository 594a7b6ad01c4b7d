/**
 * A plain receiver on its own AMQP connection, for what the cluster bus does not expose: the
 * broker firehose (firehose.ts) and the raw fan-out for key checks, where every message has to
 * be verified here to learn who sent the ones that do NOT verify. Read-only: it never sends.
 */
import rhea from 'rhea';
import type { Connection, EventContext } from 'rhea';
import type { BrokerSettings } from './settings.js';
import { errText } from '../../util/errors.js';

export interface Tap {
  /** Resolves when attached; rejects with the reason the broker gave. */
  ready: Promise<void>;
  close(): Promise<void>;
}

export function openTap(
  settings: BrokerSettings,
  source: string,
  onBody: (body: unknown) => void,
  timeoutMs: number,
  label: string,
  /** The broker to use (default: the first URL); pass the one the bus reached. */
  brokerUrl: string = settings.amqp.urls[0] as string,
): Tap {
  const url = new URL(brokerUrl);
  const tls = url.protocol === 'amqps:' || settings.amqp.tls;
  const container = rhea.create_container({ id: `${settings.observerId}-${label}` });
  const options: Record<string, unknown> = {
    host: url.hostname,
    port: Number(url.port || (tls ? 5671 : 5672)),
    transport: tls ? 'tls' : 'tcp',
    reconnect: false,
    idle_time_out: settings.amqp.idleTimeout || undefined,
  };
  const username =
    settings.amqp.username ?? (url.username ? decodeURIComponent(url.username) : undefined);
  const password =
    settings.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
  if (username !== undefined) options.username = username;
  if (password !== undefined) options.password = password;
  if (tls) {
    options.servername = url.hostname;
    if (settings.ca) options.ca = settings.ca;
  }
  let conn: Connection | undefined;
  let settled = false;
  let resolveReady: () => void = () => undefined;
  let rejectReady: (e: Error) => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  ready.catch(() => undefined);
  const timer = setTimeout(() => fail('not attached in time'), timeoutMs);
  function fail(reason: string): void {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    rejectReady(new Error(reason));
  }
  const why = (e: unknown): string => {
    const x = e as { condition?: unknown; description?: unknown; message?: unknown } | undefined;
    const text = x?.description ?? x?.message ?? x?.condition;
    return text === undefined || text === null ? 'closed' : errText(text);
  };
  container.on('error', (e: unknown) => fail(why(e)));
  try {
    conn = container.connect(options as never);
  } catch (error) {
    fail(why(error));
    return { ready, close: async () => undefined };
  }
  conn.on('connection_error', (ctx: EventContext) => fail(why(ctx.connection.error)));
  conn.on('disconnected', (ctx: EventContext) =>
    fail(why((ctx as { error?: unknown }).error ?? 'disconnected')),
  );
  conn.on('session_error', (ctx: EventContext) => fail(why(ctx.session?.error)));
  conn.on('session_close', (ctx: EventContext) => fail(why(ctx.session?.error)));
  conn.on('receiver_error', (ctx: EventContext) => fail(why(ctx.receiver?.error)));
  conn.on('receiver_close', (ctx: EventContext) => fail(why(ctx.receiver?.error)));
  conn.on('receiver_open', () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    resolveReady();
  });
  conn.on('message', (ctx: EventContext) => onBody(ctx.message?.body));
  conn.open_receiver({ source, credit_window: 500 });
  return {
    ready,
    close: () =>
      new Promise<void>((resolve) => {
        clearTimeout(timer);
        const c = conn as Connection & { socket?: unknown; abort_socket?: (s: unknown) => void };
        // Abort after rhea has finished handling the close (from inside its event handler
        // it would re-arm its idle timer afterwards and keep the process alive).
        const done = () =>
          setImmediate(() => {
            try {
              if (c.socket) c.abort_socket?.(c.socket);
            } catch {
              // gone already
            }
            resolve();
          });
        const t = setTimeout(done, 1000);
        c.once('connection_close', () => {
          clearTimeout(t);
          done();
        });
        c.once('disconnected', () => {
          clearTimeout(t);
          done();
        });
        try {
          if (c.is_open()) c.close();
          else {
            clearTimeout(t);
            done();
          }
        } catch {
          clearTimeout(t);
          done();
        }
      }),
  };
}
