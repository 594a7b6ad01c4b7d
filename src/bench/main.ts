/** `npm run bench`: figures and ratios against the C suite, run side by side on this machine. */
import { seedHost, startLibvirtd } from '../harness/libvirtd.js';
import { benchDaemons } from './daemon.js';

const TEST_UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f';

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
  const rounds = quick ? { status: 5, list: 5, reboot: 2 } : { status: 30, list: 30, reboot: 6 };
  await benchDaemons({
    rounds,
    concurrent: 100,
    log,
    libvirtUri: 'test:///default',
    label: "libvirt's test driver in-process",
  });
  // Production URIs (qemu:///system) always go through libvirtd: measure that way too.
  const libvirtd = await startLibvirtd('bench');
  try {
    await seedHost(libvirtd, [{ name: 'test', uuid: TEST_UUID, running: true }]);
    await benchDaemons({
      rounds,
      concurrent: 100,
      log,
      libvirtUri: libvirtd.uri,
      label: 'through a libvirtd (test driver)',
    });
  } finally {
    await libvirtd.stop();
  }
  await optional('agent start-up', async () => {
    const { runAgentStartupBench } = await import('./agent-startup.js');
    await runAgentStartupBench({ quick, log });
  });
  await optional('cpg comparison', async () => {
    const { runCpgBench } = await import('./cpg.js');
    await runCpgBench({ quick, log });
  });
  await optional('hostile input', async () => {
    const { runHostileBench } = await import('./hostile.js');
    await runHostileBench({ quick, log });
  });
  await optional('broker routing', async () => {
    const { runRoutingBench } = await import('./routing.js');
    await runRoutingBench({ quick, log });
  });
  await optional('routed fencing per broker', async () => {
    const { runBrokerBench } = await import('./brokers.js');
    await runBrokerBench({ quick, log });
  });
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
