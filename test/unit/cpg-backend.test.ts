/**
 * The cpg backend's pure parts: the C keys read as C reads them, our keys, the frame on the
 * CPG wire, name_mode, Pacemaker fencer history as evidence (fixtures validated against
 * Pacemaker's own API schema), and membership departure as liveness in the ownership table.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  clusterKeySource,
  COROSYNC_AUTHKEY,
  parseCpgConfig,
} from '../../src/backends/cpg/config.js';
import { decodeFrame, encodeFrame } from '../../src/backends/cpg/bus.js';
import { createCpgBackend } from '../../src/backends/cpg/index.js';
import {
  fencedAfter,
  parseCompleted,
  parseFenceHistory,
} from '../../src/backends/cpg/fence-history.js';
import { OwnershipTable } from '../../src/routing/table.js';
import { silentLogger } from '../../src/util/logger.js';
import { checkConfigText, formatIssue } from '../../src/config/check.js';

const UUID = '8f6f1c1e-6c7a-4d7e-9e5a-1d2c3b4a5f60';

describe('backends/cpg configuration', () => {
  test('C keys: uri, uri1, … until the first gap; name_mode as C compares it', () => {
    const r = parseCpgConfig(
      { uri: 'qemu:///system', uri1: 'qemu+ssh://b/system', uri3: 'x', name_mode: 'UUID' },
      { hostId: 'hv1' },
    );
    expect(r).toMatchObject({
      ok: true,
      config: {
        uris: ['qemu:///system', 'qemu+ssh://b/system'],
        nameMode: 'uuid',
        group: 'virtfence',
        hostId: 'hv1',
        heartbeatInterval: 1000,
        deadAfter: 5000,
        fenceHistory: 'none',
      },
    });
    // Anything but "uuid" is name mode, as in C; no name_mode at all is name mode too.
    for (const mode of ['name', 'bogus', undefined]) {
      const values: Record<string, string> = { uri: 'x' };
      if (mode !== undefined) values.name_mode = mode;
      expect(parseCpgConfig(values, { hostId: 'h' })).toMatchObject({
        config: { nameMode: 'name' },
      });
    }
  });

  test('the legacy fence_virtd/name_mode applies when the block has none', () => {
    expect(parseCpgConfig({ uri: 'x' }, { hostId: 'h', legacyNameMode: 'uuid' })).toMatchObject({
      config: { nameMode: 'uuid' },
    });
    expect(
      parseCpgConfig({ uri: 'x', name_mode: 'name' }, { hostId: 'h', legacyNameMode: 'uuid' }),
    ).toMatchObject({ config: { nameMode: 'name' } });
  });

  test('problems name their key; unknown keys are reported, not fatal', () => {
    const r = parseCpgConfig(
      { group: 'has space', heartbeat_interval: '5000', dead_after: '1000', colour: 'blue' },
      { hostId: 'h' },
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => p.key).sort()).toEqual(['dead_after', 'group', 'uri']);
    const ok = parseCpgConfig({ uri: 'x', colour: 'blue', uri1: 'y' }, { hostId: 'h' });
    expect(ok).toMatchObject({ ok: true, unknownKeys: ['colour'] });
  });

  test('signing key: key_file, else corosync authkey, else none', () => {
    const r = parseCpgConfig({ uri: 'x' }, { hostId: 'h' });
    if (!r.ok) throw new Error('parse');
    expect(clusterKeySource(r.config, () => true)).toEqual({
      path: COROSYNC_AUTHKEY,
      explicit: false,
    });
    expect(clusterKeySource(r.config, () => false)).toBeUndefined();
    const k = parseCpgConfig({ uri: 'x', key_file: '/k' }, { hostId: 'h' });
    if (!k.ok) throw new Error('parse');
    expect(clusterKeySource(k.config, () => false)).toEqual({ path: '/k', explicit: true });
  });
});

describe('CPG frames', () => {
  test('round trip, and anything else is not a frame', () => {
    const f = encodeFrame('hv2', '{"a":1}');
    expect(f.toString()).toBe('VF1 hv2\n{"a":1}');
    expect(decodeFrame(f)).toEqual({ to: 'hv2', json: Buffer.from('{"a":1}') });
    // The C daemons' 156-byte structs (type u32 first) are never taken for ours.
    const cStore = Buffer.alloc(156);
    cStore.writeUInt32LE(2, 0);
    expect(decodeFrame(cStore)).toBeUndefined();
    expect(decodeFrame(Buffer.from('VF1 no-newline'))).toBeUndefined();
    expect(decodeFrame(Buffer.from(`VF1 ${'x'.repeat(200)}\n{}`))).toBeUndefined();
  });
});

describe('name_mode', () => {
  const ctx = {
    id: 't',
    listener: 'tcp',
    source: '127.0.0.1',
    seqno: 1,
    deadline: Date.now() + 1000,
  };
  test('a target of the other kind fails (C would answer off/reboot with success)', async () => {
    const byUuid = createCpgBackend(
      { uri: 'x', name_mode: 'uuid' },
      { logger: silentLogger, hostname: 'h' },
    );
    await expect(byUuid.fence('off', 'vm1', ctx)).resolves.toEqual({
      code: 1,
      reason: 'name-mode',
    });
    await expect(byUuid.fence('status', 'vm1', ctx)).resolves.toEqual({
      code: 1,
      reason: 'name-mode',
    });
    // The right kind reaches the routed backend (not started here).
    await expect(byUuid.fence('off', UUID, ctx)).resolves.toMatchObject({
      reason: 'backend-not-started',
    });
    const byName = createCpgBackend({ uri: 'x' }, { logger: silentLogger, hostname: 'h' });
    await expect(byName.fence('reboot', UUID, ctx)).resolves.toEqual({
      code: 1,
      reason: 'name-mode',
    });
    await expect(byName.fence('reboot', 'vm1', ctx)).resolves.toMatchObject({
      reason: 'backend-not-started',
    });
  });
});

describe('Pacemaker fencer history as evidence', () => {
  const history = `<pacemaker-result api-version="2.15" request="stonith_admin --history hv3 --output-as=xml">
  <fence_history>
    <fence_event status="failed" action="off" target="hv3" client="pacemaker-controld.1" origin="hv1" delegate="hv2" completed="2026-11-27 14:00:01 +00:00" exit-reason="timed out"/>
    <fence_event status="success" action="on" target="hv3" client="pacemaker-controld.1" origin="hv1" delegate="hv2" completed="2026-11-27 14:00:09 +00:00"/>
    <fence_event status="success" action="reboot" target="hv3" client="pacemaker-controld.1" origin="hv1" delegate="hv2" completed="2026-11-27 15:00:02.250 +01:00"/>
    <fence_event status="pending" action="off" target="hv3" client="stonith_admin.4" origin="hv1"/>
    <fence_event status="success" action="off" target="hv4" client="pacemaker-controld.1" origin="hv1" delegate="hv2" completed="2026-11-27 14:10:00 +00:00"/>
  </fence_history>
  <status code="0" message="OK"/>
</pacemaker-result>`;

  test('the fixture events are valid against Pacemaker fence-event schema', () => {
    const schema = '/usr/share/pacemaker/api/fence-event-2.15.rng';
    if (!fs.existsSync(schema)) return; // pacemaker's API schemas not installed
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtfence-fence-event-'));
    try {
      for (const [i, m] of [...history.matchAll(/<fence_event[^>]*\/>/g)].entries()) {
        const file = path.join(dir, `e${i}.xml`);
        fs.writeFileSync(file, m[0]);
        execFileSync('xmllint', ['--noout', '--relaxng', schema, file], { stdio: 'pipe' });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('only a successful off or reboot with a completion time is evidence', () => {
    const events = parseFenceHistory(history);
    expect(events).toHaveLength(5);
    const best = fencedAfter(events, 'hv3', 0);
    expect(best).toMatchObject({ action: 'reboot', status: 'success', delegate: 'hv2' });
    expect(best?.completed).toBe(Date.parse('2026-11-27T14:00:02.250Z'));
    // Nothing newer than a later heartbeat: no evidence.
    expect(fencedAfter(events, 'hv3', Date.parse('2026-11-27T14:30:00Z'))).toBeUndefined();
    expect(fencedAfter(events, 'hv9', 0)).toBeUndefined();
  });

  test('completion times: offsets, fractions, and anything else is unknown', () => {
    expect(parseCompleted('2026-11-27 14:03:07 +01:00')).toBe(Date.parse('2026-11-27T13:03:07Z'));
    expect(parseCompleted('2026-11-27 14:03:07 -0230')).toBe(Date.parse('2026-11-27T16:33:07Z'));
    expect(parseCompleted('2026-11-27 14:03:07Z')).toBe(Date.parse('2026-11-27T14:03:07Z'));
    expect(parseCompleted('yesterday')).toBeUndefined();
    expect(parseCompleted('')).toBeUndefined();
  });

  test('the table trusts evidence only after the last heartbeat, and not while beating', () => {
    const table = new OwnershipTable('hv1', { heartbeatIntervalMs: 1000, deadAfterMs: 5000 });
    const t0 = Date.parse('2026-11-27T14:00:00Z');
    table.applyHeartbeat({ host: 'hv3', epoch: 1, seq: 1, sentAt: t0 }, t0);
    table.markDeparted('hv3', t0 + 100);
    expect(table.livenessOf('hv3', t0 + 200)).toBe('dead');
    const ev = fencedAfter(parseFenceHistory(history), 'hv3', 0);
    table.applyEvidence(
      { host: 'hv3', fencedAt: ev?.completed ?? 0, by: 'pacemaker:hv2' },
      t0 + 300,
    );
    expect(table.isFenced('hv3', t0 + 400)).toBe(true);
    // It comes back: a heartbeat after the departure makes it alive and no longer fenced.
    table.applyHeartbeat({ host: 'hv3', epoch: 2, seq: 1, sentAt: t0 + 9000 }, t0 + 9000);
    expect(table.livenessOf('hv3', t0 + 9100)).toBe('alive');
    expect(table.isFenced('hv3', t0 + 9100)).toBe(false);
  });
});

describe('membership departure in the ownership table', () => {
  test('a host that left is dead at once, until it heartbeats again', () => {
    const table = new OwnershipTable('hv1', { heartbeatIntervalMs: 1000, deadAfterMs: 5000 });
    table.applyHeartbeat({ host: 'hv2', epoch: 1, seq: 1, sentAt: 1000 }, 1000);
    expect(table.livenessOf('hv2', 1500)).toBe('alive');
    table.markDeparted('hv2', 1600);
    expect(table.livenessOf('hv2', 1601)).toBe('dead');
    expect(table.isFenced('hv2', 1601)).toBe(false); // leaving is not evidence
    table.applyHeartbeat({ host: 'hv2', epoch: 1, seq: 2, sentAt: 2000 }, 2000);
    expect(table.livenessOf('hv2', 2001)).toBe('alive');
    table.markDeparted('hv1', 3000); // ourselves: never
    expect(table.livenessOf('hv1', 3001)).toBe('alive');
    table.markDeparted('hv5', 3000); // never heard of: dead, not unknown
    expect(table.livenessOf('hv5', 3001)).toBe('dead');
  });
});

describe('config check of cpg and vsock configurations written for C', () => {
  const conf = (cpg: string): string =>
    `fence_virtd {\n\tlistener = "vsock";\n\tbackend = "cpg";\n}\n` +
    `listeners {\n\tvsock {\n\t\tkey_file = "/etc/k.key";\n\t\tport = "1229";\n\t}\n}\n` +
    `backends {\n\tcpg {\n${cpg}\t}\n}\n`;

  test('the C keys are accepted without a warning', () => {
    const r = checkConfigText(
      conf('\t\turi = "qemu:///system";\n\t\tname_mode = "uuid";\n'),
      'f.conf',
    );
    expect(r.issues).toEqual([]);
    expect(r.valid).toBe(true);
  });

  test('a cpg block without uri is an error naming the key and line', () => {
    const r = checkConfigText(conf('\t\tname_mode = "uuid";\n'), 'f.conf');
    expect(r.valid).toBe(false);
    expect(r.issues.map((i) => formatIssue('f.conf', i))).toEqual([
      "f.conf:12: error: backends/cpg/uri: uri is required (this host's libvirt URI, e.g. qemu:///system)",
    ]);
  });
});
