/**
 * The simulation has teeth: each known-bad change, applied in memory to the real classes, is
 * caught within the schedule budget by the invariant it breaks (on a seed that passes
 * without the change).
 */
import { MUTATIONS } from '../../sim/mutations.js';
import { runSchedule } from '../../sim/world.js';
import { OPEN_FINDINGS, RESIDUAL_WITHOUT_HOSTS } from './open-findings.js';

const BUDGET = 2500;
const open = new Set(OPEN_FINDINGS.map(([seed]) => seed));
const residual = new Set(RESIDUAL_WITHOUT_HOSTS.map(([seed]) => seed));

test.each(MUTATIONS.map((m) => [m.name, m] as const))(
  'caught: %s',
  async (_name, m) => {
    const configureHosts = m.configureHosts ?? true;
    const undo = m.apply();
    let caught: string | undefined;
    try {
      for (let seed = 1; seed <= BUDGET && caught === undefined; seed++) {
        if (open.has(seed) || (!configureHosts && residual.has(seed))) continue;
        const r = await runSchedule(seed, { configureHosts });
        const v = r.violations.find((x) => m.caughtBy.includes(x.invariant));
        if (v) caught = `seed ${seed}: (${v.invariant}) ${v.text}`;
      }
    } finally {
      undo();
    }
    expect(caught).toBeDefined();
  },
  120_000,
);
