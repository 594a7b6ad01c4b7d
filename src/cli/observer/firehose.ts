/**
 * A read-only tap on RabbitMQ's firehose (`rabbitmqctl trace_on`): every message published on
 * the broker is copied to the `amq.rabbitmq.trace` exchange with routing key
 * `publish.<exchange>`. Fence requests and replies travel on per-host queues, which an
 * observer cannot read without taking the messages away from their host; the firehose copy
 * shows them without touching them. Only signed messages of our cluster that verify with our
 * key are passed on (no replay check: the fan-out delivers the same messages too).
 *
 * Measured on RabbitMQ 3.10 with rhea: the copy arrives as a data section holding the
 * original AMQP 1.0 body section (an amqp-value string), decoded with rhea's message codec.
 */
import rhea from 'rhea';
import type { Connection, EventContext } from 'rhea';
import { verifyMessage } from '../../messages/sign.js';
import type { Message } from '../../messages/schemas.js';
import type { BrokerSettings } from './settings.js';

/** The firehose is a RabbitMQ 3.x feature reachable with the 3.x address syntax. */
export const FIREHOSE_ADDRESS = '/exchange/amq.rabbitmq.trace/publish.#';

export function firehoseSupported(settings: BrokerSettings): boolean {
  return settings.profile.name === 'rabbitmq3';
}

/** The signed envelope text inside a firehose copy, if there is one. */
export function firehoseText(body: unknown): string | undefined {
  if (typeof body === 'string') return body;
  const content =
    body && typeof body === 'object' && 'content' in body
      ? (body as { content: unknown }).content
      : body;
  if (!Buffer.isBuffer(content)) return undefined;
  try {
    const inner = rhea.message.decode(content) as { body?: unknown };
    const b = inner.body;
    if (typeof b === 'string') return b;
    if (Buffer.isBuffer(b)) return b.toString('utf8');
    if (b && typeof b === 'object' && 'content' in b) {
      const c = (b as { content: unknown }).content;
      if (Buffer.isBuffer(c)) return c.toString('utf8');
    }
  } catch {
    // not an AMQP 1.0 section: a message from another kind of client
  }
  return undefined;
}

export interface FirehoseTap {
  /** Resolves when attached; rejects with the reason the broker gave. */
  ready: Promise<void>;
  close(): Promise<void>;
}

export function openFirehose(
  settings: BrokerSettings,
  onMessage: (message: Message, receivedAt: number) => void,
  timeoutMs: number,
): FirehoseTap {
  const url = new URL(settings.amqp.urls[0] as string);
  const tls = url.protocol === 'amqps:' || settings.amqp.tls;
  const container = rhea.create_container({ id: `${settings.observerId}-firehose` });
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
    return String(x?.description ?? x?.message ?? x?.condition ?? 'closed');
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
  conn.on('message', (ctx: EventContext) => {
    const text = firehoseText(ctx.message?.body);
    if (text === undefined) return;
    const result = verifyMessage(text, settings.key, { cluster: settings.amqp.cluster });
    if (result.ok) onMessage(result.message, Date.now());
  });
  conn.open_receiver({ source: FIREHOSE_ADDRESS, credit_window: 500 });
  return {
    ready,
    close: () =>
      new Promise<void>((resolve) => {
        clearTimeout(timer);
        const c = conn as Connection & { socket?: unknown; abort_socket?: (s: unknown) => void };
        const done = () => {
          try {
            if (c.socket) c.abort_socket?.(c.socket);
          } catch {
            // gone already
          }
          resolve();
        };
        const t = setTimeout(done, 1000);
        c.once('connection_close' as never, () => {
          clearTimeout(t);
          done();
        });
        c.once('disconnected' as never, () => {
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
