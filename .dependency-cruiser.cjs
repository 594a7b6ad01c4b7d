/**
 * The layering of src/ as rules that fail `npm run lint` (docs/architecture.md explains them).
 *
 *   core, util                     shared types and helpers, import nothing of ours but each other
 *   protocol                       pure wire formats
 *   messages, routing, config      pure: schemas, decisions, configuration
 *   net, libvirt, amqp,
 *   listeners, backends            adapters (I/O)
 *   daemon, agents, cli            programs
 *   tools/ (harness, bench, demo)  tests', benchmarks' and the demo's tooling; never imported by the product
 */
const ADAPTERS = '^src/(net|libvirt|amqp|listeners|backends)/';
const PROGRAMS = '^src/(daemon|agents|cli)/';
const TOOLS = '^tools/';

/** Modules started by bin/*, oclif (commands), npm scripts (schemas, bench, demo). */
const ENTRY_POINTS = [
  '^src/daemon/main[.]ts$',
  '^src/agents/main[.]ts$',
  '^src/cli/commands/',
  '^src/messages/generate-schemas[.]ts$',
  '^tools/bench/main[.]ts$',
  '^tools/demo/main[.]ts$',
];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'Import cycles (type-only ones too) make layers meaningless: put shared types in a leaf module.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-is-the-bottom',
      severity: 'error',
      comment: 'src/core and src/util are below everything else.',
      from: { path: '^src/(core|util)/' },
      to: { path: '^src/', pathNot: '^src/(core|util)/' },
    },
    {
      name: 'protocol-is-pure',
      severity: 'error',
      comment: 'src/protocol holds wire formats only; it depends on no other layer but core.',
      from: { path: '^src/protocol/' },
      to: { path: '^src/', pathNot: '^src/(protocol|core|util)/' },
    },
    {
      name: 'messages-and-routing-stay-low',
      severity: 'error',
      comment:
        'src/messages (the broker schemas) and src/routing (pure decisions) build on core, util, ' +
        'protocol and messages only; a type they need from above moves down to src/core.',
      from: { path: '^src/(messages|routing)/' },
      to: { path: '^src/', pathNot: '^src/(core|util|protocol|messages|routing)/' },
    },
    {
      name: 'config-stays-low',
      severity: 'error',
      comment: 'src/config parses and declares; the plugins depend on it, not the other way round.',
      from: { path: '^src/config/' },
      to: { path: '^src/', pathNot: '^src/(core|util|protocol|messages|config)/' },
    },
    {
      name: 'adapters-import-no-programs',
      severity: 'error',
      comment:
        'Listeners, backends, the bus and libvirt are used by the programs, not the other way round.',
      from: { path: ADAPTERS },
      to: { path: `${PROGRAMS}|${TOOLS}` },
    },
    {
      name: 'programs-are-independent',
      severity: 'error',
      comment: 'The daemon, the agents and the CLI share code through lower layers only.',
      from: { path: '^src/(daemon|agents|cli)/' },
      to: { path: PROGRAMS, pathNot: '^src/$1/' },
    },
    {
      name: 'product-imports-no-tools',
      severity: 'error',
      comment: 'Test, benchmark and demo tooling stays outside the product runtime paths.',
      from: { path: '^src/', pathNot: TOOLS },
      to: { path: `${TOOLS}|^test/` },
    },
    {
      name: 'no-unreachable',
      severity: 'error',
      comment:
        'Every module of src/ is reachable from a program, a command or a tool entry point ' +
        '(barrels nobody imports, dead modules).',
      from: { path: ENTRY_POINTS.join('|') },
      to: { path: '^src/', pathNot: ENTRY_POINTS.join('|'), reachable: false },
    },
    {
      name: 'no-orphans',
      severity: 'error',
      from: { orphan: true, path: '^src/' },
      to: {},
    },
    {
      name: 'product-uses-no-dev-dependencies',
      severity: 'error',
      comment: 'The runtime image installs dependencies only.',
      from: { path: '^src/', pathNot: TOOLS },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-unlisted-packages',
      severity: 'error',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|build|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.d.ts'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
