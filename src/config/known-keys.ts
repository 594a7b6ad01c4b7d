/**
 * The keys and blocks we (and our plugins) understand, to warn about typos and about
 * duplicates that the C lookup rules silently ignore. Nothing here is an error: C ignores
 * unknown keys too.
 */
import type { z } from 'zod';
import { knownKeyPatterns, type BlockDeclaration } from './block.js';
import { BACKEND_PLUGINS } from './plugins/backends.js';
import { fenceVirtdBlock } from './plugins/daemon.js';
import { LISTENER_PLUGINS } from './plugins/listeners.js';
import type { ConfigBlock, ConfigNode } from './tree.js';

export interface BlockSpec {
  /** Value keys; a RegExp matches families such as uri1, uri2. */
  values: readonly (string | RegExp)[];
  /** Child blocks by lower-case name. */
  blocks: Readonly<Record<string, BlockSpec>>;
  /** Keys that may repeat on purpose (groups' ip/uuid). */
  repeatable?: readonly string[];
  /** Child blocks that may repeat on purpose (groups/group). */
  repeatableBlocks?: readonly string[];
}

const leaf = (values: readonly (string | RegExp)[], repeatable?: readonly string[]): BlockSpec => ({
  values,
  blocks: {},
  ...(repeatable ? { repeatable } : {}),
});

type AnyBlock = BlockDeclaration<z.ZodRawShape, Record<string, string>>;

/** The declared blocks under one parent (`listeners`, `backends`), by plugin name. */
function children(blocks: readonly AnyBlock[]): Record<string, BlockSpec> {
  return Object.fromEntries(
    blocks.map((block) => [block.path.split('/').pop() ?? '', leaf(knownKeyPatterns(block))]),
  );
}

/** Derived from the block declarations (src/config/plugins): nothing is listed twice. */
export const KNOWN_CONFIG: BlockSpec = {
  values: [],
  blocks: {
    fence_virtd: leaf(knownKeyPatterns(fenceVirtdBlock)),
    listeners: { values: [], blocks: children(LISTENER_PLUGINS.map((p) => p.block)) },
    backends: {
      values: [],
      blocks: children(BACKEND_PLUGINS.map((p) => p.block)),
    },
    groups: {
      values: [],
      blocks: { group: leaf(['name', 'ip', 'uuid'], ['ip', 'uuid']) },
      repeatableBlocks: ['group'],
    },
  },
};

function knownValue(spec: BlockSpec, name: string): boolean {
  return spec.values.some((v) => (typeof v === 'string' ? v === name : v.test(name)));
}

function describeNode(node: ConfigNode, path: string): string {
  return node.kind === 'block' ? `block ${path}` : `key ${path}`;
}

export type IgnoredReason = 'unknown' | 'top-level' | 'duplicate';

/** A key or block that the daemon will not use, and why. */
export interface IgnoredItem {
  reason: IgnoredReason;
  /** Path as written, e.g. `listeners/multicast/foo`. */
  path: string;
  node: ConfigNode;
  /** The warning text, e.g. `unknown key listeners/multicast/foo on line 12`. */
  text: string;
}

/** Every ignored key or block, in line order. */
export function ignoredItems(root: ConfigBlock, spec: BlockSpec = KNOWN_CONFIG): IgnoredItem[] {
  const items: IgnoredItem[] = [];
  walk(root, spec, '', items);
  return items.sort((a, b) => a.node.line - b.node.line);
}

/** Warnings for unknown keys/blocks and for duplicates whose earlier copies are ignored. */
export function configWarnings(root: ConfigBlock, spec: BlockSpec = KNOWN_CONFIG): string[] {
  return ignoredItems(root, spec).map((item) => item.text);
}

function ignoredText(
  reason: IgnoredReason,
  node: ConfigNode,
  path: string,
  winner?: ConfigNode,
): string {
  switch (reason) {
    case 'top-level':
      return `top-level key ${path} on line ${node.line} is ignored (keys belong inside a block)`;
    case 'unknown':
      return `unknown ${node.kind === 'block' ? 'block' : 'key'} ${path} on line ${node.line}`;
    case 'duplicate':
      return `duplicate ${describeNode(node, path)} on line ${node.line} is ignored (line ${winner?.line} wins)`;
  }
}

function walk(block: ConfigBlock, spec: BlockSpec, prefix: string, items: IgnoredItem[]): void {
  const lastSeen = new Map<string, ConfigNode>();
  const ignore = (reason: IgnoredReason, node: ConfigNode, path: string, winner?: ConfigNode) =>
    items.push({ reason, path, node, text: ignoredText(reason, node, path, winner) });
  for (const child of [...block.children].reverse()) {
    const name = child.name.toLowerCase();
    const path = prefix + child.name;
    const childSpec = child.kind === 'block' ? spec.blocks[name] : undefined;
    const known = child.kind === 'block' ? childSpec !== undefined : knownValue(spec, name);
    if (!known) {
      ignore(prefix === '' && child.kind === 'value' ? 'top-level' : 'unknown', child, path);
      continue;
    }
    const repeatable =
      child.kind === 'block'
        ? spec.repeatableBlocks?.includes(name)
        : spec.repeatable?.includes(name);
    const dupKey = `${child.kind}:${name}`;
    const winner = lastSeen.get(dupKey);
    if (winner && !repeatable) {
      ignore('duplicate', child, path, winner);
      continue;
    }
    lastSeen.set(dupKey, child);
    if (child.kind === 'block' && childSpec) walk(child, childSpec, `${path}/`, items);
  }
}
