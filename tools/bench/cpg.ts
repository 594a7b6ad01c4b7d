/**
 * The cpg comparison in `npm run bench`: the same three-host corosync cluster, the same C-style
 * fence_virt.conf and the same fence_xvm requests, once with our fence_virtd and once with the
 * C one (backend cpg), side by side: false successes, false OFF, healthy answers, status
 * latency and the ratio. Each run builds a fresh cluster.
 */
import { corosyncAvailable } from '../harness/corosync.js';
import { CpgComparison, type CpgRunResult } from '../harness/cpg-scenarios.js';
import { median } from './stats.js';

export async function runCpgBench(o: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<void> {
  const { log } = o;
  if (!corosyncAvailable()) throw new Error('needs root, ip netns, nsenter and corosync');
  log('\n## cpg backend on a three-host corosync cluster (real fence_xvm, same fence_virt.conf)');
  const rounds = o.quick ? 1 : 2;
  const results: Record<'ours' | 'c', CpgRunResult[]> = { ours: [], c: [] };
  for (let round = 0; round < rounds; round++) {
    for (const kind of ['ours', 'c'] as const) {
      const run = new CpgComparison({
        kind,
        prefix: `vfb${kind === 'ours' ? 'o' : 'c'}${round}`,
        subnet: kind === 'ours' ? '10.237.0' : '10.238.0',
        port: 12790 + round * 2 + (kind === 'ours' ? 0 : 1),
        agentTimeoutSec: 4,
        log: (line) => log(line),
      });
      try {
        await run.start();
        results[kind].push(await run.run());
      } finally {
        await run.stop();
      }
    }
  }
  const sum = (rs: CpgRunResult[], f: (r: CpgRunResult) => number): number =>
    rs.reduce((n, r) => n + f(r), 0);
  const row = (label: string, f: (r: CpgRunResult[]) => string): void =>
    log(`| ${label} | ${f(results.ours)} | ${f(results.c)} |`);
  log(
    `\n| measurement (${rounds} cluster run${rounds > 1 ? 's' : ''} each) | virtfence | C fence-virt |`,
  );
  log('|---|---|---|');
  row('false successes (off/reboot reported done, VM still running)', (r) =>
    String(sum(r, (x) => x.falseSuccesses)),
  );
  row('false OFF (status OFF while the VM runs)', (r) => String(sum(r, (x) => x.falseOff)));
  row(
    'healthy requests answered correctly',
    (r) => `${sum(r, (x) => x.healthyOk)} / ${sum(r, (x) => x.healthyTotal)}`,
  );
  row('healthy list shows', (r) => r.map((x) => `${x.listed} of ${x.vmsInCluster} VMs`).join(', '));
  row('starts that answered nothing within 8 s (then restarted)', (r) =>
    String(sum(r, (x) => x.startupHangs)),
  );
  const ours = median(results.ours.flatMap((x) => x.statusMs));
  const c = median(results.c.flatMap((x) => x.statusMs));
  row('fence_xvm -o status, healthy, answered correctly, median', (r) => {
    const m = median(r.flatMap((x) => x.statusMs));
    return Number.isFinite(m) ? `${m.toFixed(1)} ms` : '-';
  });
  const ratio = ours / c;
  log(
    `\ncpg status latency ratio virtfence / C: ${Number.isFinite(ratio) && c > 0 ? ratio.toFixed(2) : 'n/a (one side answered no healthy status)'}`,
  );
}
