/** The amqp backend block (src/amqp/config.ts) and broker address profiles (pure). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AMQP_DEFAULTS,
  loadAmqpSecrets,
  numberedValues,
  parseAmqpConfig,
  parseAmqpConfigOrThrow,
} from '../../src/amqp/config.js';
import { PROFILES, PROFILE_NAMES, expandAddress, resolveProfile } from '../../src/amqp/profiles.js';
import { PROFILES_REQUIRING_USERNAME } from '../../src/config/plugins/backends.js';

const minimal = { url: 'amqp://broker:5672', key_file: '/etc/cluster/virtfence.key' };

describe('amqp config block', () => {
  it('applies every default', () => {
    const { config, unknownKeys } = parseAmqpConfigOrThrow(minimal);
    expect(config).toEqual({
      urls: ['amqp://broker:5672'],
      tls: false,
      cluster: 'virtfence',
      hostId: hostname(),
      keyFile: '/etc/cluster/virtfence.key',
      profile: 'rabbitmq3',
      heartbeatInterval: 1000,
      deadAfter: 5000,
      uris: [],
      idleTimeout: AMQP_DEFAULTS.idleTimeout,
      maxReconnectDelay: 2000,
      sendTimeout: 5000,
      nameMode: 'name',
    });
    expect(unknownKeys).toEqual([]);
  });

  it('reads every key, numbered lists stopping at the first gap', () => {
    const { config } = parseAmqpConfigOrThrow({
      url: 'amqps://a:5671',
      url1: 'amqp://b',
      url2: 'amqp://c',
      url4: 'amqp://ignored',
      username: 'fence',
      password_file: '/etc/virtfence.pw',
      tls: '1',
      ca_file: '/etc/ca.pem',
      cluster: 'prod',
      host_id: 'hv1.example.org',
      key_file: '/k',
      profile: 'artemis',
      event_address: 'ev.{cluster}',
      request_address: 'rq.{cluster}.{host}',
      reply_address: 'rp.{cluster}.{host}',
      heartbeat_interval: '500',
      dead_after: '3000',
      uri: 'qemu:///system',
      uri1: 'test:///default',
      container_id: 'hv1',
      idle_time_out: '0',
      max_reconnect_delay: '1500',
      send_timeout: '2000',
      name_mode: 'uuid',
    });
    expect(config).toMatchObject({
      urls: ['amqps://a:5671', 'amqp://b', 'amqp://c'],
      username: 'fence',
      passwordFile: '/etc/virtfence.pw',
      tls: true,
      caFile: '/etc/ca.pem',
      cluster: 'prod',
      hostId: 'hv1.example.org',
      profile: 'artemis',
      eventAddress: 'ev.{cluster}',
      requestAddress: 'rq.{cluster}.{host}',
      replyAddress: 'rp.{cluster}.{host}',
      heartbeatInterval: 500,
      deadAfter: 3000,
      uris: ['qemu:///system', 'test:///default'],
      containerId: 'hv1',
      idleTimeout: 0,
      maxReconnectDelay: 1500,
      sendTimeout: 2000,
      nameMode: 'uuid',
    });
    expect(numberedValues({ uri1: 'x' }, 'uri')).toEqual([]);
  });

  it.each([
    [{ key_file: '/k' }, 'url'],
    [{ url: 'http://x', key_file: '/k' }, 'url'],
    [{ url: 'amqp://a', url1: 'nope', key_file: '/k' }, 'url1'],
    [{ url: 'amqp://a' }, 'key_file'],
    [{ ...minimal, profile: 'kafka' }, 'profile'],
    [{ ...minimal, tls: '2' }, 'tls'],
    [{ ...minimal, heartbeat_interval: '1s' }, 'heartbeat_interval'],
    [{ ...minimal, heartbeat_interval: '2000', dead_after: '1000' }, 'dead_after'],
    [{ ...minimal, request_address: '/queue/all' }, 'request_address'],
    [{ ...minimal, event_address: '/topic/{nope}' }, 'event_address'],
    [{ ...minimal, host_id: 'bad host' }, 'host_id'],
    [{ ...minimal, password: 'x', password_file: '/p' }, 'password_file'],
    [{ ...minimal, max_reconnect_delay: '999999' }, 'max_reconnect_delay'],
  ])('rejects %j naming key %s', (values, key) => {
    const result = parseAmqpConfig(values);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems.map((p) => p.key)).toContain(key);
  });

  it('lists unknown keys for a warning', () => {
    const result = parseAmqpConfig({ ...minimal, hearbeat_interval: '5' });
    expect(result.ok && result.unknownKeys).toEqual(['hearbeat_interval']);
  });

  it('throws an error naming the key and never echoing the password', () => {
    expect(() => parseAmqpConfigOrThrow({ url: 'amqp://a', password: 'hunter2' })).toThrow(
      /key_file/,
    );
    try {
      parseAmqpConfigOrThrow({ url: 'amqp://a', password: 'hunter2' });
    } catch (err) {
      expect(String(err)).not.toContain('hunter2');
    }
  });

  it('loads the key, the first line of the password file and the CA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vf-amqpcfg-'));
    try {
      writeFileSync(join(dir, 'k'), 'key\n');
      writeFileSync(join(dir, 'pw'), 's3cret\nignored\n');
      writeFileSync(join(dir, 'ca'), 'CA');
      const { config } = parseAmqpConfigOrThrow({
        url: 'amqp://a',
        key_file: join(dir, 'k'),
        password_file: join(dir, 'pw'),
        ca_file: join(dir, 'ca'),
      });
      const secrets = await loadAmqpSecrets(config);
      expect(secrets.key.toString()).toBe('key\n');
      expect(secrets.password).toBe('s3cret');
      expect(secrets.ca?.toString()).toBe('CA');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('address profiles', () => {
  it('has the measured conventions per broker', () => {
    expect(PROFILE_NAMES).toEqual([
      'rabbitmq3',
      'rabbitmq4',
      'activemq',
      'artemis',
      'qpid-broker-j',
      'qpidd',
    ]);
    expect(PROFILES.rabbitmq3.eventAddress.startsWith('/topic/')).toBe(true);
    expect(PROFILES.rabbitmq3.requestAddress.startsWith('/queue/')).toBe(true);
    expect(PROFILES.rabbitmq3).toMatchObject({
      anonymousRelay: false,
      dynamicReply: false,
      durableQueues: true,
    });
    expect(PROFILES.rabbitmq4.eventAddress.startsWith('/exchanges/amq.topic/')).toBe(true);
    expect(PROFILES.rabbitmq4.requestAddress.startsWith('/queues/')).toBe(true);
    expect(PROFILES.activemq.eventAddress.startsWith('topic://')).toBe(true);
    expect(PROFILES_REQUIRING_USERNAME).toEqual(['activemq', 'qpid-broker-j']);
    expect(PROFILES.artemis.eventCapabilities).toEqual(['topic']);
    expect(PROFILES.artemis.queueCapabilities).toEqual(['queue']);
    // one virtual host per cluster on Broker-J, chosen by the AMQP open's hostname
    expect(PROFILES['qpid-broker-j'].openHostname).toBe('{cluster}');
    // the relay is trusted nowhere we test: "accepted" must mean stored for a consumer
    for (const name of ['rabbitmq3', 'rabbitmq4', 'activemq', 'artemis', 'qpid-broker-j'] as const)
      expect(PROFILES[name].anonymousRelay).toBe(false);
    for (const name of PROFILE_NAMES) {
      const p = PROFILES[name];
      const a = expandAddress(p.requestAddress, { cluster: 'c', host: 'h1' });
      const b = expandAddress(p.requestAddress, { cluster: 'c', host: 'h2' });
      expect(a).not.toBe(b);
      expect(expandAddress(p.replyAddress, { cluster: 'c', host: 'h1' })).not.toBe(a);
    }
  });

  it('qpidd: plain node names created on demand as topic or queue; no relay, named replies', () => {
    const p = resolveProfile('qpidd');
    // The broker never splits `exchange/subject`: each address is one node name.
    expect(expandAddress(p.eventAddress, { cluster: 'c' })).toBe('virtfence.c.events');
    expect(expandAddress(p.eventSubscribeAddress, { cluster: 'c', host: 'h1' })).toBe(
      'virtfence.c.events',
    );
    expect(expandAddress(p.requestAddress, { cluster: 'c', host: 'h1' })).toBe(
      'virtfence.c.req.h1',
    );
    expect(expandAddress(p.replyAddress, { cluster: 'c', host: 'h1' })).toBe(
      'virtfence.c.reply.h1',
    );
    expect(p.eventCapabilities).toEqual(['topic', 'create-on-demand']);
    expect(p.queueCapabilities).toEqual(['queue', 'create-on-demand']);
    // Its relay accepts and drops messages for missing nodes; a dynamic reply queue vanishes
    // with its requester (a refused attach for the replying host).
    expect(p).toMatchObject({ anonymousRelay: false, dynamicReply: false, durableQueues: false });
  });

  it('expands templates and refuses a missing host or unknown placeholder', () => {
    expect(expandAddress('/queue/x.{cluster}.req.{host}', { cluster: 'c', host: 'h' })).toBe(
      '/queue/x.c.req.h',
    );
    expect(() => expandAddress('/queue/{host}', { cluster: 'c' })).toThrow(/host/);
    expect(() => expandAddress('/queue/{zone}', { cluster: 'c', host: 'h' })).toThrow(/zone/);
  });

  it('applies overrides; an overridden event address is also subscribed to', () => {
    const p = resolveProfile('rabbitmq4', {
      eventAddress: '/topic/custom',
      requestAddress: '/queue/r.{host}',
    });
    expect(p.eventAddress).toBe('/topic/custom');
    expect(p.eventSubscribeAddress).toBe('/topic/custom');
    expect(p.requestAddress).toBe('/queue/r.{host}');
    expect(p.replyAddress).toBe(PROFILES.rabbitmq4.replyAddress);
    expect(resolveProfile('rabbitmq4').eventSubscribeAddress).toBe(
      PROFILES.rabbitmq4.eventSubscribeAddress,
    );
  });
});
