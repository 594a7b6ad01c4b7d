/**
 * Path lookups with the C suite's semantics (docs/protocol.md §15.3):
 * `fence_virtd/@listener`, `groups/group[2]`, `groups/group[@v]`, `groups/group[1]/@uuid[3]`.
 * Components match case-insensitively; among same-named items the LAST in the file is `[1]`
 * (the C parser prepends), so without an index the last occurrence wins.
 */
import type { ConfigBlock, ConfigNode, ConfigValue } from './tree.js';

interface PathStep {
  isValue: boolean;
  name: string;
  /** 1-based position counted from the end of the file. */
  index: number | undefined;
  /** `[@v]`: the block whose own value is v. */
  ownValue: string | undefined;
}

const STEP = /^(@?)([^[\]@/]+)(?:\[(?:(\d+)|@([^\]]*))\])?$/;

function parsePath(path: string): PathStep[] {
  return path
    .split('/')
    .filter((part) => part.length > 0)
    .map((part) => {
      const match = STEP.exec(part);
      if (!match) throw new Error(`invalid config path component '${part}' in '${path}'`);
      const index = match[3] === undefined ? undefined : Number(match[3]);
      if (index === 0) throw new Error(`config path indexes start at 1: '${path}'`);
      return { isValue: match[1] === '@', name: match[2] as string, index, ownValue: match[4] };
    });
}

/** Children named `name` (case-insensitive) of the wanted kind, last-in-file first (C order). */
export function childrenNamed(block: ConfigBlock, name: string, kind: 'value'): ConfigValue[];
export function childrenNamed(block: ConfigBlock, name: string, kind: 'block'): ConfigBlock[];
export function childrenNamed(
  block: ConfigBlock,
  name: string,
  kind: ConfigNode['kind'],
): ConfigNode[] {
  const wanted = name.toLowerCase();
  return block.children.filter((c) => c.kind === kind && c.name.toLowerCase() === wanted).reverse();
}

function selectStep(block: ConfigBlock, step: PathStep): ConfigNode | undefined {
  const candidates: ConfigNode[] = step.isValue
    ? childrenNamed(block, step.name, 'value')
    : childrenNamed(block, step.name, 'block');
  if (step.ownValue !== undefined) return candidates.find((c) => c.value === step.ownValue);
  return candidates[(step.index ?? 1) - 1];
}

/** The node a path names, or undefined. */
export function lookupNode(root: ConfigBlock, path: string): ConfigNode | undefined {
  let node: ConfigNode = root;
  for (const step of parsePath(path)) {
    if (node.kind !== 'block') return undefined;
    const next = selectStep(node, step);
    if (!next) return undefined;
    node = next;
  }
  return node;
}

/** The block a path names (e.g. `listeners/multicast`), or undefined. */
export function lookupBlock(root: ConfigBlock, path: string): ConfigBlock | undefined {
  const node = lookupNode(root, path);
  return node?.kind === 'block' ? node : undefined;
}

/** The string a path names: a value (`@key`), or a block's own value. */
export function lookupValue(root: ConfigBlock, path: string): string | undefined {
  return lookupNode(root, path)?.value;
}

/**
 * Every value of a block as a plain map, keys lower-cased, the last occurrence in the file
 * winning. For plugin blocks that validate themselves (e.g. `backends/amqp`).
 */
export function blockValues(root: ConfigBlock, path: string): Record<string, string> {
  const block = lookupBlock(root, path);
  const values: Record<string, string> = {};
  if (!block) return values;
  for (const child of block.children) {
    if (child.kind === 'value') values[child.name.toLowerCase()] = child.value;
  }
  return values;
}

/**
 * Indexed series `base`, `base1`, `base2`, … (libvirt `uri`, amqp `url`): `base` if present,
 * then the numbered keys up to the first missing index (`uri2` without `uri1` is ignored).
 */
export function indexedValues(block: ConfigBlock | undefined, base: string): string[] {
  if (!block) return [];
  const values: string[] = [];
  const first = childrenNamed(block, base, 'value')[0];
  if (first) values.push(first.value);
  for (let i = 1; ; i++) {
    const next = childrenNamed(block, `${base}${i}`, 'value')[0];
    if (!next) return values;
    values.push(next.value);
  }
}
