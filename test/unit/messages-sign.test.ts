import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalJson } from '../../src/messages/canonical.js';
import { isReplyFor } from '../../src/messages/reply.js';
import {
  type FenceRequestMessage,
  type HostStatusBody,
  type Message,
} from '../../src/messages/schemas.js';
import {
  createVerifyCounters,
  encodeMessage,
  MessageBuildError,
  MessageFactory,
  MessageVerifier,
  readClusterKey,
  ReplayCache,
  signingInput,
  signMessage,
  verifyMessage,
} from '../../src/messages/sign.js';

const KEY = Buffer.from('cluster-key-0123456789\n');
const OTHER_KEY = Buffer.from('another-cluster-key\n');
const NOW = 1_800_000_000_000;

function heartbeatBody(host: string, epoch: number): HostStatusBody {
  return {
    host,
    epoch,
    seq: 1,
    software: { name: 'virtfence', version: '0.1.0' },
    protocolVersion: 1,
    vmCount: 2,
    listeners: ['multicast'],
  };
}

function factory(
  host = 'h1',
  key: Buffer = KEY,
  cluster = 'virtfence',
  validate = true,
): MessageFactory {
  return new MessageFactory({
    cluster,
    hostId: host,
    key,
    epoch: NOW - 5000,
    now: () => NOW,
    validate,
  });
}

function verify(raw: string, options: Partial<Parameters<typeof verifyMessage>[2]> = {}) {
  return verifyMessage(raw, KEY, { cluster: 'virtfence', now: NOW, ...options });
}

describe('canonical encoding', () => {
  it('sorts keys recursively, drops undefined members and has no whitespace', () => {
    expect(
      canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: 'x y' }, u: undefined }),
    ).toBe('{"a":{"c":"x y","d":[3,{"y":null,"z":true}]},"b":1}');
  });

  it('is independent of key insertion order', () => {
    expect(canonicalJson({ x: 1, y: { a: 1, b: 2 } })).toBe(
      canonicalJson({ y: { b: 2, a: 1 }, x: 1 }),
    );
  });

  it('sorts by UTF-16 code units and escapes strings as JSON', () => {
    expect(canonicalJson({ é: 1, Z: 2, a: 3, '"q"': 'line\nbreak' })).toBe(
      '{"\\"q\\"":"line\\nbreak","Z":2,"a":3,"é":1}',
    );
  });

  it('refuses values without a JSON form', () => {
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(TypeError);
    expect(() => canonicalJson({ a: 1n })).toThrow(TypeError);
  });

  it('signs exactly HMAC-SHA-256(key, canonical JSON without sig) as hex (golden vector)', () => {
    const envelope = {
      v: 1 as const,
      type: 'resync-request' as const,
      cluster: 'c1',
      from: 'h1',
      epoch: 1,
      seq: 2,
      ts: 3,
      id: 'id-00000001',
      body: { reason: 'boot' },
    };
    const signed = signMessage(envelope, Buffer.from('k'));
    const text =
      '{"body":{"reason":"boot"},"cluster":"c1","epoch":1,"from":"h1","id":"id-00000001","seq":2,"ts":3,"type":"resync-request","v":1}';
    expect(signingInput(signed).toString('utf8')).toBe(text);
    expect(signed.sig).toBe(createHmac('sha256', 'k').update(text).digest('hex'));
  });
});

describe('sign and verify', () => {
  it('accepts a message from the factory and returns the parsed message', () => {
    const msg = factory().create('heartbeat', heartbeatBody('h1', NOW - 5000));
    const result = verify(encodeMessage(msg));
    expect(result).toEqual({ ok: true, message: msg });
  });

  it('increases seq per sender and gives unique ids', () => {
    const f = factory();
    const a = f.create('resync-request', { reason: 'a' });
    const b = f.create('resync-request', { reason: 'b' });
    expect(b.seq).toBe(a.seq + 1);
    expect(a.id).not.toBe(b.id);
    expect(f.seq).toBe(b.seq);
  });

  it('accepts raw bytes and the same message with keys in another order', () => {
    const msg = factory().create('resync-request', { reason: 'x', target: 'h2' });
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(msg).reverse()));
    expect(verify(reordered).ok).toBe(true);
    expect(verify(Buffer.from(encodeMessage(msg)) as unknown as string).ok).toBe(true);
  });

  it('covers unknown extra fields with the signature', () => {
    const base = factory().create('resync-request', { reason: 'x' });
    const withExtra = signMessage({ ...base, extra: 'new-field' } as typeof base, KEY);
    expect(verify(JSON.stringify(withExtra)).ok).toBe(true);
    const tampered = { ...withExtra, extra: 'changed' };
    expect(verify(JSON.stringify(tampered))).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  it('rejects invalid JSON', () => {
    expect(verify('{"v":1,')).toMatchObject({ ok: false, reason: 'invalid-json' });
  });

  it('rejects an unsupported version before anything else', () => {
    const msg = factory().create('resync-request', { reason: 'x' });
    expect(verify(JSON.stringify({ ...msg, v: 2 }))).toMatchObject({
      ok: false,
      reason: 'unsupported-version',
    });
  });

  it('rejects schema errors with the zod path', () => {
    const msg = factory().create('heartbeat', heartbeatBody('h1', NOW - 5000));
    const bad = { ...msg, body: { ...msg.body, vmCount: -1 } };
    expect(verify(JSON.stringify(bad))).toMatchObject({
      ok: false,
      reason: 'schema',
      path: ['body', 'vmCount'],
    });
    expect(verify(JSON.stringify({ ...msg, type: 'no-such-type' }))).toMatchObject({
      ok: false,
      reason: 'schema',
      path: ['type'],
    });
    expect(verify('[1,2]')).toMatchObject({ ok: false, reason: 'schema', path: [] });
    const { sig: _s, ...noSig } = msg;
    expect(verify(JSON.stringify(noSig))).toMatchObject({
      ok: false,
      reason: 'schema',
      path: ['sig'],
    });
  });

  it('rejects a body that speaks for another host than the envelope sender', () => {
    const msg = factory('h1', KEY, 'virtfence', false).create(
      'heartbeat',
      heartbeatBody('h2', NOW - 5000),
    );
    expect(verify(encodeMessage(msg))).toMatchObject({
      ok: false,
      reason: 'schema',
      path: ['body', 'host'],
    });
  });

  it('rejects a fence trace that speaks for another origin host', () => {
    const msg = factory('h1', KEY, 'virtfence', false).create('fence-trace', {
      requestId: 'off:1:vm',
      originHost: 'h2',
      listener: 'multicast',
      requester: '10.0.0.1',
      action: 'off',
      target: 'vm',
      executedBy: ['h3'],
      code: 0,
      reason: 'ok',
      shared: false,
      received: NOW - 10,
      answered: NOW,
    });
    expect(verify(encodeMessage(msg))).toMatchObject({
      ok: false,
      reason: 'schema',
      path: ['body', 'originHost'],
    });
  });

  it('refuses to build a message receivers would drop, without using up a sequence number', () => {
    const f = factory('h1');
    expect(() => f.create('heartbeat', heartbeatBody('h2', NOW - 5000))).toThrow(MessageBuildError);
    expect(() =>
      f.create('heartbeat', { ...heartbeatBody('h1', NOW - 5000), vmCount: -1 }),
    ).toThrow(/body\.vmCount/);
    expect(f.seq).toBe(0);
    expect(f.create('resync-request', { reason: 'ok' }).seq).toBe(1);
  });

  it('rejects another cluster', () => {
    const msg = factory('h1', KEY, 'other').create('resync-request', { reason: 'x' });
    expect(verify(encodeMessage(msg))).toMatchObject({ ok: false, reason: 'wrong-cluster' });
  });

  it('rejects a message signed with another key (forgery) and a tampered field', () => {
    const forged = factory('h1', OTHER_KEY).create('resync-request', { reason: 'x' });
    expect(verify(encodeMessage(forged))).toMatchObject({
      ok: false,
      reason: 'bad-signature',
      from: 'h1',
    });
    const genuine = factory().create('resync-request', { reason: 'x' });
    expect(verify(JSON.stringify({ ...genuine, seq: genuine.seq + 1 }))).toMatchObject({
      ok: false,
      reason: 'bad-signature',
    });
  });

  it('rejects timestamps outside the window, both sides, default ±30 s', () => {
    const msg = factory().create('resync-request', { reason: 'x' });
    const raw = encodeMessage(msg);
    expect(verify(raw, { now: NOW + 30_000 }).ok).toBe(true);
    expect(verify(raw, { now: NOW + 30_001 })).toMatchObject({
      ok: false,
      reason: 'out-of-window',
    });
    expect(verify(raw, { now: NOW - 30_001 })).toMatchObject({
      ok: false,
      reason: 'out-of-window',
    });
    expect(verify(raw, { now: NOW + 2000, windowMs: 1000 })).toMatchObject({
      ok: false,
      reason: 'out-of-window',
    });
  });

  it('rejects a replay of the same bytes and counts every outcome', () => {
    const counters = createVerifyCounters();
    const cache = new ReplayCache(10);
    const raw = encodeMessage(factory().create('resync-request', { reason: 'x' }));
    expect(verify(raw, { replayCache: cache, counters }).ok).toBe(true);
    expect(verify(raw, { replayCache: cache, counters })).toMatchObject({
      ok: false,
      reason: 'replay',
    });
    expect(verify('nope', { replayCache: cache, counters }).ok).toBe(false);
    expect(counters).toMatchObject({
      accepted: 1,
      replay: 1,
      'invalid-json': 1,
      'bad-signature': 0,
    });
  });

  it('does not let a forged message enter the replay cache', () => {
    const cache = new ReplayCache(10);
    const genuine = factory().create('resync-request', { reason: 'x' });
    const forged = signMessage({ ...genuine }, OTHER_KEY);
    expect(verify(encodeMessage(forged), { replayCache: cache }).ok).toBe(false);
    expect(cache.size).toBe(0);
    expect(verify(encodeMessage(genuine), { replayCache: cache }).ok).toBe(true);
  });

  it('MessageVerifier keeps its own counters and cache', () => {
    const verifier = new MessageVerifier(KEY, 'virtfence', { now: () => NOW });
    const raw = encodeMessage(factory().create('resync-request', { reason: 'x' }));
    expect(verifier.verify(raw).ok).toBe(true);
    expect(verifier.verify(raw)).toMatchObject({ ok: false, reason: 'replay' });
    expect(verifier.counters.accepted).toBe(1);
    expect(verifier.counters.replay).toBe(1);
  });
});

describe('replay cache bounds', () => {
  it('never exceeds capacity and never accepts an evicted id again', () => {
    const cache = new ReplayCache(3);
    const window = 30_000;
    for (let i = 0; i < 5; i++)
      expect(cache.checkAndAdd(`id${i}`, NOW + i, NOW, window)).toBe(false);
    expect(cache.size).toBe(3);
    expect(cache.evicted).toBe(2);
    // id0 and id1 were evicted: the floor still rejects them.
    expect(cache.checkAndAdd('id0', NOW + 0, NOW, window)).toBe(true);
    expect(cache.checkAndAdd('id1', NOW + 1, NOW, window)).toBe(true);
    expect(cache.checkAndAdd('id4', NOW + 4, NOW, window)).toBe(true);
  });

  it('prunes expired entries before evicting live ones', () => {
    const cache = new ReplayCache(2);
    cache.checkAndAdd('old1', NOW - 60_000, NOW - 60_000, 30_000);
    cache.checkAndAdd('old2', NOW - 60_000, NOW - 60_000, 30_000);
    expect(cache.checkAndAdd('new', NOW, NOW, 30_000)).toBe(false);
    expect(cache.evicted).toBe(0);
    expect(cache.size).toBe(1);
  });
});

describe('reply binding', () => {
  function request(): FenceRequestMessage {
    return factory('h1').create('fence-request', {
      requestId: 'req-1',
      originHost: 'h1',
      listener: 'multicast',
      requester: '192.0.2.10',
      target: 'vm1',
      targetKind: 'name',
      action: 'off',
      deadline: NOW + 10_000,
      toHost: 'h2',
    });
  }
  function reply(from: string, requestId = 'req-1', executingHost = from): Message {
    return factory(from, KEY, 'virtfence', false).create('fence-reply', {
      requestId,
      code: 0,
      reason: 'done',
      executingHost,
      vmState: 5,
      timings: { received: NOW, finished: NOW + 1 },
    });
  }

  it('accepts the addressed host and listed claimants only, for the same request id', () => {
    expect(isReplyFor(reply('h2'), request())).toBe(true);
    expect(isReplyFor(reply('h3'), request())).toBe(false);
    expect(isReplyFor(reply('h3'), request(), ['h3'])).toBe(true);
    expect(isReplyFor(reply('h2', 'req-2'), request())).toBe(false);
    expect(isReplyFor(reply('h2', 'req-1', 'h3'), request(), ['h3'])).toBe(false);
    expect(isReplyFor(request(), request())).toBe(false);
  });
});

describe('key file', () => {
  it('reads raw bytes (trailing newline kept) and refuses an empty key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vf-key-'));
    try {
      writeFileSync(join(dir, 'k'), 'secret\n');
      writeFileSync(join(dir, 'empty'), '');
      writeFileSync(join(dir, 'long'), Buffer.alloc(5000, 0x41));
      expect((await readClusterKey(join(dir, 'k'))).toString()).toBe('secret\n');
      expect((await readClusterKey(join(dir, 'long'))).length).toBe(4096);
      await expect(readClusterKey(join(dir, 'empty'))).rejects.toThrow(/empty/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
