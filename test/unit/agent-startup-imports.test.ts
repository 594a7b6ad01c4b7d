/**
 * Start-up cost guard: Pacemaker runs the agent for every monitor, so the modules loaded before an
 * action runs must stay few. Walks the STATIC import graph of src/agents/main.ts (dynamic import()
 * calls are not followed) and checks what it may and may not contain.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** `import ... from '...'` and `export ... from '...'`, but not `import('...')`. */
function staticImports(source: string): string[] {
  const found: string[] = [];
  for (const match of source.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)) {
    found.push(match[1]!);
  }
  return found;
}

function staticGraph(entry: string): Set<string> {
  const seen = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    if (!file.startsWith('/')) continue; // a package or node: builtin
    for (const spec of staticImports(fs.readFileSync(file, 'utf8'))) {
      pending.push(
        spec.startsWith('.')
          ? path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'))
          : spec,
      );
    }
  }
  return seen;
}

describe('agent entry import graph', () => {
  const graph = [...staticGraph(path.join(ROOT, 'src/agents/main.ts'))].map((m) =>
    m.startsWith('/') ? path.relative(ROOT, m) : m,
  );

  it('holds only node builtins and our protocol/agent modules (and the shared leaves util, core)', () => {
    // The walker itself works: what main.ts needs up front is found.
    expect(graph).toEqual(
      expect.arrayContaining([
        'src/agents/options.ts',
        'src/agents/outcome.ts',
        'src/protocol/constants.ts',
        'node:fs',
      ]),
    );
    for (const module of graph) {
      expect(module).toMatch(/^(node:[a-z_/]+|src\/(agents|protocol|net|util|core)\/[a-z-]+\.ts)$/);
    }
  });

  it('loads no CLI framework, broker client or schema library', () => {
    expect(graph.filter((m) => /rhea|zod|oclif|amqp|messages|daemon|config/.test(m))).toEqual([]);
  });

  it('leaves transports and texts to dynamic import', () => {
    for (const lazy of ['multicast', 'tcp', 'serial', 'session', 'text']) {
      expect(graph).not.toContain(`src/agents/${lazy}.ts`);
    }
    const main = fs.readFileSync(path.join(ROOT, 'src/agents/main.ts'), 'utf8');
    for (const lazy of ['multicast', 'tcp', 'serial', 'text']) {
      expect(main).toContain(`import('./${lazy}.js')`);
    }
  });
});
