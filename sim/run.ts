/** Runs many schedules; the seed of schedule i is `first + i`, so any one replays alone. */
import { runSchedule, type ScheduleResult } from './world.js';

export interface BatchOptions {
  first: number;
  schedules: number;
  seconds?: number;
  /** Stop after this many failing schedules (default: never). */
  stopAfter?: number;
  /** Stop once this much wall time went by (ms). */
  budgetMs?: number;
  /** Give the daemons the `hosts` list (default true). */
  configureHosts?: boolean;
}

export interface BatchResult {
  ran: number;
  failures: ScheduleResult[];
  /** Allowances by name (sim/truth.ts ALLOWANCES) and the seeds they occurred on. */
  allowed: Map<string, number[]>;
  requests: number;
  answers: number;
  ms: number;
}

export async function runBatch(options: BatchOptions): Promise<BatchResult> {
  const started = Date.now();
  const failures: ScheduleResult[] = [];
  const allowed = new Map<string, number[]>();
  let requests = 0;
  let answers = 0;
  let ran = 0;
  for (let i = 0; i < options.schedules; i++) {
    const seed = (options.first + i) >>> 0;
    const r = await runSchedule(seed, {
      ...(options.seconds !== undefined ? { seconds: options.seconds } : {}),
      ...(options.configureHosts !== undefined ? { configureHosts: options.configureHosts } : {}),
    });
    ran++;
    for (const a of r.allowances) {
      const seeds = allowed.get(a.name) ?? [];
      if (!seeds.includes(seed)) seeds.push(seed);
      allowed.set(a.name, seeds);
    }
    requests += r.requests;
    answers += r.answers;
    if (r.violations.length > 0) {
      failures.push(r);
      if (options.stopAfter !== undefined && failures.length >= options.stopAfter) break;
    }
    if (options.budgetMs !== undefined && Date.now() - started > options.budgetMs) break;
  }
  return { ran, failures, allowed, requests, answers, ms: Date.now() - started };
}

/** A failing schedule as a report: its seed, what it drew, the violations and the replay. */
export async function report(
  seed: number,
  seconds?: number,
  configureHosts?: boolean,
): Promise<string> {
  const r = await runSchedule(seed, {
    trace: true,
    ...(seconds !== undefined ? { seconds } : {}),
    ...(configureHosts !== undefined ? { configureHosts } : {}),
  });
  const out = [
    `seed ${seed}: ${r.violations.length} violation(s)`,
    `  drawn: ${r.summary}`,
    ...r.violations.map((v) => `  (${v.invariant}) ${v.text}`),
    ...r.allowances.map((a) => `  allowed (${a.name}) ${a.text}`),
    `  replay: npm run sim -- --seed ${seed} --schedules 1 --trace`,
    '  trace:',
    ...r.trace.map((l) => `    ${l}`),
  ];
  return out.join('\n');
}
