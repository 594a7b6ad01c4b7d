/**
 * Writer in the C suite's dump format (docs/protocol.md §15.4): items in reverse file order, child blocks
 * before values, one TAB per level, a blank line after every block.
 */
import type { ConfigBlock, ConfigValue } from './tree.js';

export interface DumpOptions {
  /**
   * 'c' (default): reverse file order, exactly like `fence_virtd -c`.
   * 'file': keep file order (blocks still before values), for tools that rewrite a file.
   */
  order?: 'c' | 'file';
}

function ordered<T>(items: T[], order: 'c' | 'file'): T[] {
  return order === 'c' ? [...items].reverse() : items;
}

function dumpBlockBody(block: ConfigBlock, depth: number, order: 'c' | 'file'): string {
  const blocks = block.children.filter((c): c is ConfigBlock => c.kind === 'block');
  const values = block.children.filter((c): c is ConfigValue => c.kind === 'value');
  const indent = '\t'.repeat(depth);
  let out = '';
  for (const child of ordered(blocks, order)) {
    const head = child.value === undefined ? child.name : `${child.name} = "${child.value}"`;
    out += `${indent}${head} {\n${dumpBlockBody(child, depth + 1, order)}${indent}}\n\n`;
  }
  for (const value of ordered(values, order)) {
    out += `${indent}${value.name} = "${value.value}";\n`;
  }
  return out;
}

/** The text of a whole tree (the root block's children at depth 0). */
export function dumpConfig(root: ConfigBlock, options: DumpOptions = {}): string {
  return dumpBlockBody(root, 0, options.order ?? 'c');
}
