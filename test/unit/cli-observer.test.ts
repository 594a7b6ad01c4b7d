/**
 * Pure parts of the broker-facing CLI: names and ages, key-check verdicts, the observer cache
 * (compaction must rebuild the same ownership table), trace records (request/reply pairing,
 * filters), firehose body decoding, and broker settings from config + flags.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import rhea from 'rhea';
import { MessageFactory } from '../../src/messages/sign.js';
import type { Message } from '../../src/messages/schemas.js';
import { loadConfigFile } from '../../src/config/load.js';
import { eventName, formatAge, resultName, stateName } from '../../src/cli/observer/format.js';
import { keyVerdict } from '../../src/cli/commands/key/check.js';
import type { ObservedHost, TableInput } from '../../src/cli/observer/observer.js';
import { replayInputs } from '../../src/cli/observer/observer.js';
import { compactInputs, pruneCache, readCache, writeCache } from '../../src/cli/observer/cache.js';
import { TraceBook, formatTraceLine } from '../../src/cli/observer/trace.js';
import { firehoseText } from '../../src/cli/observer/firehose.js';
import { hostViews, vmViews } from '../../src/cli/observer/views.js';
import { parseSeconds, resolveBrokerSettings } from '../../src/cli/observer/settings.js';

const LIVENESS = { heartbeatIntervalMs: 1000, deadAfterMs: 5000 };
const U = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

describe('names and ages', () => {
  test('states, events, results', () => {
    expect([1, 3, 5, 42].map(stateName)).toEqual(['running', 'paused', 'shut-off', 'state-42']);
    expect(stateName(null)).toBe('gone');
    expect([-1, 2, 5, 99].map(eventName)).toEqual(['polled', 'started', 'stopped', 'event-99']);
    expect([0, 1, 2, 3, 9].map(resultName)).toEqual(['success', 'fail', 'off', 'denied', 'code-9']);
  });
  test('ages', () => {
    expect(formatAge(undefined)).toBe('-');
    expect(formatAge(-5)).toBe('0.0s');
    expect(formatAge(420)).toBe('0.4s');
    expect(formatAge(12_300)).toBe('12s');
    expect(formatAge(185_000)).toBe('3m05s');
    expect(formatAge(7_260_000)).toBe('2h01m');
  });
  test('seconds flags', () => {
    expect(parseSeconds('1.5')).toBe(1500);
    expect(parseSeconds('0')).toBe(0);
    expect(() => parseSeconds('-1')).toThrow(/expected seconds/);
    expect(() => parseSeconds('1s')).toThrow(/expected seconds/);
  });
});

describe('key check verdicts', () => {
  const host = (verified: number, rejected: ObservedHost['rejected']): ObservedHost => ({
    id: 'h',
    status: undefined,
    statusType: undefined,
    lastStatusAt: undefined,
    verified,
    rejected,
    evidence: undefined,
  });
  test('match, mismatch, unknown', () => {
    expect(keyVerdict(undefined)).toEqual({ verdict: 'unknown', note: 'nothing heard from it' });
    expect(keyVerdict(host(0, {})).verdict).toBe('unknown');
    expect(keyVerdict(host(5, {}))).toEqual({ verdict: 'match', note: '' });
    expect(keyVerdict(host(0, { 'bad-signature': 3 }))).toEqual({
      verdict: 'mismatch',
      note: '3 message(s) failed signature verification',
    });
    expect(keyVerdict(host(2, { 'bad-signature': 1 })).verdict).toBe('mismatch');
    expect(keyVerdict(host(2, { 'out-of-window': 1 })).note).toMatch(/clock/);
    expect(keyVerdict(host(0, { 'out-of-window': 2 }))).toEqual({
      verdict: 'unknown',
      note: 'only unverifiable messages (out-of-window ×2)',
    });
  });
});

describe('observer cache', () => {
  /** A plausible history: inventories, events after them, restarts, heartbeats, evidence. */
  function history(): TableInput[] {
    const inputs: TableInput[] = [];
    let at = 1_000_000;
    const ev = (
      host: string,
      epoch: number,
      seq: number,
      uuid: string,
      event: number,
      state: number,
    ) =>
      inputs.push({
        kind: 'event',
        v: { host, epoch, seq, uuid, name: `vm-${uuid.slice(-2)}`, event, detail: 0, state },
        at: at++,
      });
    const inv = (host: string, epoch: number, seq: number, vms: number[]) =>
      inputs.push({
        kind: 'inventory',
        v: {
          host,
          epoch,
          seq,
          vms: vms.map((n) => ({ uuid: U(n), name: `vm-${U(n).slice(-2)}`, state: 1 })),
        },
        at: at++,
      });
    const hb = (host: string, epoch: number, seq: number) =>
      inputs.push({ kind: 'heartbeat', v: { host, epoch, seq, sentAt: at }, at: at++ });
    inv('a', 10, 1, [1, 2]);
    hb('a', 10, 1);
    ev('a', 10, 2, U(2), 5, 5); // vm-02 stopped
    inv('b', 20, 1, [3]);
    ev('b', 20, 2, U(4), 2, 1); // vm-04 started on b
    hb('b', 20, 1);
    inv('a', 10, 3, [1, 2, 5]);
    ev('a', 10, 4, U(1), 1, 5); // vm-01 undefined on a
    hb('a', 10, 2);
    ev('b', 20, 3, U(5), 2, 1); // vm-05 also on b: a conflict
    inputs.push({ kind: 'evidence', v: { host: 'b', fencedAt: at + 5, by: 'ipmi' }, at: at++ });
    inv('b', 30, 1, [3]); // b restarted
    hb('b', 30, 1);
    ev('b', 30, 2, U(6), 0, 5);
    return inputs;
  }

  test('the compacted inputs rebuild the same table', () => {
    const full = history();
    const small = compactInputs(full);
    expect(small.length).toBeLessThan(full.length);
    for (const self of ['observer', 'a', 'b']) {
      const x = replayInputs(full, self, LIVENESS);
      const y = replayInputs(small, self, LIVENESS);
      const now = 1_000_100;
      const sorted = (t: typeof x) => t.list().sort((m, n) => m.uuid.localeCompare(n.uuid));
      expect(sorted(y)).toEqual(sorted(x));
      for (const h of ['a', 'b']) {
        expect(y.hostInfo(h, now)).toEqual(x.hostInfo(h, now));
        expect(y.isFenced(h)).toBe(x.isFenced(h));
      }
    }
    expect(
      replayInputs(small, 'o', LIVENESS)
        .list()
        .map((v) => [v.name, v.hosts]),
    ).toEqual(
      expect.arrayContaining([
        ['vm-02', ['a']],
        ['vm-05', ['a']],
        ['vm-03', ['b']],
        ['vm-06', ['b']],
      ]),
    );
  });

  test('write, read back, foreign cluster and corrupt files are empty', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-cli-cache-'));
    try {
      const file = path.join(dir, 'sub', 'observed-c1.json');
      const inputs = history();
      writeCache(file, 'c1', { inputs, hosts: [], events: [] }, 2_000_000);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      const back = readCache(file, 'c1');
      expect(back?.inputs).toEqual(compactInputs(inputs));
      expect(readCache(file, 'other')).toBeUndefined();
      fs.writeFileSync(file, '{"version":1,');
      expect(readCache(file, 'c1')).toBeUndefined();
      expect(readCache(path.join(dir, 'absent.json'), 'c1')).toBeUndefined();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('hosts silent for longer than the maximum age are dropped', () => {
    const inputs = history();
    const pruned = pruneCache({ inputs, hosts: [], events: [] }, 1_000_000 + 20, 10);
    // every input of a was before 1_000_010; b has later ones
    expect(new Set(pruned.inputs.map((i) => i.v.host))).toEqual(new Set(['b']));
  });
});

describe('trace records', () => {
  const key = Buffer.from('unit-trace-key');
  const from = (host: string) => new MessageFactory({ cluster: 'c', hostId: host, key });
  const h1 = from('h1');
  const h3 = from('h3');
  const request = (id: string, target: string): Message =>
    h1.create('fence-request', {
      requestId: id,
      originHost: 'h1',
      listener: 'multicast',
      requester: '10.0.0.1',
      target,
      targetKind: 'name',
      action: 'off',
      deadline: Date.now() + 1000,
      toHost: 'h3',
    });
  const reply = (id: string): Message =>
    h3.create('fence-reply', {
      requestId: id,
      code: 0,
      reason: 'done',
      executingHost: 'h3',
      vmState: 5,
      timings: { received: 100, started: 110, finished: 142 },
    });
  const all = new Set([
    'vm-event',
    'fence-request',
    'fence-reply',
    'host-fenced',
    'announce',
  ] as const);

  test('a reply is paired with its request: same id, latency on our clock', () => {
    const book = new TraceBook({ types: all }, () => undefined);
    const req = book.record(request('off:1:vm-c1', 'vm-c1'), 'firehose', 5000);
    const rep = book.record(reply('off:1:vm-c1'), 'firehose', 5042);
    expect(req).toMatchObject({ type: 'fence-request', requestId: 'off:1:vm-c1', to: 'h3' });
    expect(rep).toMatchObject({
      requestId: 'off:1:vm-c1',
      latencyMs: 42,
      executionMs: 42,
      result: 'success',
      state: 'shut-off',
      target: 'vm-c1',
    });
    expect(formatTraceLine(req!)).toMatch(/fence-request +h1 → h3 +off vm-c1 .* id=off:1:vm-c1$/);
    expect(formatTraceLine(rep!)).toMatch(/0 success \(done\) from h3, vm shut-off, 42 ms after/);
    // a reply whose request was not seen has no latency
    expect(book.record(reply('other'), 'firehose', 6000)?.latencyMs).toBeNull();
  });

  test('a fence-trace shows the route, result and latency of an answered request', () => {
    const trace = h1.create('fence-trace', {
      requestId: 'off:7:vm-c1',
      originHost: 'h1',
      listener: 'serial',
      requester: U(9),
      action: 'off',
      target: 'vm-c1',
      executedBy: ['h3'],
      code: 0,
      reason: 'ok',
      shared: false,
      received: 1000,
      answered: 1012,
    });
    const book = new TraceBook({ types: new Set(['fence-trace'] as const) }, () => undefined);
    const r = book.record(trace, 'fanout', 2000);
    expect(r).toMatchObject({
      requestId: 'off:7:vm-c1',
      to: 'h3',
      host: 'h1',
      code: 0,
      latencyMs: 12,
    });
    expect(formatTraceLine(r!)).toMatch(
      /fence-trace +h1 → h3 +off vm-c1 \(serial from .*\): 0 success \(ok\), executed on h3, 12 ms +id=off:7:vm-c1$/,
    );
  });

  test('--vm keeps the replies of the requests it matched; --host and types filter', () => {
    const resolve = (t: string) =>
      t === 'vm-c1' || t === U(1) ? { name: 'vm-c1', uuid: U(1) } : undefined;
    const book = new TraceBook({ vm: U(1), types: all }, resolve);
    expect(book.record(request('a', 'vm-c1'), 'firehose', 1)).toBeDefined();
    expect(book.record(request('b', 'vm-x'), 'firehose', 2)).toBeUndefined();
    expect(book.record(reply('a'), 'firehose', 3)).toBeDefined();
    expect(book.record(reply('b'), 'firehose', 4)).toBeUndefined();

    const byHost = new TraceBook({ host: 'h2', types: all }, resolve);
    expect(byHost.record(request('c', 'vm-c1'), 'firehose', 5)).toBeUndefined();
    const onlyReplies = new TraceBook({ types: new Set(['fence-reply'] as const) }, resolve);
    expect(onlyReplies.record(request('d', 'vm-c1'), 'firehose', 6)).toBeUndefined();
    expect(onlyReplies.record(reply('d'), 'firehose', 7)?.latencyMs).toBe(1);
  });
});

describe('firehose copies', () => {
  test('the signed JSON is recovered from the copied AMQP body section', () => {
    const json = '{"v":1,"type":"fence-request"}';
    const section = rhea.message.encode({ body: json });
    expect(firehoseText({ typecode: 117, content: section })).toBe(json);
    expect(firehoseText(section)).toBe(json);
    expect(firehoseText('plain')).toBe('plain');
    expect(firehoseText({ typecode: 117, content: Buffer.from([0xff, 0x00]) })).toBeUndefined();
    expect(firehoseText(42)).toBeUndefined();
  });
});

describe('broker settings', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-cli-settings-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const loader = (file: string) => {
    const { config } = loadConfigFile(file);
    return { tree: config.tree, groups: config.groups };
  };
  const write = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text, { mode: 0o600 });
    return p;
  };

  test('the amqp block, overridden by flags; the observer gets its own id', async () => {
    const key = write('cluster.key', 'k1');
    const other = write('other.key', 'k2');
    const conf = write(
      'fence_virt.conf',
      `fence_virtd { listener = "multicast"; backend = "amqp"; }
backends { amqp { url = "amqp://b1:5672"; url1 = "amqp://b2:5672"; cluster = "prod"; host_id = "hv1";
  key_file = "${key}"; heartbeat_interval = "500"; dead_after = "3000"; } }
groups { group { name = "g"; ip = "10.0.0.1"; uuid = "vm1"; } }
`,
    );
    const s = await resolveBrokerSettings({ config: conf }, loader);
    expect(s.amqp.urls).toEqual(['amqp://b1:5672', 'amqp://b2:5672']);
    expect(s.amqp.cluster).toBe('prod');
    expect(s.configHostId).toBe('hv1');
    expect(s.observerId).toMatch(/^virtfence-cli\.\d+\.[0-9a-f]{6}$/);
    expect(s.amqp.hostId).toBe(s.observerId);
    expect(s.key.toString()).toBe('k1');
    expect(s.waitMs).toBe(1250);
    expect(s.groups).toEqual([{ name: 'g', ips: ['10.0.0.1'], uuids: ['vm1'] }]);
    expect(s.profile.requestAddress).toBe('/queue/virtfence.{cluster}.req.{host}');

    const o = await resolveBrokerSettings(
      {
        config: conf,
        url: ['amqp://b9:5673'],
        cluster: 'test',
        'key-file': other,
        wait: 3000,
        cache: false,
      },
      loader,
    );
    expect(o.amqp.urls).toEqual(['amqp://b9:5673']);
    expect(o.amqp.cluster).toBe('test');
    expect(o.key.toString()).toBe('k2');
    expect(o.waitMs).toBe(3000);
    expect(o.cacheFile).toBeUndefined();
  });

  test('one-line reasons: no broker, missing key, bad value', async () => {
    const conf = write(
      'plain.conf',
      'fence_virtd { listener = "multicast"; backend = "libvirt"; }\n',
    );
    await expect(resolveBrokerSettings({ config: conf }, loader)).rejects.toThrow(
      /^no broker configured: .*plain\.conf has no backends \{ amqp/,
    );
    await expect(
      resolveBrokerSettings(
        {
          config: path.join(dir, 'absent.conf'),
          url: ['amqp://x'],
          'key-file': path.join(dir, 'nokey'),
        },
        (f) => {
          throw new Error(`Cannot read configuration file ${f}`);
        },
      ),
    ).rejects.toThrow(/Cannot read configuration file/);
    await expect(
      resolveBrokerSettings(
        { config: conf, url: ['amqp://x'], 'key-file': path.join(dir, 'nokey') },
        loader,
      ),
    ).rejects.toThrow(/^cluster key missing: cannot read .*nokey \(ENOENT\)$/);
    await expect(
      resolveBrokerSettings({ config: conf, url: ['http://x'], 'key-file': 'k' }, loader),
    ).rejects.toThrow(/url: an amqp:\/\/host/);
  });
});

describe('host and VM views', () => {
  test('a VM two hosts run is a conflict; a fenced claimant owns nothing', () => {
    const at = 10_000;
    const inputs: TableInput[] = [
      { kind: 'heartbeat', v: { host: 'a', epoch: 1, seq: 1, sentAt: at }, at },
      { kind: 'heartbeat', v: { host: 'b', epoch: 2, seq: 1, sentAt: at }, at },
      {
        kind: 'inventory',
        v: { host: 'a', epoch: 1, seq: 1, vms: [{ uuid: U(1), name: 'web', state: 1 }] },
        at,
      },
      {
        kind: 'inventory',
        v: {
          host: 'b',
          epoch: 2,
          seq: 1,
          vms: [
            { uuid: U(1), name: 'web', state: 1 },
            { uuid: U(2), name: 'db', state: 5 },
          ],
        },
        at,
      },
    ];
    const events = new Map([
      [
        U(1),
        { uuid: U(1), name: 'web', host: 'b', event: 2, detail: 0, state: 1, receivedAt: at - 500 },
      ],
    ]);
    const table = replayInputs(inputs, 'observer', LIVENESS);
    const vms = vmViews(table, events, at + 100);
    expect(vms.map((v) => [v.name, v.owners, v.conflict, v.state])).toEqual([
      ['db', [], false, 'shut-off'],
      ['web', ['a', 'b'], true, 'running'],
    ]);
    expect(vms[1]?.lastEvent).toEqual({
      event: 'started',
      host: 'b',
      state: 'running',
      ageMs: 600,
    });
    expect(vmViews(table, events, at, 'a').map((v) => v.name)).toEqual(['web']);

    const fenced = replayInputs(
      [...inputs, { kind: 'evidence', v: { host: 'b', fencedAt: at + 1, by: 'ipmi' }, at: at + 2 }],
      'observer',
      LIVENESS,
    );
    const after = vmViews(fenced, events, at + 100);
    expect(after.find((v) => v.name === 'web')).toMatchObject({ owners: ['a'], conflict: false });
    const hosts = hostViews(fenced, new Map(), at + 6000, 'observer');
    expect(hosts.map((h) => [h.host, h.liveness, h.fenced, h.vms, h.running, h.broker])).toEqual([
      ['a', 'dead', false, 1, 1, 'silent'],
      ['b', 'dead', true, 2, 1, 'silent'],
    ]);
    expect(hostViews(table, new Map(), at + 100, 'a').map((h) => [h.host, h.liveness])).toEqual([
      ['b', 'alive'],
    ]);
  });
});
