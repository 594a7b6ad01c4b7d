/**
 * Hostile input, pure parts: challenge marks, the shared replay filter, bounded signature
 * checks, escaped and rate-limited logs, bounded key reads.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { daemonChallenge, isDaemonChallenge } from '../../src/net/challenge.js';
import { randomChallenge } from '../../src/protocol/digest.js';
import { readKeyBytes } from '../../src/protocol/key-file.js';
import { ReplayFilter } from '../../src/protocol/replay-filter.js';
import { CanonicalDepthError, canonicalJson } from '../../src/messages/canonical.js';
import {
  MAX_MESSAGE_BYTES,
  MessageFactory,
  MessageVerifier,
  readClusterKeySync,
} from '../../src/messages/sign.js';
import { createLogger, createRateLimitedLog } from '../../src/util/logger.js';

const KEY = Buffer.from('hostile-unit-key-0123456789');

describe('daemon challenges carry a mark only key holders can make', () => {
  it('recognises its own challenges and those of any daemon with the same key', () => {
    for (let i = 0; i < 100; i++) expect(isDaemonChallenge(KEY, daemonChallenge(KEY))).toBe(true);
  });
  it('does not recognise client challenges, other keys, or altered marks', () => {
    for (let i = 0; i < 1000; i++) expect(isDaemonChallenge(KEY, randomChallenge())).toBe(false);
    expect(isDaemonChallenge(KEY, daemonChallenge(Buffer.from('other-key')))).toBe(false);
    const altered = daemonChallenge(KEY);
    altered[63] = (altered[63] ?? 0) ^ 1;
    expect(isDaemonChallenge(KEY, altered)).toBe(false);
    expect(isDaemonChallenge(KEY, Buffer.alloc(63))).toBe(false);
  });
});

describe('the exact-replay filter', () => {
  const id = (n: number): bigint => BigInt.asUintN(64, BigInt(n) * 0x9e3779b97f4a7c15n + 1n);

  it('refuses a packet seen before, with no time limit', () => {
    const filter = new ReplayFilter(1 << 10);
    expect(filter.checkAndRecord(id(1))).toBe(false);
    expect(filter.checkAndRecord(id(1))).toBe(true);
    expect(filter.checkAndRecord(id(2))).toBe(false);
  });

  it('always remembers at least the last capacity/2 packets, in fixed memory', () => {
    const filter = new ReplayFilter(1 << 12);
    const bytes = filter.bytes;
    let fresh = 0;
    for (let n = 0; n < 20_000; n++) if (!filter.checkAndRecord(id(n))) fresh++;
    expect(fresh).toBe(20_000);
    let refused = 0;
    for (let n = 20_000 - 2048; n < 20_000; n++) if (filter.checkAndRecord(id(n))) refused++;
    expect(refused).toBe(2048);
    expect(filter.bytes).toBe(bytes);
    expect(filter.size).toBeLessThanOrEqual(1 << 12);
  });

  it('default size: a day of traffic at 12 packets/s in 16 bytes per packet', () => {
    const filter = new ReplayFilter();
    expect(filter.capacity / 2).toBeGreaterThanOrEqual(12 * 86_400);
    expect(filter.bytes / filter.capacity).toBe(16);
  });
});

describe('bounded signature checks', () => {
  const factory = new MessageFactory({ cluster: 'c1', hostId: 'h1', key: KEY });
  const verifier = (): MessageVerifier => new MessageVerifier(KEY, 'c1');

  it('drops deeply nested JSON as too-deep before any recursive walk, without throwing', () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const inEnvelope = JSON.stringify(factory.create('resync-request', { reason: 'x' })).replace(
      '"reason":"x"',
      `"reason":"x","extra":${deep}`,
    );
    const v = verifier();
    expect(v.verify(inEnvelope)).toMatchObject({ ok: false, reason: 'too-deep' });
    expect(v.verify(deep)).toMatchObject({ ok: false, reason: 'too-deep' });
    expect(v.counters['too-deep']).toBe(2);
    // Brackets inside strings are text, not nesting.
    const text = JSON.stringify(
      factory.create('resync-request', { reason: '['.repeat(200) + '{'.repeat(50) }),
    );
    expect(v.verify(text)).toMatchObject({ ok: true });
  });

  it('drops a message over the size limit as too-large before parsing it', () => {
    const big = JSON.stringify({ pad: 'x'.repeat(10 * 1024 * 1024) });
    expect(big.length).toBeGreaterThan(MAX_MESSAGE_BYTES);
    expect(verifier().verify(big)).toMatchObject({ ok: false, reason: 'too-large' });
    expect(verifier().verify(Buffer.from(big))).toMatchObject({ ok: false, reason: 'too-large' });
  });

  it('canonicalJson refuses depth with its own error, never a stack overflow', () => {
    let value: unknown = 1;
    for (let i = 0; i < 100_000; i++) value = [value];
    expect(() => canonicalJson(value)).toThrow(CanonicalDepthError);
  });

  it('a genuine message still verifies', () => {
    const message = factory.create('resync-request', { reason: 'ok' });
    expect(verifier().verify(JSON.stringify(message))).toMatchObject({ ok: true });
  });
});

describe('logs', () => {
  const hostile = 'a\u001b[31mred\u001b[0m\r\nforged=1 \u0000\u007f\u0085\u2028\u202e';

  it('escape control characters in JSON and text formats', () => {
    for (const format of ['json', 'text'] as const) {
      const lines: string[] = [];
      createLogger({ format, write: (l) => lines.push(l) }).info('request', { target: hostile });
      expect(lines).toHaveLength(1);
      // eslint-disable-next-line no-control-regex
      expect(lines[0]).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/);
      expect(lines[0]).toContain('\\u001b[31mred');
      if (format === 'json') {
        expect((JSON.parse(lines[0]!) as { target: string }).target).toBe(hostile);
      } else {
        // The value is quoted: "forged=1" cannot pose as a field of its own.
        expect(lines[0]).toMatch(/ target="a\\u001b\[31mred/);
      }
    }
  });

  it('rate-limited: one line, then one summary per reason per interval', async () => {
    const lines: string[] = [];
    const drops = createRateLimitedLog(createLogger({ write: (l) => lines.push(l) }), 200);
    for (let i = 0; i < 100_000; i++) {
      drops.log('info', 'packet-dropped', i % 2 ? 'bad-digest' : 'short-packet', { from: 'x' });
    }
    expect(lines).toHaveLength(2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(lines).toHaveLength(4);
    const summaries = lines.slice(2).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(summaries).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ reason: 'bad-digest', suppressed: 49_999, interval_ms: 200 }),
        expect.objectContaining({ reason: 'short-packet', suppressed: 49_999 }),
      ]),
    );
    expect(drops.counts.get('packet-dropped:bad-digest')).toBe(50_000);
    drops.log('info', 'packet-dropped', 'bad-digest');
    expect(lines).toHaveLength(5); // a new interval starts with a full line
    drops.flush();
  });
});

describe('key files', () => {
  it('are read up to 4096 bytes, whatever their size', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-key-'));
    try {
      const file = path.join(dir, 'huge.key');
      const fd = fs.openSync(file, 'w');
      fs.writeSync(fd, Buffer.alloc(8192, 0x41));
      fs.ftruncateSync(fd, 2 ** 31 + 5); // a sparse 2 GiB file: C reads its first 4096 bytes
      fs.closeSync(fd);
      const before = process.memoryUsage().rss;
      expect(readKeyBytes(file)).toEqual(Buffer.alloc(4096, 0x41));
      expect(readClusterKeySync(file)).toHaveLength(4096);
      expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
      fs.writeFileSync(file, 'short\n');
      expect(readKeyBytes(file).toString()).toBe('short\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
