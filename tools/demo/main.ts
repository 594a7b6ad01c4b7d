/**
 * `npm run demo`: three simulated hypervisors (a private libvirtd each, our fence_virtd with the
 * amqp backend each), one RabbitMQ, and the real C fence_xvm in a "guest" that reaches only
 * host 1. Every request is routed to the host that runs the VM; the demo prints the route.
 * `npm run demo -- --local` runs the single-host demo instead; `npm run demo -- --qemu` the
 * networkless-guest demo on real QEMU guests.
 */
import { SimCluster } from '../harness/cluster.js';
import { errText, toText } from '../../src/util/errors.js';

const VMS = {
  h1: [{ name: 'web-1', uuid: 'd1000000-0000-4000-8000-000000000001', running: true }],
  h2: [
    { name: 'db-1', uuid: 'd2000000-0000-4000-8000-000000000001', running: true },
    { name: 'db-2', uuid: 'd2000000-0000-4000-8000-000000000002', running: false },
  ],
  h3: [
    { name: 'app-1', uuid: 'd3000000-0000-4000-8000-000000000001', running: true },
    { name: 'app-2', uuid: 'd3000000-0000-4000-8000-000000000002', running: true },
  ],
};

const say = (text: string): void => {
  process.stdout.write(text + '\n');
};

async function main(): Promise<void> {
  if (process.argv.includes('--local')) {
    await import('./local.js');
    return;
  }
  if (process.argv.includes('--qemu')) {
    await import('./qemu.js');
    return;
  }
  say('virtfence demo: broker-routed fencing across three hypervisors');
  say(
    '  starting RabbitMQ (AMQP 1.0), three private libvirtds and three fence_virtd (backend amqp)…',
  );
  const cluster = new SimCluster({
    amqpPort: 5750,
    epmdPort: 4400,
    basePort: 12810,
    heartbeatMs: 500,
    deadAfterMs: 3000,
    hosts: Object.entries(VMS).map(([id, vms]) => ({ id, vms })),
  });
  try {
    await cluster.start();
    say(`  broker: ${cluster.brokerUrl}`);
    for (const host of cluster.hosts) {
      const vms = VMS[host.id as keyof typeof VMS].map(
        (v) => `${v.name}${v.running ? '' : ' (off)'}`,
      );
      say(
        `  ${host.id}: fence_virtd pid ${host.daemon?.child.pid}, multicast port ${host.port}, VMs ${vms.join(', ')}`,
      );
    }
    await cluster.waitListed('h1', ['web-1', 'db-1', 'db-2', 'app-1', 'app-2']);
    say('\nThe guest runs the real /usr/sbin/fence_xvm against host 1 only:');
    const steps: string[][] = [
      ['-o', 'list'],
      ['-o', 'status', '-H', 'app-1'],
      ['-o', 'off', '-H', 'app-1'],
      ['-o', 'status', '-H', 'app-1'],
      ['-o', 'on', '-H', 'app-1'],
      ['-o', 'reboot', '-H', 'db-1'],
      ['-o', 'status', '-H', 'd2000000-0000-4000-8000-000000000002'],
      ['-o', 'status', '-H', 'web-1'],
      ['-o', 'off', '-H', 'no-such-vm'],
    ];
    for (const args of steps) await step(cluster, args);
  } finally {
    await cluster.dispose();
  }
}

async function step(cluster: SimCluster, args: string[]): Promise<void> {
  const daemon = cluster.host('h1').daemon!;
  const before = daemon.logs.length;
  const started = Date.now();
  const result = await cluster.xvm('h1', args);
  say(`\n$ fence_xvm ${args.join(' ')}`);
  const out = (result.stdout + result.stderr).trimEnd();
  if (out) say(out.replace(/^/gm, '  '));
  say(`  (exit ${result.code}, ${Date.now() - started} ms)`);
  const request = await daemon
    .waitForLog((e) => daemon.logs.indexOf(e) >= before && e.event === 'request', 5_000)
    .catch(() => undefined);
  if (!request) return;
  const where = request.executed_by
    ? `executed on ${toText(request.executed_by)}`
    : 'answered by h1';
  say(
    `  route: h1 → ${where}; ${toText(request.result)} (${toText(request.reason)}) in ${toText(request.duration_ms)} ms`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${errText(err)}\n`);
  process.exit(1);
});
