/**
 * In-place edits of a parsed tree with the C suite's `sc_set` behaviour, so a dump after
 * editing matches `fence_virtd -c` byte for byte: an existing value (the last occurrence in the
 * file) is replaced where it stands; a new value or block is added where C's prepend puts it,
 * which in our file-ordered lists is the end.
 */
import { childrenNamed } from './lookup.js';
import type { ConfigBlock } from './tree.js';

/** `a/b/@key` → blocks ['a','b'] and key 'key'. Only plain names: no indexes. */
function splitValuePath(path: string): { blocks: string[]; key: string } {
  const parts = path.split('/').filter((p) => p.length > 0);
  const last = parts.pop();
  if (!last?.startsWith('@') || parts.some((p) => /[@[\]]/.test(p))) {
    throw new Error(`invalid value path '${path}': expected block/names/@key`);
  }
  return { blocks: parts, key: last.slice(1) };
}

function descend(root: ConfigBlock, names: string[], create: boolean): ConfigBlock | undefined {
  let block = root;
  for (const name of names) {
    let next = childrenNamed(block, name, 'block')[0];
    if (!next) {
      if (!create) return undefined;
      next = { kind: 'block', name, value: undefined, children: [], line: 0 };
      block.children.push(next);
    }
    block = next;
  }
  return block;
}

/** Sets `blocks/@key` to `value`, or removes it when `value` is undefined. */
export function setConfigValue(root: ConfigBlock, path: string, value: string | undefined): void {
  const { blocks, key } = splitValuePath(path);
  const block = descend(root, blocks, value !== undefined);
  if (!block) return;
  const existing = childrenNamed(block, key, 'value')[0];
  if (value === undefined) {
    if (existing) block.children.splice(block.children.indexOf(existing), 1);
  } else if (existing) {
    existing.value = value;
  } else {
    block.children.push({ kind: 'value', name: key, value, line: 0 });
  }
}

/** An empty root block, as after "Start from scratch". */
export function emptyConfig(): ConfigBlock {
  return { kind: 'block', name: '', value: undefined, children: [], line: 0 };
}
