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
import { verifyMessage } from '../../messages/sign.js';
import type { Message } from '../../messages/schemas.js';
import type { BrokerSettings } from './settings.js';
import { openTap, type Tap } from './tap.js';

/** The firehose is a RabbitMQ 3.x feature reachable with the 3.x address syntax. */
export const FIREHOSE_ADDRESS = '/exchange/amq.rabbitmq.trace/publish.#';

export function firehoseSupported(settings: BrokerSettings): boolean {
  return settings.profile.name === 'rabbitmq3';
}

/** The signed envelope text inside a firehose copy, if there is one. */
export function firehoseText(body: unknown): string | undefined {
  if (typeof body === 'string') return body;
  const content = body && typeof body === 'object' && 'content' in body ? body.content : body;
  if (!Buffer.isBuffer(content)) return undefined;
  try {
    const inner = rhea.message.decode(content) as { body?: unknown };
    const b = inner.body;
    if (typeof b === 'string') return b;
    if (Buffer.isBuffer(b)) return b.toString('utf8');
    if (b && typeof b === 'object' && 'content' in b) {
      const c = b.content;
      if (Buffer.isBuffer(c)) return c.toString('utf8');
    }
  } catch {
    // not an AMQP 1.0 section: a message from another kind of client
  }
  return undefined;
}

/** Signed messages of our cluster, as copied by the firehose. */
export function openFirehose(
  settings: BrokerSettings,
  onMessage: (message: Message, receivedAt: number) => void,
  timeoutMs: number,
  brokerUrl?: string,
): Tap {
  return openTap(
    settings,
    FIREHOSE_ADDRESS,
    (body) => {
      const text = firehoseText(body);
      if (text === undefined) return;
      const result = verifyMessage(text, settings.key, { cluster: settings.amqp.cluster });
      if (result.ok) onMessage(result.message, Date.now());
    },
    timeoutMs,
    'firehose',
    brokerUrl,
  );
}
