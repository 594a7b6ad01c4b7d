import { formatTable } from '../../src/cli/base.js';
import { keyFingerprint } from '../../src/cli/fingerprint.js';

describe('formatTable (CLI output for people)', () => {
  test('pads every column but the last, with a header row', () => {
    const rows = [
      { host: 'node-a', vms: 3, state: 'alive' },
      { host: 'long-host-name', vms: 12, state: 'dead' },
    ];
    expect(
      formatTable(rows, [
        { header: 'HOST', value: (r) => r.host },
        { header: 'VMS', value: (r) => String(r.vms) },
        { header: 'STATE', value: (r) => r.state },
      ]),
    ).toBe(
      'HOST            VMS  STATE\n' + 'node-a          3    alive\n' + 'long-host-name  12   dead',
    );
  });

  test('no rows prints the header only', () => {
    expect(formatTable([], [{ header: 'NAME', value: () => '' }])).toBe('NAME');
  });
});

describe('keyFingerprint', () => {
  test('first 16 hex digits of SHA-256', () => {
    // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
    expect(keyFingerprint(Buffer.from('abc'))).toBe('ba7816bf8f01cfea');
  });
});
