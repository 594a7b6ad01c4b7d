/**
 * Our fence_virtd against the C one, side by side: the real fence_xvm for status, list and
 * reboot, alternating A/B in one run; then 100 concurrent status requests while one callback
 * hangs (the C daemon handles one request at a time).
 */
import { randomBytes } from 'node:crypto';
import { Op } from '../../src/protocol/constants.js';
import {
  C_XVM,
  runAgent,
  startDaemon,
  tempDir,
  type DaemonKind,
  type RunningDaemon,
} from '../harness/processes.js';
import { sendDatagram, xvmRequest } from '../harness/xvm-client.js';
import { encodeFenceRequest } from '../../src/protocol/fence-request.js';
import net from 'node:net';
import { fmt, median, percentile, ratio, timed } from './stats.js';

const PORTS: Record<DaemonKind, number> = { ours: 13001, c: 13002 };
const HANG_PORT = 13099;
const CONCURRENT_BASE = 13100;

export interface DaemonBenchOptions {
  rounds: { status: number; list: number; reboot: number };
  concurrent: number;
  log: (line: string) => void;
  /** libvirt URI both daemons use; a private libvirtd is started when absent. */
  libvirtUri: string;
  /** Printed in the section headings. */
  label: string;
}

export async function benchDaemons(options: DaemonBenchOptions): Promise<void> {
  const dir = tempDir('virtfence-bench-');
  const key = randomBytes(4096);
  const keyFile = dir.file('key', key);
  const daemons: Partial<Record<DaemonKind, RunningDaemon>> = {};
  try {
    for (const kind of ['ours', 'c'] as const) {
      const configFile = dir.file(
        `${kind}.conf`,
        `fence_virtd { listener = "multicast"; backend = "libvirt"; }\n` +
          `listeners { multicast { key_file = "${keyFile}"; port = "${PORTS[kind]}"; } }\n` +
          `backends { libvirt { uri = "${options.libvirtUri}"; } }\n`,
      );
      daemons[kind] = await startDaemon({
        kind,
        configFile,
        pidFile: `${dir.path}/${kind}.pid`,
        udpPort: PORTS[kind],
      });
    }
    // Both daemons serve continuously in production: time them warm, not their first requests.
    for (const kind of ['ours', 'c'] as const) await warmUp(kind, key, 50);
    options.log(
      `\n## fence_xvm against each daemon, ${options.label} (real /usr/sbin/fence_xvm, A/B)`,
    );
    options.log('action    runs   ours median   C median   ratio ours/C');
    for (const action of ['status', 'list', 'reboot'] as const) {
      const runs = options.rounds[action];
      const times: Record<DaemonKind, number[]> = { ours: [], c: [] };
      for (let i = 0; i < runs; i += 1) {
        for (const kind of i % 2 === 0 ? (['ours', 'c'] as const) : (['c', 'ours'] as const)) {
          const args = ['-p', String(PORTS[kind]), '-k', keyFile, '-t', '20', '-o', action];
          if (action !== 'list') args.push('-H', 'test');
          const { ms, value } = await timed(() => runAgent(C_XVM, args));
          if (value.code !== 0)
            throw new Error(`${kind} ${action} failed: ${value.stdout}${value.stderr}`);
          times[kind].push(ms);
        }
      }
      const ours = median(times.ours);
      const c = median(times.c);
      options.log(
        `${action.padEnd(9)} ${String(runs).padStart(4)}   ${fmt(ours).padStart(11)}   ${fmt(c).padStart(8)}   ${ratio(ours, c)}`,
      );
    }
    options.log(
      `\n## ${options.concurrent} concurrent status requests while one callback hangs, ${options.label}`,
    );
    for (const kind of ['ours', 'c'] as const) {
      const figures = await concurrentWithHang(kind, key, options.concurrent);
      options.log(
        `${kind.padEnd(5)} all answered: ${figures.answered}/${options.concurrent}, ` +
          `p50 ${fmt(figures.p50)}, p99 ${fmt(figures.p99)}, total ${fmt(figures.total)}`,
      );
    }
  } finally {
    for (const daemon of Object.values(daemons)) await daemon?.stop();
    dir.remove();
  }
}

async function warmUp(kind: DaemonKind, key: Buffer, count: number): Promise<void> {
  const seqBase = 600_000 + Math.floor(Math.random() * 300_000);
  for (let i = 0; i < count; i += 1) {
    await xvmRequest({
      op: Op.STATUS,
      target: 'test',
      seqno: seqBase + i,
      key,
      daemonAddress: '127.0.0.1',
      daemonPort: PORTS[kind],
      callbackAddress: '127.0.0.1',
      callbackPort: HANG_PORT - 1,
      timeoutMs: 5_000,
    });
  }
}

async function concurrentWithHang(
  kind: DaemonKind,
  key: Buffer,
  count: number,
): Promise<{ answered: number; p50: number; p99: number; total: number }> {
  const hung: net.Socket[] = [];
  const hangServer = net.createServer((socket) => hung.push(socket));
  await new Promise<void>((resolve) => hangServer.listen(HANG_PORT, '127.0.0.1', resolve));
  try {
    const seqBase = Math.floor(Math.random() * 500_000);
    // The hanging request goes first: the C daemon then waits on it before anything else.
    await hangingRequest(kind, key, seqBase + 1);
    const started = Date.now();
    const latencies = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        timed(() =>
          xvmRequest({
            op: Op.STATUS,
            target: 'test',
            seqno: seqBase + 2 + i,
            key,
            daemonAddress: '127.0.0.1',
            daemonPort: PORTS[kind],
            callbackAddress: '127.0.0.1',
            callbackPort: CONCURRENT_BASE + i,
            timeoutMs: 60_000,
          }),
        ),
      ),
    );
    const answered = latencies.filter((l) => l.value?.code === 0).length;
    const ms = latencies.map((l) => l.ms);
    return { answered, p50: median(ms), p99: percentile(ms, 99), total: Date.now() - started };
  } finally {
    hung.forEach((s) => s.destroy());
    hangServer.close();
  }

  async function hangingRequest(k: DaemonKind, keyBytes: Buffer, seqno: number): Promise<void> {
    const packet = encodeFenceRequest(
      {
        request: Op.STATUS,
        hashtype: 2,
        domain: 'test',
        address: '127.0.0.1',
        port: HANG_PORT,
        seqno,
      },
      keyBytes,
    );
    await sendDatagram(packet, '127.0.0.1', PORTS[k]);
    const deadline = Date.now() + 5_000;
    while (hung.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }
}
