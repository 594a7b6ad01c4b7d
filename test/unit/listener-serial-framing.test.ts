import { SerialRequestParser } from '../../src/listeners/serial/request-parser.js';
import { encodeSerialResult, ResponseCache } from '../../src/listeners/serial/response.js';
import { encodeResult } from '../../src/listeners/session.js';
import { peerSource } from '../../src/listeners/tcp/peer.js';
import { encodeSerialRequest, SERIAL_MAGIC } from '../../src/protocol/serial.js';

const status = encodeSerialRequest({ request: 4, domain: 'vm1', seqno: 1000 });
const list = encodeSerialRequest({ request: 6, seqno: 1003 });

describe('serial request parser', () => {
  it('parses back-to-back requests split at every byte boundary', () => {
    const stream = Buffer.concat([status, list]);
    for (let cut = 1; cut < stream.length; cut += 1) {
      const parser = new SerialRequestParser();
      const first = parser.feed(stream.subarray(0, cut), 0);
      const second = parser.feed(stream.subarray(cut), 0);
      const requests = [...first.requests, ...second.requests];
      expect(requests.map((r) => [r.request, r.domain, r.seqno])).toEqual([
        [4, 'vm1', 1000],
        [6, '', 1003],
      ]);
    }
  });

  it('resynchronises on the magic after garbage, including overlapping prefixes C misses', () => {
    const parser = new SerialRequestParser();
    const garbage = Buffer.from([0xff, 0xff, 0x61, 0x62]); // "ab" + "abba": C's matcher misses it
    const out = parser.feed(Buffer.concat([garbage, status]), 0);
    expect(out.requests).toHaveLength(1);
    expect(out.requests[0]?.domain).toBe('vm1');
  });

  it('ignores bytes without a magic and keeps no memory of them', () => {
    const parser = new SerialRequestParser();
    expect(parser.feed(Buffer.alloc(10_000, 0x41), 0).requests).toEqual([]);
    expect(parser.pending).toBe(false);
  });

  it('drops a request whose body does not complete within the limit of its magic', () => {
    const parser = new SerialRequestParser(1_000);
    expect(parser.feed(status.subarray(0, 20), 0).requests).toEqual([]);
    expect(parser.pending).toBe(true);
    const late = parser.feed(Buffer.concat([status.subarray(20), list]), 1_001);
    expect(late.incomplete).toBe(1);
    expect(late.requests.map((r) => r.seqno)).toEqual([1003]);
  });

  it('completes a request whose body arrives within the limit', () => {
    const parser = new SerialRequestParser(1_000);
    parser.feed(status.subarray(0, 40), 0);
    expect(parser.feed(status.subarray(40), 1_000).requests.map((r) => r.seqno)).toEqual([1000]);
  });
});

describe('serial response framing', () => {
  it('a normal result is the 5-byte response', () => {
    expect(encodeSerialResult({ code: 2, reason: 'off' }).toString('hex')).toBe('6162626102');
  });

  it('a host list is abba fd, entries, terminator, then a second response with the final code', () => {
    const bytes = encodeSerialResult({
      code: 0xfd,
      reason: 'ok',
      hostlist: [
        { name: 'a', uuid: '11111111-0000-4000-8000-000000000001', state: 1 },
        { name: 'b', uuid: '11111111-0000-4000-8000-000000000002', state: 5 },
      ],
      hostlistCode: 0,
    });
    expect(bytes.length).toBe(400); // docs/protocol.md §10.2 two-VM example
    expect(bytes.subarray(0, 5).toString('hex')).toBe('61626261fd');
    expect(bytes.subarray(5, 6).toString()).toBe('a');
    expect(bytes[5 + 128]).toBe(1);
    expect(bytes.subarray(5 + 260, 5 + 390).equals(Buffer.alloc(130))).toBe(true);
    expect(bytes.subarray(395).equals(Buffer.concat([SERIAL_MAGIC, Buffer.from([0])]))).toBe(true);
  });
});

describe('serial answered-duplicate cache', () => {
  it('returns the first response within the window after it settled, then forgets it', async () => {
    let now = 0;
    const cache = new ResponseCache(10_000, () => now);
    const first = cache.remember('k', Promise.resolve(Buffer.from('r1')));
    await first;
    now = 10_000;
    expect(await cache.get('k')).toEqual(Buffer.from('r1'));
    now = 10_001;
    expect(cache.get('k')).toBeUndefined();
  });

  it('keeps an unsettled response however old, so a duplicate waits for the first answer', () => {
    let now = 0;
    const cache = new ResponseCache(10_000, () => now);
    void cache.remember('k', new Promise<Buffer>(() => undefined));
    now = 1_000_000;
    expect(cache.get('k')).toBeDefined();
  });
});

describe('stream result framing', () => {
  it('normal results are one byte, passed through unchanged', () => {
    for (const code of [0, 1, 2, 3])
      expect([...encodeResult({ code, reason: '' })]).toEqual([code]);
  });

  it('a host list is fd, entries, terminator and the final byte (262 bytes for one VM)', () => {
    const bytes = encodeResult({
      code: 0xfd,
      reason: 'ok',
      hostlist: [{ name: 'test', uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f', state: 1 }],
      hostlistCode: 1,
    });
    expect(bytes.length).toBe(262);
    expect(bytes[0]).toBe(0xfd);
    expect(bytes[261]).toBe(1);
  });

  it('the TCP permission source is the numeric peer address, IPv4-mapped shown as IPv4', () => {
    expect(peerSource('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(peerSource('::1')).toBe('::1');
    expect(peerSource('192.0.2.7')).toBe('192.0.2.7');
    expect(peerSource(undefined)).toBeUndefined();
  });
});
