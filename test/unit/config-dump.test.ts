import { readFileSync, existsSync } from 'node:fs';
import { dumpConfig } from '../../src/config/dump.js';
import { parseConfig } from '../../src/config/parser.js';
import type { ConfigBlock, ConfigNode } from '../../src/config/types.js';
import { DEBIAN_SAMPLE } from '../helpers/config-samples.js';

/** The same tree with every child list reversed (what one C dump + re-parse does). */
function reversedDeep(block: ConfigBlock): ConfigBlock {
  const blocks = block.children.filter((c) => c.kind === 'block').map((c) => reversedDeep(c));
  const values = block.children.filter((c) => c.kind === 'value');
  return { ...block, children: [...blocks.reverse(), ...[...values].reverse()] };
}

/** Blocks before values, each in file order: the only reordering a file-order dump does. */
function blocksFirst(block: ConfigBlock): ConfigBlock {
  const blocks = block.children.filter((c) => c.kind === 'block').map((c) => blocksFirst(c));
  return { ...block, children: [...blocks, ...block.children.filter((c) => c.kind === 'value')] };
}

/** Structure and values without line numbers. */
function shape(node: ConfigNode): unknown {
  if (node.kind === 'value') return [node.name, node.value];
  return [node.name, node.value ?? null, node.children.map(shape)];
}

const EDGE_CASES: string[] = [
  DEBIAN_SAMPLE,
  'a = "top";',
  'a = "1"; a = "2"; a = "3";',
  'empty { }',
  'b = "own" { k = "v"; }',
  'outer { v1 = "x"; inner { deep { k = "v"; } } v2 = "y"; inner { } }',
  'k = "multi\nline\nvalue";',
  'k = "has # hash and { braces } ; = signs";',
  'nob#ackend = "x";',
  'groups { group { uuid = "a"; uuid = "b"; ip = "1"; } group { name = "n"; } }',
  'x = "v" { y = "w" { z = "u"; } }',
  "k = 'single quotes are letters';".replace(/'/g, '"'),
  'UPPER { Mixed = "Case"; }',
  'k = "  spaced  ";\tt = "\ttab";',
  'k = "ünïcödé ✓";',
];

describe('dumpConfig', () => {
  test('matches the C layout for the Debian sample (reverse order, TABs, blank lines)', () => {
    expect(dumpConfig(parseConfig(DEBIAN_SAMPLE))).toBe(
      'backends {\n\tlibvirt {\n\t\turi = "qemu:///system";\n\t}\n\n}\n\n' +
        'listeners {\n\tmulticast {\n\t\tinterface = "virbr0";\n\t\taddress = "225.0.0.12";\n' +
        '\t\tkey_file = "/etc/fence_virt.key";\n\t}\n\n}\n\n' +
        'fence_virtd {\n\tbackend = "libvirt";\n\tlistener = "multicast";\n}\n\n',
    );
  });

  test('child blocks come before values; top-level values after top-level blocks', () => {
    expect(dumpConfig(parseConfig('v = "1"; b { x = "2"; c { } }'))).toBe(
      'b {\n\tc {\n\t}\n\n\tx = "2";\n}\n\nv = "1";\n',
    );
  });

  test('a block with its own value', () => {
    expect(dumpConfig(parseConfig('g = "val" { k = "v"; }'))).toBe(
      'g = "val" {\n\tk = "v";\n}\n\n',
    );
  });

  test('file order keeps the order of the source', () => {
    expect(dumpConfig(parseConfig('a = "1"; b = "2";'), { order: 'file' })).toBe(
      'a = "1";\nb = "2";\n',
    );
  });

  test.each(EDGE_CASES.map((text, i) => [i, text]))(
    'round trip #%i: parse -> dump -> parse keeps structure and values',
    (_i, text) => {
      const tree = parseConfig(text);
      // File order: identical structure (blocks are written before values, as C does).
      const fileOrder = parseConfig(dumpConfig(tree, { order: 'file' }));
      expect(shape(fileOrder)).toEqual(shape(blocksFirst(tree)));
      // C order: the re-parsed tree is the original with every list reversed, and a second
      // C dump restores the original order exactly.
      const once = parseConfig(dumpConfig(tree));
      expect(shape(once)).toEqual(shape(reversedDeep(tree)));
      const twice = parseConfig(dumpConfig(once));
      expect(dumpConfig(twice, { order: 'file' })).toBe(dumpConfig(tree, { order: 'file' }));
    },
  );

  const installed = '/etc/fence_virt.conf';
  (existsSync(installed) ? test : test.skip)('round trip of the installed Debian file', () => {
    const tree = parseConfig(readFileSync(installed, 'utf8'), installed);
    expect(shape(parseConfig(dumpConfig(tree, { order: 'file' })))).toEqual(
      shape(blocksFirst(tree)),
    );
    expect(shape(parseConfig(dumpConfig(tree)))).toEqual(shape(reversedDeep(tree)));
  });
});

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Identifier letters, including ones C treats as letters (#, @, /, CR) after the first. */
const ID_FIRST = 'abcXYZ_09.-@/';
const ID_REST = ID_FIRST + '#\r';
/** Value characters: anything but '"', including newlines, tabs, braces and '#'. */
const VALUE_CHARS = 'ab Z09 {};=#\n\t/:.ü✓';

function randomTree(random: () => number, depth: number): ConfigBlock {
  const pick = (chars: string): string => chars[Math.floor(random() * chars.length)] as string;
  const word = (chars: string, min: number, max: number): string =>
    Array.from({ length: min + Math.floor(random() * (max - min + 1)) }, () => pick(chars)).join(
      '',
    );
  const id = (): string => pick(ID_FIRST) + word(ID_REST, 0, 6);
  const children: ConfigNode[] = [];
  const count = Math.floor(random() * 5) + (depth === 0 ? 1 : 0);
  for (let i = 0; i < count; i++) {
    if (depth < 3 && random() < 0.4) {
      const block = randomTree(random, depth + 1);
      children.push({
        ...block,
        name: id(),
        value: random() < 0.3 ? word(VALUE_CHARS, 1, 8) : undefined,
      });
    } else {
      children.push({ kind: 'value', name: id(), value: word(VALUE_CHARS, 1, 12), line: 0 });
    }
  }
  return { kind: 'block', name: '', value: undefined, children, line: 0 };
}

describe('round-trip property on generated trees', () => {
  test('500 random trees survive dump -> parse in both orders', () => {
    const random = prng(20261121);
    for (let i = 0; i < 500; i++) {
      const tree = randomTree(random, 0);
      const fileOrder = parseConfig(dumpConfig(tree, { order: 'file' }));
      expect(shape(fileOrder)).toEqual(shape(blocksFirst(tree)));
      expect(shape(parseConfig(dumpConfig(tree)))).toEqual(shape(reversedDeep(tree)));
    }
  });
});
