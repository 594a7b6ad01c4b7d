/**
 * Hostile broker users against a real RabbitMQ 3.x with the bundled least-privilege set-up: a
 * user without the cluster key sends 20 KB of deeply nested JSON, a 10 MB message and a binary
 * body to the events topic and to a host's request queue, and tries to consume that queue.
 * The hosts' buses drop each message alone (counted, rate-limited logs), never their link, and
 * keep serving; the broker refuses anonymous connections and foreign consumers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rhea, { type Connection, type EventContext } from 'rhea';
import { ClusterBus, type BusDelivery } from '../../src/amqp/bus.js';
import { PROFILES } from '../../src/amqp/profiles.js';
import { readClusterKey } from '../../src/messages/sign.js';
import { errText } from '../../src/util/errors.js';
import { createLogger } from '../../src/util/logger.js';
import { rabbitAvailable, startRabbit, type RabbitBroker } from '../helpers/rabbitmq.js';

const CLUSTER = 'hx';
const describeIfRabbit = rabbitAvailable() ? describe : describe.skip;

interface Login {
  username?: string;
  password?: string;
}

function open(url: string, login: Login): Connection {
  const u = new URL(url);
  const container = rhea.create_container({ id: `eve-${process.pid}-${Math.random()}` });
  container.on('error', () => undefined);
  return container.connect({ host: u.hostname, port: Number(u.port), reconnect: false, ...login });
}

/** Sends raw bodies as `login`; resolves with each outcome (accepted, rejected, error …). */
function rawSend(url: string, login: Login, address: string, bodies: unknown[]): Promise<string[]> {
  const conn = open(url, login);
  return new Promise((resolve) => {
    const outcomes: string[] = [];
    const finish = (extra?: string) => {
      if (extra) outcomes.push(extra);
      try {
        conn.close();
      } catch {
        // already closed
      }
      resolve(outcomes);
    };
    const timer = setTimeout(() => finish('timeout'), 20_000);
    // Queues are durable (as the hosts declare them); the topic is not.
    const sender = conn.open_sender(
      address.startsWith('/queue/') ? { target: { address, durable: 1 } } : address,
    );
    let index = 0;
    const settle = (what: string) => {
      outcomes.push(what);
      if (outcomes.length === bodies.length) {
        clearTimeout(timer);
        finish();
      }
    };
    conn.on('accepted', () => settle('accepted'));
    conn.on('rejected', () => settle('rejected'));
    conn.on('released', () => settle('released'));
    for (const ev of ['connection_error', 'session_error', 'sender_error', 'disconnected']) {
      conn.on(ev, (ctx: EventContext) => {
        clearTimeout(timer);
        finish(`${ev}: ${errText(ctx.session?.error ?? ctx.connection?.error)}`);
      });
    }
    conn.on('sendable', () => {
      while (index < bodies.length && sender.sendable()) sender.send({ body: bodies[index++] });
    });
  });
}

/** Tries to consume `address` as `login`: 'opened' or the broker's refusal. */
function tryConsume(url: string, login: Login, address: string): Promise<string> {
  const conn = open(url, login);
  return new Promise((resolve) => {
    const done = (what: string) => {
      clearTimeout(timer);
      try {
        conn.close();
      } catch {
        // already closed
      }
      resolve(what);
    };
    const timer = setTimeout(() => done('timeout'), 10_000);
    conn.on('receiver_open', () => done('opened'));
    for (const ev of ['connection_error', 'session_error', 'receiver_error', 'disconnected']) {
      conn.on(ev, (ctx: EventContext) => {
        const err = (ctx.session?.error ?? ctx.receiver?.error ?? ctx.connection?.error) as
          { description?: string } | undefined;
        done(`${ev}: ${err?.description ?? 'closed'}`);
      });
    }
    conn.open_receiver({ source: { address, durable: 1 } });
  });
}

const waitFor = async (what: string, check: () => boolean, ms = 15_000) => {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describeIfRabbit('hostile broker users (RabbitMQ 3.x, least privilege)', () => {
  let broker: RabbitBroker;
  let dir: string;
  const buses: Record<'h1' | 'h2', ClusterBus> = {} as never;
  const inbox: BusDelivery[] = [];
  const logs: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vf-hostile-bus-'));
    writeFileSync(join(dir, 'cluster.key'), 'hostile-broker-cluster-key\n');
    const key = await readClusterKey(join(dir, 'cluster.key'));
    broker = await startRabbit({
      port: 5760,
      distPort: 25760,
      epmdPort: 4395,
      hostUsers: { cluster: CLUSTER, hosts: ['h1', 'h2', 'eve'] },
    });
    for (const host of ['h1', 'h2'] as const) {
      const login = broker.hostCredentials(host);
      buses[host] = new ClusterBus({
        urls: [`amqp://127.0.0.1:${broker.port}`],
        username: login.username,
        password: login.password,
        hostId: host,
        cluster: CLUSTER,
        key,
        profile: PROFILES.rabbitmq3,
        maxReconnectDelayMs: 500,
        logger: createLogger({ level: 'warn', write: (l) => logs.push(l) }),
      });
    }
    buses.h1.onMessage((d) => inbox.push(d));
    await Promise.all([buses.h1.start(), buses.h2.start()]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(Object.values(buses).map((b) => b.stop()));
    await broker?.dispose();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('refuses anonymous connections and consumers of another host’s queues', async () => {
    const requestQueue = buses.h1.requestAddressOf('h1');
    expect(await tryConsume(broker.url, {}, requestQueue)).not.toBe('opened');
    const eve = broker.hostCredentials('eve');
    const stolen = await tryConsume(broker.url, eve, requestQueue);
    expect(stolen).toMatch(/ACCESS_REFUSED/);
    const replies = await tryConsume(broker.url, eve, '/queue/virtfence.hx.reply.h1');
    expect(replies).toMatch(/ACCESS_REFUSED/);
    // Its own queue is fine: the refusal is about whose queue it is.
    expect(await tryConsume(broker.url, eve, buses.h1.requestAddressOf('eve'))).toBe('opened');
  }, 60_000);

  it('nested JSON, 10 MB and binary bodies cost only themselves, never the link', async () => {
    const eve = broker.hostCredentials('eve');
    const nested = '{"v":1,"x":' + '['.repeat(5000) + ']'.repeat(5000) + '}'; // ~20 KB
    const huge = JSON.stringify({ v: 1, pad: 'x'.repeat(10 * 1024 * 1024) });
    const binary = Buffer.from([0xde, 0xad, 0xbe, 0xef]); // not JSON
    const number = 42; // not a message body at all (undecodable-body)
    const before = buses.h1.stats();
    const bodies = [nested, huge, binary, number, nested];
    const toTopic = await rawSend(broker.url, eve, buses.h1.eventAddress, bodies);
    const toQueue = await rawSend(broker.url, eve, buses.h1.requestAddressOf('h1'), bodies);
    expect(toTopic).toEqual(Array(5).fill('accepted'));
    expect(toQueue).toEqual(Array(5).fill('accepted'));

    const counted = () => {
      const s = buses.h1.stats();
      return (
        s.verify['too-deep'] - before.verify['too-deep'] >= 4 &&
        s.verify['too-large'] - before.verify['too-large'] >= 2 &&
        s.verify['invalid-json'] - before.verify['invalid-json'] >= 2 &&
        s.undecodable - before.undecodable >= 2
      );
    };
    await waitFor('h1 counts every hostile message', counted, 30_000);
    for (const bus of Object.values(buses)) {
      const s = bus.stats();
      expect(s.connected).toBe(true);
      expect(s.reconnects).toBe(0);
      expect(s.disconnects).toBe(0);
    }
    // Still serving: a genuine request from h2 reaches h1.
    const marker = buses.h2.create('resync-request', { target: 'h1', reason: 'after-attack' });
    await buses.h2.sendToHost('h1', marker);
    await waitFor('the genuine request', () => inbox.some((d) => d.message.id === marker.id));
    // One line per reason (this interval), undecodable bodies included; no stack overflow.
    const dropped = logs.filter((l) => l.includes('amqp-message-dropped'));
    for (const reason of ['too-deep', 'too-large', 'invalid-json', 'undecodable-body']) {
      const h1 = dropped.filter((l) => l.includes(`"reason":"${reason}"`) && l.includes('"h1"'));
      expect([reason, h1.length]).toEqual([reason, 1]);
    }
    expect(logs.join('\n')).not.toMatch(/RangeError|Maximum call stack/);
  }, 90_000);
});
