/**
 * The cluster bus against a real RabbitMQ 3.x (AMQP 1.0 plugin): three hosts, fan-out,
 * per-host queues, forged and replayed messages, and broker outages (SIGTERM and SIGKILL)
 * in the middle of traffic. Assertions are about deliveries and outcomes, never about time.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rhea from 'rhea';
import type { EventContext } from 'rhea';
import {
  BusSendError,
  ClusterBus,
  type BusDelivery,
  type ConnectionChange,
} from '../../src/amqp/bus.js';
import { PROFILES } from '../../src/amqp/profiles.js';
import { isReplyFor } from '../../src/messages/reply.js';
import { type HostStatusBody, type Message } from '../../src/messages/schemas.js';
import { encodeMessage, MessageFactory, readClusterKey } from '../../src/messages/sign.js';
import { createLogger } from '../../src/util/logger.js';
import { rabbitAvailable, startRabbit, type RabbitBroker } from '../helpers/rabbitmq.js';
import { errText } from '../../src/util/errors.js';

const HOSTS = ['h1', 'h2', 'h3'] as const;
type Host = (typeof HOSTS)[number];
const CLUSTER = 'bustest';

const describeIfRabbit = rabbitAvailable() ? describe : describe.skip;
if (!rabbitAvailable()) console.warn('amqp-bus tests skipped: rabbitmq-server is not installed');

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends raw bodies on one link of a separate connection (order kept), each judged by outcome. */
async function rawSend(url: string, address: string, bodies: string[]): Promise<void> {
  const u = new URL(url);
  const container = rhea.create_container({ id: `raw-${process.pid}-${Date.now()}` });
  // The broker refuses anonymous connections: log in with the URL's (operator) credentials.
  const conn = container.connect({
    host: u.hostname,
    port: Number(u.port),
    reconnect: false,
    username: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const sender = conn.open_sender(address);
      let index = 0;
      let accepted = 0;
      const fail = (ctx: EventContext) =>
        reject(new Error(`raw send failed: ${errText(ctx.connection.error)}`));
      conn.on('connection_error', fail);
      conn.on('session_error', fail);
      conn.on('sender_error', fail);
      conn.on('disconnected', fail);
      conn.on('rejected', fail);
      conn.on('released', fail);
      conn.on('accepted', () => {
        if (++accepted === bodies.length) resolve();
      });
      const pump = () => {
        while (index < bodies.length && sender.sendable()) {
          sender.send({ body: bodies[index++] as string, content_type: 'application/json' });
        }
      };
      conn.on('sendable', pump);
    });
  } finally {
    conn.close();
  }
}

function heartbeat(bus: ClusterBus, vmCount = 0): Message {
  const body: HostStatusBody = {
    host: bus.hostId,
    epoch: bus.messages.epoch,
    seq: bus.messages.seq + 1,
    software: { name: 'virtfence', version: '0.1.0' },
    protocolVersion: 1,
    vmCount,
    listeners: ['multicast'],
  };
  return bus.create('heartbeat', body);
}

describeIfRabbit('ClusterBus on RabbitMQ 3.x', () => {
  let broker: RabbitBroker;
  let dir: string;
  let key: Buffer;
  const buses = {} as Record<Host, ClusterBus>;
  const inbox = {} as Record<Host, BusDelivery[]>;
  const changes = {} as Record<Host, ConnectionChange[]>;
  const logs: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vf-bus-'));
    writeFileSync(join(dir, 'cluster.key'), 'bus-test-cluster-key\n');
    writeFileSync(join(dir, 'other.key'), 'a-different-key\n');
    key = await readClusterKey(join(dir, 'cluster.key'));
    broker = await startRabbit({ port: 5700, distPort: 25700, epmdPort: 4370 });
    for (const host of HOSTS) {
      inbox[host] = [];
      changes[host] = [];
      const bus = new ClusterBus({
        urls: [broker.url],
        hostId: host,
        cluster: CLUSTER,
        key,
        profile: PROFILES.rabbitmq3,
        sendTimeoutMs: 3000,
        maxReconnectDelayMs: 500,
        idleTimeoutMs: 4000,
        logger: createLogger({ level: 'warn', write: (line) => logs.push(line) }),
      });
      bus.onMessage((d) => inbox[host].push(d));
      bus.onConnectionChange((c) => changes[host].push(c));
      buses[host] = bus;
    }
    await Promise.all(HOSTS.map((h) => buses[h].start()));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(HOSTS.map((h) => buses[h]?.stop()));
    await broker?.dispose();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const received = (host: Host, id: string) => inbox[host].some((d) => d.message.id === id);

  it('exchanges heartbeats between three hosts through the fan-out address', async () => {
    const sent = await Promise.all(
      HOSTS.map(async (h) => {
        const msg = heartbeat(buses[h], 3);
        await buses[h].publish(msg);
        return msg;
      }),
    );
    for (const host of HOSTS) {
      await waitFor(`${host} gets 3 heartbeats`, () => sent.every((m) => received(host, m.id)));
      for (const m of sent) {
        const d = inbox[host].find((x) => x.message.id === m.id);
        expect(d?.via).toBe('fanout');
        expect(d?.self).toBe(m.from === host);
        expect(d?.message).toEqual(m);
      }
    }
  });

  it('delivers a request only to the addressed host, and its reply back to the sender', async () => {
    const request = buses.h1.create('fence-request', {
      requestId: 'req-bus-1',
      originHost: 'h1',
      listener: 'multicast',
      requester: '192.0.2.5',
      target: 'vm-a',
      targetKind: 'name',
      action: 'off',
      deadline: Date.now() + 30_000,
      toHost: 'h2',
    });
    await buses.h1.sendToHost('h2', request);
    await waitFor('h2 gets the request', () => received('h2', request.id));
    const atH2 = inbox.h2.find((d) => d.message.id === request.id) as BusDelivery;
    expect(atH2.via).toBe('request');
    expect(atH2.self).toBe(false);

    // Markers through h1's and h3's own request queues: once they arrive, those queues had
    // their chance to carry the request.
    const markers = (['h1', 'h3'] as const).map((h) => {
      const m = buses.h2.create('resync-request', { reason: `marker-${h}` });
      return { host: h, m };
    });
    await Promise.all(markers.map(({ host, m }) => buses.h2.sendToHost(host, m)));
    for (const { host, m } of markers) {
      await waitFor(`${host} gets its marker`, () => received(host, m.id));
      expect(received(host, request.id)).toBe(false);
    }

    const reply = buses.h2.create('fence-reply', {
      requestId: 'req-bus-1',
      code: 0,
      reason: 'done',
      executingHost: 'h2',
      vmState: 5,
      timings: { received: Date.now(), finished: Date.now() },
    });
    await buses.h2.reply(atH2, reply);
    await waitFor('h1 gets the reply', () => received('h1', reply.id));
    const atH1 = inbox.h1.find((d) => d.message.id === reply.id) as BusDelivery;
    expect(atH1.via).toBe('reply');
    expect(isReplyFor(atH1.message, request)).toBe(true);
    expect(received('h3', reply.id)).toBe(false);
  });

  it('drops forged, malformed and foreign messages with distinct counted reasons', async () => {
    const otherKey = await readClusterKey(join(dir, 'other.key'));
    const forger = new MessageFactory({ cluster: CLUSTER, hostId: 'h1', key: otherKey });
    const forged = forger.create('host-fenced', {
      host: 'h3',
      fencedAt: Date.now(),
      by: 'mallory',
      evidence: 'none',
    });
    const future = { ...buses.h1.create('resync-request', { reason: 'v2' }), v: 2 };
    const unchecked = new MessageFactory({ cluster: CLUSTER, hostId: 'h1', key, validate: false });
    const badSchema = unchecked.create('resync-request', { reason: 'x'.repeat(300) });
    const otherCluster = new MessageFactory({ cluster: 'elsewhere', hostId: 'h1', key }).create(
      'resync-request',
      { reason: 'x' },
    );
    const marker = buses.h1.create('resync-request', { reason: 'after-forgery' });
    const before = HOSTS.map((h) => buses[h].stats().verify);
    await rawSend(broker.url, buses.h1.eventAddress, [
      encodeMessage(forged),
      'not json',
      JSON.stringify(future),
      encodeMessage(badSchema),
      encodeMessage(otherCluster),
      encodeMessage(marker),
    ]);
    for (const [i, host] of HOSTS.entries()) {
      await waitFor(`${host} gets the marker`, () => received(host, marker.id));
      for (const m of [forged, future, badSchema, otherCluster])
        expect(received(host, m.id)).toBe(false);
      const was = before[i] as Record<string, number>;
      const now = buses[host].stats().verify;
      expect(now['bad-signature']).toBe((was['bad-signature'] ?? 0) + 1);
      expect(now['invalid-json']).toBe((was['invalid-json'] ?? 0) + 1);
      expect(now['unsupported-version']).toBe((was['unsupported-version'] ?? 0) + 1);
      expect(now.schema).toBe((was.schema ?? 0) + 1);
      expect(now['wrong-cluster']).toBe((was['wrong-cluster'] ?? 0) + 1);
      expect(buses[host].connected).toBe(true);
    }
    // Each drop is logged with its reason; no signature or key ever reaches the log.
    const dropped = logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((e) => e.event === 'amqp-message-dropped');
    for (const reason of [
      'bad-signature',
      'invalid-json',
      'unsupported-version',
      'schema',
      'wrong-cluster',
    ]) {
      expect(dropped.some((e) => e.reason === reason)).toBe(true);
    }
    for (const line of logs) {
      expect(line).not.toContain(forged.sig);
      expect(line).not.toContain(marker.sig);
      expect(line).not.toContain('bus-test-cluster-key');
    }
  });

  it('drops re-sent bytes of a genuine message as replay', async () => {
    const original = heartbeat(buses.h3);
    await buses.h3.publish(original);
    for (const host of HOSTS)
      await waitFor(`${host} gets the original`, () => received(host, original.id));
    const before = HOSTS.map((h) => buses[h].stats().verify.replay);
    const marker = buses.h3.create('resync-request', { reason: 'after-replay' });
    await rawSend(broker.url, buses.h3.eventAddress, [
      encodeMessage(original),
      encodeMessage(marker),
    ]);
    for (const [i, host] of HOSTS.entries()) {
      await waitFor(`${host} gets the marker`, () => received(host, marker.id));
      expect(inbox[host].filter((d) => d.message.id === original.id)).toHaveLength(1);
      expect(buses[host].stats().verify.replay).toBe((before[i] ?? 0) + 1);
    }
  });

  it('refuses to send a message of another host', async () => {
    const foreign = buses.h2.create('resync-request', { reason: 'x' });
    await expect(buses.h1.publish(foreign)).rejects.toThrow(/not ours/);
  });

  async function outage(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const outcomes: { id: string; to: string; ok: boolean; reason?: string; phase: string }[] = [];
    // A host that is down during the whole test: its queue holds everything accepted for it,
    // across the broker outage, until it starts.
    const offline = signal === 'SIGKILL' ? 'qkill' : 'qterm';
    let phase = 'before';
    let running = true;
    const reconnectsBefore = HOSTS.map(
      (h) => changes[h].filter((c) => c.connected && c.reconnected).length,
    );

    // h1 keeps sending durable messages (asked per send) to h2's queue and to the offline host's
    // queue; each send is awaited and judged.
    const pump = (async () => {
      for (let i = 0; running; i++) {
        const msg = buses.h1.create('resync-request', { reason: `${signal}-${i}` });
        const to = i % 2 === 0 ? 'h2' : offline;
        try {
          await buses.h1.sendToHost(to, msg, { durable: true });
          outcomes.push({ id: msg.id, to, ok: true, phase });
        } catch (err) {
          expect(err).toBeInstanceOf(BusSendError);
          outcomes.push({
            id: msg.id,
            to,
            ok: false,
            reason: (err as BusSendError).reason,
            phase,
          });
          await sleep(20);
        }
        await sleep(2);
      }
    })();

    const accepted = () => outcomes.filter((o) => o.ok);
    await waitFor('traffic flows', () => accepted().length >= 30);
    phase = 'outage';
    if (signal === 'SIGKILL') await broker.kill();
    else await broker.stop('SIGTERM');
    const rejectedDuringOutage = () => outcomes.filter((o) => !o.ok && o.phase === 'outage');
    await waitFor('sends fail during the outage', () => rejectedDuringOutage().length >= 3);
    expect(buses.h1.connected).toBe(false);

    await broker.restart();
    phase = 'after';
    await Promise.all(HOSTS.map((h) => buses[h].whenConnected(30_000)));
    await waitFor(
      'traffic flows again',
      () => outcomes.filter((o) => o.ok && o.phase === 'after').length >= 30,
    );
    running = false;
    await pump;

    // Every send settled one way or the other; failures carry a reason.
    for (const o of outcomes.filter((x) => !x.ok)) {
      expect([
        'not-connected',
        'disconnected',
        'timeout',
        'released',
        'rejected',
        'modified',
      ]).toContain(o.reason);
    }
    // No accepted send is lost: durable messages in a durable queue survive the broker.
    const acceptedFor = (host: string) =>
      accepted()
        .filter((o) => o.to === host)
        .map((o) => o.id);
    expect(outcomes.some((o) => o.ok && o.to === offline && o.phase === 'before')).toBe(true);
    await waitFor('h2 gets every accepted request', () =>
      acceptedFor('h2').every((id) => received('h2', id)),
    );
    const late = new ClusterBus({
      urls: [broker.url],
      hostId: offline,
      cluster: CLUSTER,
      key,
      profile: PROFILES.rabbitmq3,
    });
    const lateInbox = new Set<string>();
    late.onMessage((d) => {
      if (d.via === 'request') lateInbox.add(d.message.id);
    });
    try {
      await late.start({ timeoutMs: 30_000 });
      await waitFor(`${offline} gets every request accepted while it was down`, () =>
        acceptedFor(offline).every((id) => lateInbox.has(id)),
      );
    } finally {
      await late.stop();
    }
    // Each host saw a "reconnected" event (the routing layer resyncs on it).
    for (const [i, host] of HOSTS.entries()) {
      expect(changes[host].filter((c) => c.connected && c.reconnected).length).toBeGreaterThan(
        reconnectsBefore[i] ?? 0,
      );
      expect(changes[host].some((c) => !c.connected)).toBe(true);
    }
    // Every connection has its own container id.
    const ids = changes.h1.filter((c) => c.connected).map((c) => c.containerId);
    expect(new Set(ids).size).toBe(ids.length);
    // And the fan-out works again for everybody.
    const hb = heartbeat(buses.h2);
    await buses.h2.publish(hb);
    for (const host of HOSTS)
      await waitFor(`${host} gets a heartbeat after ${signal}`, () => received(host, hb.id));
  }

  it('survives a graceful broker shutdown (SIGTERM) mid-traffic', async () => {
    await outage('SIGTERM');
  }, 120_000);

  it('survives a broker crash (SIGKILL) mid-traffic', async () => {
    await outage('SIGKILL');
  }, 120_000);

  it('fails over to the next URL of the list when the first is down', async () => {
    const bus = new ClusterBus({
      // 5709: nothing listens there (our reserved test range).
      urls: ['amqp://127.0.0.1:5709', broker.url],
      hostId: 'h4',
      cluster: CLUSTER,
      key,
      profile: PROFILES.rabbitmq3,
    });
    const got: BusDelivery[] = [];
    bus.onMessage((d) => got.push(d));
    try {
      await bus.start({ timeoutMs: 30_000 });
      expect(bus.stats().url).toBe(broker.url);
      expect(bus.stats().lastError).toMatch(/ECONNREFUSED/);
      const hb = heartbeat(bus);
      await bus.publish(hb);
      await waitFor('h4 hears itself', () => got.some((d) => d.message.id === hb.id && d.self));
      await waitFor('h1 hears h4', () => received('h1', hb.id));
    } finally {
      await bus.stop();
    }
    expect(bus.connected).toBe(false);
    await expect(bus.publish(bus.create('resync-request', { reason: 'x' }))).rejects.toMatchObject({
      reason: 'stopped',
    });
  });

  it('closes idle per-host senders and opens them again on demand', async () => {
    const bus = new ClusterBus({
      urls: [broker.url],
      hostId: 'h5',
      cluster: CLUSTER,
      key,
      profile: PROFILES.rabbitmq3,
      senderIdleMs: 1000,
    });
    try {
      await bus.start({ timeoutMs: 30_000 });
      const first = bus.create('resync-request', { reason: 'idle-1' });
      await bus.sendToHost('h2', first);
      expect(bus.stats().addressSenders).toBe(1);
      await waitFor('the idle sender is closed', () => bus.stats().addressSenders === 0);
      const second = bus.create('resync-request', { reason: 'idle-2' });
      await bus.sendToHost('h2', second);
      await waitFor('h2 gets both', () => received('h2', first.id) && received('h2', second.id));
      expect(bus.connected).toBe(true);
      expect(bus.stats().reconnects).toBe(0);
    } finally {
      await bus.stop();
    }
  });

  it('rejects sends at once while stopped', async () => {
    const probe = new ClusterBus({
      urls: [broker.url],
      hostId: 'h9',
      cluster: CLUSTER,
      key,
      profile: PROFILES.rabbitmq3,
    });
    const msg = probe.create('resync-request', { reason: 'x' });
    await expect(probe.publish(msg)).rejects.toMatchObject({ reason: 'stopped' });
  });
});
