import { HashType, Op } from '../../src/protocol/constants.js';
import { digest64 } from '../../src/protocol/digest.js';
import {
  addressBytes,
  decodeFenceRequest,
  encodeFenceRequest,
  FENCE_REQ_SIZE,
  verifyFenceRequest,
} from '../../src/protocol/fence-request.js';
import {
  decodeHostEntry,
  encodeHostListResponse,
  formatHostLine,
  sortHostEntries,
} from '../../src/protocol/hostlist.js';
import {
  decodeSerialRequest,
  encodeSerialRequest,
  encodeSerialResponse,
  MagicScanner,
} from '../../src/protocol/serial.js';
import { isUuid } from '../../src/protocol/uuid.js';

const K_EX = Buffer.from('example-key-0123');
const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** docs/protocol.md §21.1: status for "test", callback 127.0.0.1:12290, seqno 0x12345, random 01..06. */
const GOLDEN_STATUS = hex(`
  04 02 04 00 74 65 73 74 00 00 00 00 00 00 00 00
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  00 00 00 00 7f 00 00 01 00 00 00 00 00 00 00 00
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  02 30 01 02 03 04 05 06 45 23 01 00 02 00 00 00
  fb cc 08 84 ca 25 2b a1 cb 27 b6 94 64 04 2d 06
  0d b4 14 66 1d b9 1f 8c 49 2d 11 12 98 ae 63 f9
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00`);

const goldenFields = {
  request: Op.STATUS,
  domain: 'test',
  address: '127.0.0.1',
  port: 12290,
  seqno: 0x12345,
  random: Buffer.from([1, 2, 3, 4, 5, 6]),
};

describe('fence_req (docs/protocol.md §3, §21.1)', () => {
  it('encodes the golden sha256 status request byte for byte', () => {
    const packet = encodeFenceRequest({ ...goldenFields, hashtype: HashType.sha256 }, K_EX);
    expect(packet.length).toBe(FENCE_REQ_SIZE);
    expect(packet.toString('hex')).toBe(GOLDEN_STATUS.toString('hex'));
  });

  it('decodes every field of the golden request', () => {
    const req = decodeFenceRequest(GOLDEN_STATUS);
    expect(req).toMatchObject({
      request: 4,
      hashtype: 2,
      addrlen: 4,
      flags: 0,
      domain: 'test',
      address: '127.0.0.1',
      port: 12290,
      seqno: 0x12345,
      family: 2,
    });
    expect(req.random).toEqual(Buffer.from([1, 2, 3, 4, 5, 6]));
  });

  it.each([
    [HashType.sha1, 'eca2faafca8af09184922a6d979587fb225e459f'],
    [
      HashType.sha512,
      'b89558dfa9d3345e0e30dc18e32bf236cba8aba1599044f46b695dcc32e2d77e' +
        'eca0bb4605b14d2fa867bdbadecfd956f808bfcb389f7e4f7f19d5b5c9234811',
    ],
  ])('hash type %i matches the golden digest, zero padded to 64 bytes', (hashtype, digest) => {
    const packet = encodeFenceRequest({ ...goldenFields, hashtype }, K_EX);
    expect(packet.subarray(0x70).toString('hex')).toBe(digest.padEnd(128, '0'));
  });

  it('leaves random and hash zero for hash type none', () => {
    const packet = encodeFenceRequest({ ...goldenFields, hashtype: HashType.none }, K_EX);
    expect(packet.subarray(0x62, 0x68).every((b) => b === 0)).toBe(true);
    expect(packet.subarray(0x70).every((b) => b === 0)).toBe(true);
  });

  it('encodes the docs/protocol.md §21.5 IPv6 request layout', () => {
    const packet = encodeFenceRequest(
      {
        request: Op.STATUS,
        hashtype: HashType.sha256,
        domain: 'test',
        address: 'fd00::2',
        port: 12298,
        seqno: 1,
      },
      K_EX,
    );
    expect(packet[2]).toBe(16);
    expect(packet.subarray(0x44, 0x54).toString('hex')).toBe('fd000000000000000000000000000002');
    expect(packet.readUInt16LE(0x60)).toBe(12298);
    expect(packet.readUInt32LE(0x6c)).toBe(10);
    expect(decodeFenceRequest(packet).address).toBe('fd00::2');
  });

  it('encodes the TCP-mode request with zero address, port, family and addrlen (docs/protocol.md §21.6)', () => {
    const packet = encodeFenceRequest(
      { request: Op.HOSTLIST, hashtype: HashType.sha512, seqno: 7 },
      K_EX,
    );
    expect(packet.subarray(0, 4).toString('hex')).toBe('06030000');
    expect(packet.subarray(0x44, 0x62).every((b) => b === 0)).toBe(true);
    expect(packet.readUInt32LE(0x6c)).toBe(0);
  });

  it('refuses names of 64 bytes or more', () => {
    expect(() =>
      encodeFenceRequest({ request: 4, hashtype: 0, domain: 'x'.repeat(64), seqno: 1 }, K_EX),
    ).toThrow(RangeError);
  });
});

describe('verification (docs/protocol.md §3.2)', () => {
  it('accepts the golden packet with the right key and minimum sha256', () => {
    expect(verifyFenceRequest(GOLDEN_STATUS, HashType.sha256, K_EX)).toEqual({ ok: true });
  });
  it('accepts a stronger hash than the minimum', () => {
    const packet = encodeFenceRequest({ ...goldenFields, hashtype: HashType.sha512 }, K_EX);
    expect(verifyFenceRequest(packet, HashType.sha256, K_EX).ok).toBe(true);
  });
  it('refuses a weaker hash than the minimum', () => {
    const packet = encodeFenceRequest({ ...goldenFields, hashtype: HashType.sha1 }, K_EX);
    expect(verifyFenceRequest(packet, HashType.sha256, K_EX)).toEqual({
      ok: false,
      reason: 'hash-too-weak',
    });
  });
  it('refuses a wrong key, a flipped bit, a missing key and unknown hash types', () => {
    expect(verifyFenceRequest(GOLDEN_STATUS, 2, Buffer.from('other-key'))).toEqual({
      ok: false,
      reason: 'bad-digest',
    });
    const flipped = Buffer.from(GOLDEN_STATUS);
    flipped[4] = (flipped[4] ?? 0) ^ 1;
    expect(verifyFenceRequest(flipped, 2, K_EX).ok).toBe(false);
    expect(verifyFenceRequest(GOLDEN_STATUS, 2, Buffer.alloc(0))).toEqual({
      ok: false,
      reason: 'no-key',
    });
    const weird = Buffer.from(GOLDEN_STATUS);
    weird[1] = 4;
    expect(verifyFenceRequest(weird, 2, K_EX)).toEqual({ ok: false, reason: 'bad-hash-type' });
  });
  it('accepts unsigned packets only when the minimum is none', () => {
    const packet = encodeFenceRequest({ ...goldenFields, hashtype: HashType.none }, K_EX);
    expect(verifyFenceRequest(packet, HashType.none, Buffer.alloc(0)).ok).toBe(true);
    expect(verifyFenceRequest(packet, HashType.sha1, K_EX).ok).toBe(false);
  });
});

describe('challenge-response digests (docs/protocol.md §21.2)', () => {
  const challenge = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
  it.each([
    [HashType.sha1, 'b253e4384a8da5c30949329b1f9e470466985785'],
    [HashType.sha256, '84c30365fd342bb7f810ac1f0f5df1e0c5744be813f0f0b59b5bbc333e8a94a5'],
    [
      HashType.sha512,
      'f16b12d39cc1adccf19a7a0c810ae46f571ab96b8eea81fb2d82ab9f53853cef' +
        'fef04857a3617c52f422036c6cc20711201a3351338e267aef79da2468eb31ff',
    ],
  ])('hash %i', (hash, expected) => {
    expect(digest64(hash, K_EX, challenge).toString('hex')).toBe(expected.padEnd(128, '0'));
  });
});

describe('host list (docs/protocol.md §6.2, §21.4)', () => {
  const entry = { name: 'test', uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f', state: 1 };
  it('frames one VM in 262 bytes with zeros where C leaks stack bytes', () => {
    const stream = encodeHostListResponse([entry], 0);
    expect(stream.length).toBe(262);
    expect(stream[0]).toBe(0xfd);
    expect(stream.subarray(1, 5).toString()).toBe('test');
    expect(stream[1 + 63]).toBe(0);
    expect(stream.subarray(1 + 64, 1 + 100).toString()).toBe(entry.uuid);
    expect(stream[1 + 127]).toBe(0);
    expect(stream[1 + 128]).toBe(1);
    expect(stream[1 + 129]).toBe(0);
    expect(stream.subarray(131, 261).every((b) => b === 0)).toBe(true);
    expect(stream[261]).toBe(0);
    expect(decodeHostEntry(stream.subarray(1, 131))).toEqual(entry);
  });
  it('prints list lines as %-32s %s %s with only state 1 "on"', () => {
    expect(formatHostLine(entry)).toBe(`test${' '.repeat(28)} ${entry.uuid} on`);
    expect(formatHostLine({ ...entry, state: 3 }).endsWith(' off')).toBe(true);
  });
  it('sorts by name case-insensitively', () => {
    const sorted = sortHostEntries([
      { name: 'b', uuid: '1', state: 1 },
      { name: 'A', uuid: '2', state: 1 },
      { name: 'c', uuid: '3', state: 1 },
    ]);
    expect(sorted.map((e) => e.name)).toEqual(['A', 'b', 'c']);
  });
});

describe('serial framing (docs/protocol.md §10, §21.7)', () => {
  it('encodes the golden status request for vm1, seqno 1000', () => {
    const req = encodeSerialRequest({ request: Op.STATUS, domain: 'vm1', seqno: 1000 });
    expect(req.length).toBe(74);
    expect(req.subarray(0, 9).toString('hex')).toBe('6162626104007' + '66d31');
    expect(req.subarray(70).toString('hex')).toBe('e8030000');
    expect(decodeSerialRequest(req)).toEqual({
      magicOk: true,
      request: 4,
      flags: 0,
      domain: 'vm1',
      seqno: 1000,
    });
    expect(encodeSerialResponse(0).toString('hex')).toBe('6162626100');
  });
  it('finds the magic after garbage and across chunk boundaries, including the abab-ba case', () => {
    const scanner = new MagicScanner();
    expect(scanner.feed(Buffer.from([0xff, 0xff, 0x61, 0x62]))).toBe(-1);
    expect(scanner.feed(Buffer.from([0x62, 0x61, 0x00]))).toBe(2);
    const fresh = new MagicScanner();
    expect(fresh.feed(Buffer.from('ababba'))).toBe(6);
    expect(new MagicScanner().feed(Buffer.from('abbabba'))).toBe(4);
  });
});

describe('helpers', () => {
  it('detects UUIDs as the C suite does', () => {
    expect(isUuid('6695eb01-f6a4-8304-79aa-97f2502e193f')).toBe(true);
    expect(isUuid('6695EB01-F6A4-8304-79AA-97F2502E193F')).toBe(true);
    expect(isUuid('6695eb01f6a4830479aa97f2502e193f')).toBe(false);
    expect(isUuid('test')).toBe(false);
  });
  it('converts IP literals to network-order bytes', () => {
    expect(addressBytes('127.0.0.1').toString('hex')).toBe('7f000001');
    expect(addressBytes('::1').toString('hex')).toBe('0'.repeat(31) + '1');
    expect(addressBytes('ff05::3:1').toString('hex')).toBe('ff050000000000000000000000030001');
  });
});
