import {
  blockValues,
  indexedValues,
  lookupBlock,
  lookupNode,
  lookupValue,
} from '../../src/config/lookup.js';
import { parseConfig } from '../../src/config/parser.js';

const TEXT = `
fence_virtd { listener = "first"; listener = "second"; backend = "libvirt"; }
groups {
  group { name = "g-a"; uuid = "u1"; uuid = "u2"; uuid = "u3"; }
  group = "tagged" { name = "g-b"; ip = "10.0.0.1"; }
}
backends { libvirt { uri = "a"; uri1 = "b"; uri2 = "c"; uri4 = "skipped"; } }
`;

describe('lookupValue (C semantics)', () => {
  const root = parseConfig(TEXT);

  test('the last duplicate in the file wins; [1] is the last one', () => {
    expect(lookupValue(root, 'fence_virtd/@listener')).toBe('second');
    expect(lookupValue(root, 'fence_virtd/@listener[1]')).toBe('second');
    expect(lookupValue(root, 'fence_virtd/@listener[2]')).toBe('first');
    expect(lookupValue(root, 'fence_virtd/@listener[3]')).toBeUndefined();
  });

  test('components are case-insensitive', () => {
    expect(lookupValue(root, 'FENCE_VIRTD/@Backend')).toBe('libvirt');
  });

  test('block indexes count from the end of the file', () => {
    expect(lookupValue(root, 'groups/group[1]/@name')).toBe('g-b');
    expect(lookupValue(root, 'groups/group[2]/@name')).toBe('g-a');
    expect(lookupValue(root, 'groups/group[2]/@uuid[1]')).toBe('u3');
    expect(lookupValue(root, 'groups/group[2]/@uuid[3]')).toBe('u1');
  });

  test('[@v] selects a block by its own value; a block path yields that value', () => {
    expect(lookupValue(root, 'groups/group[@tagged]/@ip')).toBe('10.0.0.1');
    expect(lookupValue(root, 'groups/group[1]')).toBe('tagged');
    expect(lookupBlock(root, 'groups/group[@nope]')).toBeUndefined();
  });

  test('a value is not a block and a block is not a value', () => {
    expect(lookupValue(root, '@fence_virtd')).toBeUndefined();
    expect(lookupNode(root, 'fence_virtd/listener')).toBeUndefined();
    expect(lookupValue(root, 'fence_virtd/@listener/@x')).toBeUndefined();
  });

  test('the last of duplicated blocks is the only one consulted', () => {
    const dup = parseConfig('fence_virtd { listener = "a"; } fence_virtd { backend = "b"; }');
    expect(lookupValue(dup, 'fence_virtd/@listener')).toBeUndefined();
    expect(lookupValue(dup, 'fence_virtd[2]/@listener')).toBe('a');
  });

  test('invalid paths are rejected with the path in the message', () => {
    expect(() => lookupValue(root, 'groups/group[0]')).toThrow(/start at 1: 'groups\/group\[0\]'/);
    expect(() => lookupValue(root, 'a[x]')).toThrow(/invalid config path component 'a\[x\]'/);
  });
});

describe('plugin helpers', () => {
  const root = parseConfig(TEXT);

  test('indexedValues stops at the first missing index', () => {
    expect(indexedValues(lookupBlock(root, 'backends/libvirt'), 'uri')).toEqual(['a', 'b', 'c']);
    const noBase = parseConfig('b { uri1 = "x"; uri3 = "z"; }');
    expect(indexedValues(lookupBlock(noBase, 'b'), 'uri')).toEqual(['x']);
    expect(indexedValues(undefined, 'uri')).toEqual([]);
  });

  test('blockValues gives lower-cased keys, last occurrence winning', () => {
    const amqp = parseConfig(
      'backends { amqp { URL = "amqp://a"; cluster = "c1"; cluster = "c2"; } }',
    );
    expect(blockValues(amqp, 'backends/amqp')).toEqual({ url: 'amqp://a', cluster: 'c2' });
    expect(blockValues(amqp, 'backends/missing')).toEqual({});
  });
});
