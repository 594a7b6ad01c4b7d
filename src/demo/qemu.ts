/**
 * `npm run demo -- --qemu`: requirement 1 on real guests. Two simulated hypervisors, each a
 * private libvirtd with the QEMU driver running real guests (software emulation); RabbitMQ; our
 * fence_virtd with the amqp backend on both, host 1's with the serial listener. A guest on host 1
 * that has NO network device runs the real C fence_virt on its serial port and powers off, then
 * on, a guest on host 2. Every step prints what the guest's console showed and the route taken.
 */
import { QemuCluster } from '../harness/qemu-cluster.js';
import type { QemuGuest } from '../harness/qemu.js';
import { errText, toText } from '../util/errors.js';

const FENCER = { name: 'fencer-1', uuid: 'd9000000-0000-4000-8000-000000000001' };
const TARGET = { name: 'db-2', uuid: 'd9000000-0000-4000-8000-000000000002' };

const say = (text: string): void => {
  process.stdout.write(text + '\n');
};

async function main(): Promise<void> {
  say('virtfence demo: a guest without networking fences a guest on another host (real QEMU)');
  say('  starting RabbitMQ, two libvirtds with the QEMU driver, two fence_virtd, two guests…');
  const started = Date.now();
  const q = new QemuCluster({
    amqpPort: 5752,
    epmdPort: 4402,
    basePort: 12820,
    hosts: [
      { id: 'h1', guests: [FENCER], fence: 'serial' },
      { id: 'h2', guests: [TARGET] },
    ],
  });
  try {
    await q.start();
    const h1 = q.host('h1');
    const h2 = q.host('h2');
    say(
      `  ready in ${((Date.now() - started) / 1000).toFixed(1)} s; broker ${q.cluster.brokerUrl}`,
    );
    say(`  h1: ${h1.uri}`);
    say(
      `      guest ${FENCER.name}: QEMU pid ${h1.qemuPid(FENCER.name)}, serial port 1 → ${q.fenceDir('h1')}/${FENCER.name}.sock`,
    );
    say(`  h2: ${h2.uri}`);
    say(`      guest ${TARGET.name}: QEMU pid ${h2.qemuPid(TARGET.name)}`);
    const fencer = q.guest(FENCER.name);
    say(`\nInside ${FENCER.name} (typed on its console; output read from its console log):`);
    await guestStep(q, fencer, 'ls /sys/class/net', false);
    await guestStep(q, fencer, 'fence_virt -D /dev/ttyS1 -o list', true);
    await guestStep(q, fencer, `fence_virt -D /dev/ttyS1 -o status -n ${TARGET.name}`, true);
    const pid = h2.qemuPid(TARGET.name);
    await guestStep(q, fencer, `fence_virt -D /dev/ttyS1 -o off -n ${TARGET.name}`, true);
    say(
      `  on h2: QEMU pid ${pid} ${h2.qemuPid(TARGET.name) === undefined ? 'is gone' : 'STILL RUNS'}; libvirt says ${(await h2.virsh('domstate', TARGET.name)).trim()}`,
    );
    await guestStep(q, fencer, `fence_virt -D /dev/ttyS1 -o status -n ${TARGET.name}`, true);
    const target = q.guest(TARGET.name);
    target.markBoot();
    await guestStep(q, fencer, `fence_virt -D /dev/ttyS1 -o on -n ${TARGET.name}`, true);
    const bootMs = await target.waitReady(120_000);
    say(
      `  on h2: new QEMU pid ${h2.qemuPid(TARGET.name)}; ${TARGET.name}'s console after ${(bootMs / 1000).toFixed(1)} s:`,
    );
    const ready = target
      .sinceBoot()
      .split('\n')
      .find((l) => l.includes('vfguest: ready'));
    say(`    ${ready ?? '(no ready line)'}`);
  } finally {
    await q.dispose();
  }
}

async function guestStep(
  q: QemuCluster,
  guest: QemuGuest,
  command: string,
  routed: boolean,
): Promise<void> {
  const daemon = q.cluster.host('h1').daemon!;
  const before = daemon.logs.length;
  const started = Date.now();
  const r = await guest.run(command);
  say(`\n  ${guest.name}# ${command}`);
  const out = r.output.trimEnd();
  if (out) say(out.replace(/^/gm, '    '));
  say(`    (exit ${r.code}, ${Date.now() - started} ms)`);
  if (!routed) return;
  const request = await daemon
    .waitForLog((e) => daemon.logs.indexOf(e) >= before && e.event === 'request', 5_000)
    .catch(() => undefined);
  if (!request) return;
  const where = request.executed_by
    ? `executed on ${toText(request.executed_by)}`
    : 'answered by h1';
  say(
    `    route: serial port → h1 (serial listener, source ${toText(request.source)}) → ${where}; ` +
      `${toText(request.result)} (${toText(request.reason)}) in ${toText(request.duration_ms)} ms`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${errText(err)}\n`);
  process.exit(1);
});
