/**
 * `npm run sim -- [--schedules N] [--seed S] [--seconds T] [--trace] [--no-hosts]`: runs N
 * schedules of the fault simulation (seeds S, S+1, …) and prints every violation with its seed
 * and a trace that replays it, and how often each named allowance occurred. `--no-hosts` runs
 * the daemons without the `hosts` key (the residual case). Exit 1 when any invariant was
 * violated.
 */
import { report, runBatch } from './run.js';
import { errText } from '../src/util/errors.js';

function parse(argv: string[]): {
  schedules: number;
  seed: number;
  seconds?: number;
  trace: boolean;
  configureHosts: boolean;
} {
  let schedules = 1000;
  let seed = 1;
  let seconds: number | undefined;
  let trace = false;
  let configureHosts = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0) throw new Error(`${a} needs a non-negative integer`);
      return v;
    };
    if (a === '--schedules') schedules = value();
    else if (a === '--seed') seed = value();
    else if (a === '--seconds') seconds = value();
    else if (a === '--trace') trace = true;
    else if (a === '--no-hosts') configureHosts = false;
    else
      throw new Error(
        `unknown argument ${a} (--schedules N --seed S --seconds T --trace --no-hosts)`,
      );
  }
  return { schedules, seed, ...(seconds !== undefined ? { seconds } : {}), trace, configureHosts };
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  if (o.trace) {
    for (let i = 0; i < o.schedules; i++)
      process.stdout.write((await report(o.seed + i, o.seconds, o.configureHosts)) + '\n');
    return;
  }
  const r = await runBatch({
    first: o.seed,
    schedules: o.schedules,
    ...(o.seconds !== undefined ? { seconds: o.seconds } : {}),
    configureHosts: o.configureHosts,
  });
  for (const f of r.failures.slice(0, 5))
    process.stdout.write((await report(f.seed, o.seconds, o.configureHosts)) + '\n\n');
  for (const f of r.failures.slice(5))
    process.stdout.write(
      `seed ${f.seed}: ${f.violations.map((v) => `(${v.invariant}) ${v.text}`).join('; ')}\n`,
    );
  for (const [name, seeds] of r.allowed)
    process.stdout.write(
      `allowed (${name}) on ${seeds.length} schedule(s): seeds ${seeds.slice(0, 20).join(', ')}\n`,
    );
  process.stdout.write(
    `${r.ran} schedules (seeds ${o.seed}–${o.seed + r.ran - 1}), ${r.requests} requests, ` +
      `${r.answers} answers checked, ${r.failures.length} failing, ${(r.ms / 1000).toFixed(1)} s\n`,
  );
  process.exitCode = r.failures.length > 0 ? 1 : 0;
}

main().catch((error: unknown) => {
  process.stderr.write(`sim: ${errText(error)}\n`);
  process.exitCode = 2;
});
