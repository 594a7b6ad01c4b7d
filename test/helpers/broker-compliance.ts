/**
 * One behavioural suite for every broker the bus supports (as listener-compliance.ts is for
 * listeners). The broker runs from its broker/<name>/ configuration, started once per test
 * file; the suite drives it through the real ClusterBus and checks what routed fencing needs:
 *
 * - the fan-out reaches every host (the sender's own copy included);
 * - a per-host request queue delivers to its host only, and the reply comes back;
 * - an attach the broker refuses is a refusal: the bus never reports ready, and it backs off;
 * - a fence request whose deadline (its TTL) passed while queued is never delivered;
 * - the bus reconnects after the broker is stopped with SIGTERM and with SIGKILL;
 * - bad credentials give a clear error naming the refusal, and the bus stops retrying;
 * - with per-cluster users, a host of another cluster can neither read nor publish on this
 *   cluster's addresses.
 */
import rhea from 'rhea';
import {
  BusConnectionError,
  ClusterBus,
  type BusDelivery,
  type ConnectionChange,
} from '../../src/amqp/bus.js';
import { resolveProfile, type ProfileOverrides } from '../../src/amqp/profiles.js';
import {
  startBroker,
  type BrokerHandle,
  type BrokerKind,
  type BrokerUser,
} from '../../src/harness/brokers.js';
import type { HostStatusBody, Message } from '../../src/messages/schemas.js';
import { makeTestPki, type TestPki } from './tls.js';

export const COMPLIANCE_CLUSTER = 'itest';
export const OTHER_CLUSTER = 'other';
const KEY = Buffer.from('broker-compliance-cluster-key-0123456789');

export const HOSTS_USER: BrokerUser = {
  user: 'itest-hosts',
  password: 'itest-secret',
  cluster: COMPLIANCE_CLUSTER,
};
export const OTHER_USER: BrokerUser = {
  user: 'other-hosts',
  password: 'other-secret',
  cluster: OTHER_CLUSTER,
};

export interface BrokerFixture {
  kind: BrokerKind;
  broker(): BrokerHandle;
  /** Whether the broker enforces per-cluster users (RabbitMQ's bundled user sees all). */
  perClusterUsers: boolean;
  /** A request-address template the broker refuses to attach for HOSTS_USER. */
  refusedRequestAddress: string;
  /** The TLS port (JVM brokers: listening on every loopback address) and the test's CAs. */
  tls(): { port: number; pki: TestPki } | undefined;
}

/** Starts the broker once for the file (beforeAll) and disposes it (afterAll). */
export function sharedBroker(
  kind: BrokerKind,
  port: number,
  options: { epmdPort?: number } = {},
): BrokerFixture {
  let handle: BrokerHandle | undefined;
  let pki: TestPki | undefined;
  const tlsPort = port + 100;
  beforeAll(async () => {
    const started = Date.now();
    if (kind !== 'rabbitmq') pki = makeTestPki();
    handle = await startBroker(kind, {
      port,
      users: [HOSTS_USER, OTHER_USER],
      ...(options.epmdPort !== undefined ? { epmdPort: options.epmdPort } : {}),
      ...(pki
        ? {
            env: {
              TLS_KEYSTORE: pki.keystore,
              TLS_KEYSTORE_PASSWORD: pki.keystorePassword,
              TLS_PORT: String(tlsPort),
              TLS_ADDRESS: '0.0.0.0',
            },
          }
        : {}),
    });
    console.log(`${kind}: ready ${Date.now() - started} ms after start`);
  }, 120_000);
  afterAll(async () => {
    await handle?.dispose();
    pki?.remove();
  }, 60_000);
  const perClusterUsers = kind !== 'rabbitmq';
  return {
    kind,
    broker: () => {
      if (!handle) throw new Error(`${kind} not started`);
      return handle;
    },
    perClusterUsers,
    tls: () => (pki ? { port: tlsPort, pki } : undefined),
    refusedRequestAddress:
      kind === 'rabbitmq'
        ? // an exchange that does not exist: RabbitMQ refuses the attach (not-found)
          '/exchange/virtfence-no-such-exchange/{host}'
        : kind === 'activemq'
          ? `queue://virtfence.${OTHER_CLUSTER}.req.{host}`
          : `virtfence.${OTHER_CLUSTER}.req.{host}`,
  };
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function heartbeat(bus: ClusterBus): Message {
  const body: HostStatusBody = {
    host: bus.hostId,
    epoch: bus.messages.epoch,
    seq: bus.messages.seq + 1,
    software: { name: 'virtfence', version: '0.1.0' },
    protocolVersion: 1,
    vmCount: 0,
    listeners: [],
  };
  return bus.create('heartbeat', body);
}

export function brokerCompliance(fixture: BrokerFixture): void {
  describe(`broker compliance: ${fixture.kind}`, () => {
    const buses: ClusterBus[] = [];
    const seen = new Map<string, BusDelivery[]>();
    const changes = new Map<string, ConnectionChange[]>();

    function bus(
      hostId: string,
      options: {
        user?: BrokerUser;
        password?: string;
        overrides?: ProfileOverrides;
        cluster?: string;
        authAttempts?: number;
        urls?: string[];
        ca?: Buffer;
      } = {},
    ): ClusterBus {
      const b = fixture.broker();
      const user = options.user ?? (fixture.perClusterUsers ? HOSTS_USER : b.users[0]);
      const created = new ClusterBus({
        urls: options.urls ?? [b.url],
        ...(options.ca ? { ca: options.ca } : {}),
        hostId,
        cluster: options.cluster ?? COMPLIANCE_CLUSTER,
        key: KEY,
        profile: resolveProfile(b.profile, options.overrides ?? {}),
        ...(user ? { username: user.user, password: options.password ?? user.password } : {}),
        maxReconnectDelayMs: 2000,
        linkTimeoutMs: 5000,
        ...(options.authAttempts !== undefined ? { authAttempts: options.authAttempts } : {}),
      });
      buses.push(created);
      const got: BusDelivery[] = [];
      seen.set(hostId, got);
      created.onMessage((d) => got.push(d));
      const ch: ConnectionChange[] = [];
      changes.set(hostId, ch);
      created.onConnectionChange((c) => ch.push(c));
      return created;
    }

    const received = (host: string, id: string, via?: BusDelivery['via']) =>
      (seen.get(host) ?? []).some(
        (d) => d.message.id === id && (via === undefined || d.via === via),
      );

    function fenceRequest(from: ClusterBus, to: string, deadlineInMs: number, n: number): Message {
      return from.create('fence-request', {
        requestId: `status:${n}:vm-x`,
        originHost: from.hostId,
        listener: 'multicast',
        requester: '127.0.0.1',
        target: 'vm-x',
        targetKind: 'name',
        action: 'status',
        deadline: Date.now() + deadlineInMs,
        toHost: to,
      });
    }

    let h1: ClusterBus;
    let h2: ClusterBus;
    let h3: ClusterBus;

    beforeAll(async () => {
      h1 = bus('h1');
      h2 = bus('h2');
      h3 = bus('h3');
      await Promise.all([h1, h2, h3].map((b) => b.start({ timeoutMs: 30_000 })));
    }, 60_000);

    afterAll(async () => {
      await Promise.all(buses.map((b) => b.stop()));
    });

    it('the fan-out reaches every host, the sender included', async () => {
      const hb = heartbeat(h1);
      await h1.publish(hb);
      await waitFor('the heartbeat on every host', () =>
        ['h1', 'h2', 'h3'].every((h) => received(h, hb.id, 'fanout')),
      );
      expect(seen.get('h1')?.find((d) => d.message.id === hb.id)?.self).toBe(true);
    });

    it('a request reaches only the addressed host, and its reply comes back', async () => {
      const request = fenceRequest(h1, 'h2', 10_000, 1);
      await h1.sendToHost('h2', request);
      await waitFor('the request on h2', () => received('h2', request.id, 'request'));
      const delivery = seen.get('h2')?.find((d) => d.message.id === request.id);
      if (!delivery) throw new Error('no delivery');
      const reply = h2.create('fence-reply', {
        requestId: 'status:1:vm-x',
        code: 0,
        reason: 'ok',
        executingHost: 'h2',
        vmState: 1,
        timings: { received: Date.now(), finished: Date.now() },
      });
      await h2.reply(delivery, reply);
      await waitFor('the reply on h1', () => received('h1', reply.id, 'reply'));
      await sleep(300);
      expect(received('h3', request.id)).toBe(false);
      expect(received('h1', request.id)).toBe(false);
      expect(received('h3', reply.id)).toBe(false);
    });

    it('an attach the broker refuses is a refusal, retried with a growing delay', async () => {
      const refused = bus('h-refused', {
        overrides: { requestAddress: fixture.refusedRequestAddress },
      });
      const started = Date.now();
      await expect(refused.start({ timeoutMs: 3000 })).rejects.toThrow(/not connected/);
      const elapsed = Date.now() - started;
      const stats = refused.stats();
      await refused.stop();
      expect(stats.connects).toBe(0);
      expect(stats.connected).toBe(false);
      expect(stats.lastFailure).toBe('refused');
      expect(stats.lastError).toMatch(/refused|amqp:|not[- ]found|not allowed|denied/i);
      // 100, 200, 400, 800, 1600 ms between attempts: at most 6 in 3 s (a reset backoff
      // after every "opened" connection made more than 10).
      expect(stats.failedAttempts).toBeGreaterThanOrEqual(2);
      expect(stats.failedAttempts).toBeLessThanOrEqual(Math.ceil(elapsed / 500) + 1);
      expect(changes.get('h-refused')?.some((c) => c.connected)).toBe(false);
    });

    it('a fence request whose deadline passed while queued is never delivered (TTL)', async () => {
      const late = bus('h-ttl');
      await late.start({ timeoutMs: 30_000 });
      await late.stop(); // its request queue stays on the broker, without a consumer
      const expiring = fenceRequest(h1, 'h-ttl', 400, 2);
      const control = fenceRequest(h1, 'h-ttl', 30_000, 3);
      await h1.sendToHost('h-ttl', expiring);
      await h1.sendToHost('h-ttl', control);
      await sleep(1500);
      const back = bus('h-ttl');
      await back.start({ timeoutMs: 30_000 });
      await waitFor('the unexpired request', () => received('h-ttl', control.id, 'request'));
      await sleep(500);
      expect(received('h-ttl', expiring.id)).toBe(false);
      await back.stop();
    });

    it.each<[NodeJS.Signals]>([['SIGTERM'], ['SIGKILL']])(
      'reconnects after the broker is stopped with %s',
      async (signal) => {
        const before = changes.get('h2')?.length ?? 0;
        const broker = fixture.broker();
        await broker.stop(signal);
        await waitFor('h2 sees the broker go', () =>
          (changes.get('h2') ?? []).slice(before).some((c) => !c.connected),
        );
        await expect(h1.publish(fenceRequest(h1, 'h2', 10_000, 4))).rejects.toThrow(
          /not-connected|disconnected/,
        );
        await broker.restart();
        await waitFor(
          'every host reconnected',
          () => [h1, h2, h3].every((b) => b.connected),
          60_000,
        );
        expect(
          (changes.get('h2') ?? []).slice(before).some((c) => c.connected && c.reconnected),
        ).toBe(true);
        const hb = heartbeat(h3);
        await h3.publish(hb);
        await waitFor('a heartbeat after the restart', () => received('h1', hb.id, 'fanout'));
      },
      120_000,
    );

    it('bad credentials give a clear error and are not retried forever', async () => {
      const b = fixture.broker();
      const user = fixture.perClusterUsers ? HOSTS_USER : (b.users[0] as BrokerUser);
      const wrong = bus('h-badpass', { user, password: 'not-the-password', authAttempts: 3 });
      const error = await wrong.start({ timeoutMs: 20_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      const stats = wrong.stats();
      await wrong.stop();
      expect(error).toBeInstanceOf(BusConnectionError);
      const e = error as BusConnectionError;
      expect(e.kind).toBe('auth');
      expect(e.retryable).toBe(false);
      expect(e.amqp?.condition).toBe('amqp:unauthorized-access');
      expect(e.message).not.toMatch(/unknown/);
      expect(stats.gaveUp).toBe(true);
      expect(stats.failedAttempts).toBe(3);
      expect(changes.get('h-badpass')?.some((c) => c.gaveUp === true)).toBe(true);
    });

    const tls = fixture.kind === 'rabbitmq' ? it.skip : it;
    tls(
      'amqps:// with the test CA works; a wrong CA or a name not in the certificate is refused',
      async () => {
        const { port, pki } = fixture.tls() ?? { port: 0, pki: undefined };
        if (!pki) throw new Error('no TLS set up');
        const good = bus('h-tls', { urls: [`amqps://127.0.0.1:${port}`], ca: pki.ca });
        await good.start({ timeoutMs: 20_000 });
        const hb = heartbeat(good);
        await good.publish(hb);
        await waitFor('a heartbeat over TLS reaching a plain-TCP host', () =>
          received('h1', hb.id, 'fanout'),
        );
        await good.stop();

        for (const [host, url, ca, expected] of [
          [
            'h-tls-ca',
            `amqps://127.0.0.1:${port}`,
            pki.otherCa,
            /certificate|self[- ]signed|verify/i,
          ],
          [
            'h-tls-name',
            `amqps://127.0.0.2:${port}`,
            pki.ca,
            /altnames|IP: 127\.0\.0\.2|hostname/i,
          ],
        ] as const) {
          const refused = bus(host, { urls: [url], ca });
          await refused.start({ wait: false });
          await waitFor(`${host} refused`, () => refused.stats().failedAttempts >= 1, 10_000);
          const stats = refused.stats();
          await refused.stop();
          expect(stats.connects).toBe(0);
          expect(stats.lastFailure).toBe('transport');
          expect(stats.lastError).toMatch(expected);
        }
      },
    );

    const isolation = fixture.perClusterUsers ? it : it.skip;
    isolation(
      "another cluster's user can neither read nor publish on this cluster's addresses",
      async () => {
        const b = fixture.broker();
        const profile = resolveProfile(b.profile);
        const expand = (t: string, host: string) =>
          t.replaceAll('{cluster}', COMPLIANCE_CLUSTER).replaceAll('{host}', host);
        const attempts: [string, 'sender' | 'receiver', string, string[]][] = [
          [
            'read the fan-out',
            'receiver',
            expand(profile.eventSubscribeAddress, 'h9'),
            profile.eventCapabilities,
          ],
          [
            'publish on the fan-out',
            'sender',
            expand(profile.eventAddress, 'h9'),
            profile.eventCapabilities,
          ],
          [
            'read a request queue',
            'receiver',
            expand(profile.requestAddress, 'h2'),
            profile.queueCapabilities,
          ],
          [
            'send a request',
            'sender',
            expand(profile.requestAddress, 'h2'),
            profile.queueCapabilities,
          ],
          [
            'read a reply queue',
            'receiver',
            expand(profile.replyAddress, 'h1'),
            profile.queueCapabilities,
          ],
        ];
        const outcomes: string[] = [];
        for (const [what, kind, address, capabilities] of attempts) {
          const result = await rawAttach(b.url, OTHER_USER, kind, address, capabilities, {
            hostname: profile.openHostname?.replaceAll('{cluster}', COMPLIANCE_CLUSTER),
          });
          outcomes.push(`${what}: ${result}`);
        }
        expect(outcomes.filter((o) => !/: refused/.test(o))).toEqual([]);
        // and this cluster's own user may do all of it
        const own = await rawAttach(
          b.url,
          HOSTS_USER,
          'sender',
          expand(profile.requestAddress, 'h2'),
          profile.queueCapabilities,
          {
            hostname: profile.openHostname?.replaceAll('{cluster}', COMPLIANCE_CLUSTER),
            send: true,
          },
        );
        expect(own).toBe('accepted');
      },
    );
  });
}

/**
 * One raw attach (and optionally one send) as `user`: 'refused' when the connection, the
 * attach or the send is refused; 'attached' or 'accepted' otherwise.
 */
export async function rawAttach(
  url: string,
  user: BrokerUser,
  kind: 'sender' | 'receiver',
  address: string,
  capabilities: string[],
  options: { hostname?: string; send?: boolean } = {},
): Promise<string> {
  const u = new URL(url);
  const container = rhea.create_container({
    id: `raw-${process.pid}-${Date.now()}-${Math.random()}`,
  });
  return new Promise<string>((resolve) => {
    const link: { conn?: rhea.Connection } = {};
    const done = (result: string) => {
      clearTimeout(timer);
      const conn = link.conn;
      try {
        conn?.close();
      } catch {
        // closing a broken connection
      }
      setTimeout(
        () => (conn as unknown as { socket?: { destroy(): void } })?.socket?.destroy(),
        200,
      );
      resolve(result);
    };
    // a refusal always shows within this time on a local broker
    const timer = setTimeout(() => done(options.send ? 'no outcome' : 'attached'), 1500);
    for (const ev of [
      'connection_error',
      'connection_close',
      'disconnected',
      'session_error',
      'session_close',
      'sender_error',
      'sender_close',
      'receiver_error',
      'receiver_close',
      'rejected',
      'released',
    ]) {
      container.on(ev, () => done('refused'));
    }
    container.on('accepted', () => done('accepted'));
    let sent = false;
    container.on('sendable', (ctx: rhea.EventContext) => {
      if (options.send && ctx.sender && !sent) {
        sent = true;
        ctx.sender.send({ body: '{}', ttl: 1000 });
      }
    });
    const terminus = capabilities.length ? { address, capabilities } : address;
    const conn = container.connect({
      host: u.hostname,
      port: Number(u.port),
      username: user.user,
      password: user.password,
      reconnect: false,
      ...(options.hostname ? { hostname: options.hostname } : {}),
    });
    link.conn = conn;
    if (kind === 'sender') conn.open_sender({ target: terminus as never });
    else conn.open_receiver({ source: terminus as never });
  });
}
