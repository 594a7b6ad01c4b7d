/**
 * One declaration per configuration block: a zod object whose field names are the keys as they
 * are written in fence_virt.conf. Everything else is derived from it — which keys exist (for
 * `config check` and the loader's warnings), which values are read from the parsed tree, the
 * typed configuration (the same names in camelCase, numbered lists in the plural), and the key
 * an error is reported under.
 *
 * Add a key by adding one field to the block's zod object.
 */
import { z } from 'zod';
import { childrenNamed, indexedValues } from './lookup.js';
import type { ConfigBlock } from './tree.js';

/** snake_case → camelCase, for the typed configuration's field names. */
type Camel<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Head}${Capitalize<Camel<Tail>>}`
  : S;

type FieldName<K extends string, Names> = K extends keyof Names ? Names[K] & string : Camel<K>;

/** The typed form of a block's raw values: keys camelCased, or renamed as the block says. */
export type Typed<Raw, Names = object> = {
  [K in keyof Raw as K extends string ? FieldName<K, Names> : never]: Raw[K];
};

function camel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export interface BlockOptions<Names extends Record<string, string>> {
  /**
   * Keys read as numbered series, `key`, `key1`, `key2`, … until the first missing index (the C
   * rule for libvirt's `uri`); their zod field takes a string array.
   */
  numbered?: readonly string[];
  /** Typed field names that are not the plain camelCase of the key (`url` → `urls`). */
  names?: Names;
  /** Keys C knows in this block that we accept and ignore (no warning, nothing read). */
  ignored?: readonly string[];
}

export interface BlockDeclaration<
  Shape extends z.ZodRawShape,
  Names extends Record<string, string>,
> {
  /** Path of the block in the file, e.g. `listeners/multicast`. */
  path: string;
  /** The raw schema: one field per key, named as in the file. */
  raw: z.ZodObject<Shape>;
  numbered: readonly string[];
  names: Names;
  ignored: readonly string[];
}

export function defineBlock<
  Shape extends z.ZodRawShape,
  const Names extends Record<string, string> = Record<never, string>,
>(path: string, shape: Shape, options: BlockOptions<Names> = {}): BlockDeclaration<Shape, Names> {
  return {
    path,
    raw: z.object(shape),
    numbered: options.numbered ?? [],
    names: options.names ?? ({} as Names),
    ignored: options.ignored ?? [],
  };
}

/** Every key name of a block, as written in the file. */
export function blockKeys(
  block: BlockDeclaration<z.ZodRawShape, Record<string, string>>,
): string[] {
  return Object.keys(block.raw.shape);
}

/** The known-key patterns of a block: its keys, `key<n>` for numbered series, ignored keys. */
export function knownKeyPatterns(
  block: BlockDeclaration<z.ZodRawShape, Record<string, string>>,
): (string | RegExp)[] {
  return [
    ...blockKeys(block),
    ...block.numbered.map((key) => new RegExp(`^${key}\\d+$`)),
    ...block.ignored,
  ];
}

/** The typed field name of a key. */
export function fieldName(
  block: BlockDeclaration<z.ZodRawShape, Record<string, string>>,
  key: string,
): string {
  return block.names[key] ?? camel(key);
}

/** Raw values of one block for its schema: scalars (last occurrence wins), numbered series. */
export interface RawBlock {
  values: Record<string, string | string[]>;
  /** Line of each scalar key read. */
  lines: Map<string, number>;
}

/** Reads a block's declared keys from a parsed tree (an absent block reads as empty). */
export function readBlock(
  block: BlockDeclaration<z.ZodRawShape, Record<string, string>>,
  node: ConfigBlock | undefined,
): RawBlock {
  const values: Record<string, string | string[]> = {};
  const lines = new Map<string, number>();
  for (const key of blockKeys(block)) {
    if (block.numbered.includes(key)) {
      values[key] = indexedValues(node, key);
      continue;
    }
    const value = node ? childrenNamed(node, key, 'value')[0] : undefined;
    if (!value) continue;
    values[key] = value.value;
    lines.set(key, value.line);
  }
  return { values, lines };
}

/** Reads a block's declared keys from a flat key/value map (the amqp block's input). */
export function readValues(
  block: BlockDeclaration<z.ZodRawShape, Record<string, string>>,
  input: Readonly<Record<string, string>>,
): Record<string, string | string[]> {
  const values: Record<string, string | string[]> = {};
  for (const key of blockKeys(block)) {
    if (block.numbered.includes(key)) values[key] = numberedValues(input, key);
    else if (input[key] !== undefined) values[key] = input[key];
  }
  return values;
}

/** `base`, `base1`, `base2`, … from a flat map (stops at the first missing index). */
export function numberedValues(values: Readonly<Record<string, string>>, base: string): string[] {
  const out: string[] = [];
  const first = values[base];
  if (first === undefined) return out;
  out.push(first);
  for (let i = 1; ; i++) {
    const next = values[`${base}${i}`];
    if (next === undefined) break;
    out.push(next);
  }
  return out;
}

/** The typed form of parsed raw values (see Typed); an absent optional key is undefined. */
export function typed<Raw extends object, Names extends Record<string, string>>(
  block: BlockDeclaration<z.ZodRawShape, Names>,
  raw: Raw,
): Typed<Raw, Names> {
  const values = raw as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of blockKeys(block)) out[fieldName(block, key)] = values[key];
  return out as Typed<Raw, Names>;
}

/** The key a zod issue path names: `url` for ['url'], `url2` for ['url', 2]. */
export function issueKey(path: readonly PropertyKey[]): string {
  const base = String(path[0] ?? '');
  const index = path[1];
  return typeof index === 'number' && index > 0 ? `${base}${index}` : base;
}

/** A block's problems as the user wrote the keys: `url2: …`, or `(block)` for the whole block. */
export function keyProblems(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): { key: string; message: string }[] {
  return issues.map((issue) => ({
    key: issueKey(issue.path) || '(block)',
    message: issue.message,
  }));
}

/** Keys of a flat map that the block does not declare (typos deserve a warning). */
export function unknownKeys(
  block: BlockDeclaration<z.ZodRawShape, Record<string, string>>,
  values: Readonly<Record<string, string>>,
): string[] {
  const known = knownKeyPatterns(block);
  return Object.keys(values).filter(
    (k) => !known.some((p) => (typeof p === 'string' ? p === k : p.test(k))),
  );
}
