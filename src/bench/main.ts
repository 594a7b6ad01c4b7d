/** `npm run bench`: figures and ratios against the C suite, run side by side on this machine. */
import { benchDaemons } from './daemon.js';

const log = (line: string): void => {
  process.stdout.write(line + '\n');
};

async function optional(name: string, load: () => Promise<unknown>): Promise<void> {
  try {
    await load();
  } catch (err) {
    log(`\n## ${name}: not run (${(err as Error).message})`);
  }
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  log(
    `virtfence benchmarks (${new Date().toISOString()}, node ${process.version}, ${quick ? 'quick' : 'full'} run)`,
  );
  await benchDaemons({
    rounds: quick ? { status: 5, list: 5, reboot: 2 } : { status: 30, list: 30, reboot: 6 },
    concurrent: 100,
    log,
  });
  await optional('agent start-up', async () => {
    const { runAgentStartupBench } = await import('./agent-startup.js');
    await runAgentStartupBench({ quick, log });
  });
  await optional('broker routing', async () => {
    const { runRoutingBench } = await import('./routing.js');
    await runRoutingBench({ quick, log });
  });
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
