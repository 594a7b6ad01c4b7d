import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generateSchemaFiles } from '../../src/messages/generate-schemas.js';
import { MESSAGE_TYPES, MessageSchemas } from '../../src/messages/schemas.js';

const dir = fileURLToPath(new URL('../../schemas/', import.meta.url));

describe('committed JSON schemas', () => {
  const generated = generateSchemaFiles();

  it('cover every message type plus the union', () => {
    expect([...generated.keys()].sort()).toEqual(
      ['message.json', ...MESSAGE_TYPES.map((t) => `${t}.json`)].sort(),
    );
  });

  it.each([...generateSchemaFiles().keys()])('%s is up to date (run `npm run schemas`)', (name) => {
    expect(readFileSync(`${dir}${name}`, 'utf8')).toBe(generated.get(name));
  });

  it('has no stale extra schema files', () => {
    const committed = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(committed.sort()).toEqual([...generated.keys()].sort());
  });

  it('describes the envelope fields of each type as required', () => {
    const heartbeat = JSON.parse(generated.get('heartbeat.json') ?? '{}') as { required: string[] };
    expect(heartbeat.required.sort()).toEqual(
      ['v', 'type', 'cluster', 'from', 'epoch', 'seq', 'ts', 'id', 'body', 'sig'].sort(),
    );
    expect(Object.keys(MessageSchemas)).toEqual(MESSAGE_TYPES);
  });
});
