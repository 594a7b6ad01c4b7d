/**
 * Writes `schemas/<type>.json` (one envelope schema per message type) and
 * `schemas/message.json` (the union) from the zod definitions.
 * Run: `npm run schemas` (after the build) or `node dist/messages/generate-schemas.js [dir]`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { MESSAGE_TYPES, MessageSchema, MessageSchemas } from './schemas.js';

const ID_BASE = 'https://virtfence.invalid/schemas/';

function toSchema(schema: z.ZodType, name: string, title: string): Record<string, unknown> {
  // "input": unknown keys are allowed (the parser strips them), as a newer v1 sender may add some.
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'throw' }) as Record<
    string,
    unknown
  >;
  const { $schema, ...rest } = json;
  return { $schema, $id: `${ID_BASE}${name}.json`, title, ...rest };
}

/** File name → JSON text (pretty, trailing newline), exactly as committed. */
export function generateSchemaFiles(): Map<string, string> {
  const files = new Map<string, string>();
  const add = (name: string, schema: z.ZodType, title: string) =>
    files.set(`${name}.json`, JSON.stringify(toSchema(schema, name, title), null, 2) + '\n');
  add('message', MessageSchema, 'virtfence cluster message (any type)');
  for (const type of MESSAGE_TYPES) add(type, MessageSchemas[type], `virtfence ${type} message`);
  return files;
}

export const DEFAULT_SCHEMA_DIR = fileURLToPath(new URL('../../schemas/', import.meta.url));

export function writeSchemaFiles(dir: string = DEFAULT_SCHEMA_DIR): string[] {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, text] of generateSchemaFiles()) {
    const path = join(dir, name);
    writeFileSync(path, text);
    written.push(path);
  }
  return written;
}

const invoked = process.argv[1] ? pathToFileURL(resolve(process.argv[1])).href : '';
if (import.meta.url === invoked) {
  for (const path of writeSchemaFiles(process.argv[2] ?? DEFAULT_SCHEMA_DIR)) {
    process.stdout.write(`${path}\n`);
  }
}
