/**
 * Hostile-input figures for `npm run bench`: our fence_virtd (multicast and tcp listeners, one
 * key) under the seeded multicast and TCP fuzz corpora, a sustained flood of unauthenticated
 * packets (log volume), and idle connections against the real C `fence_virt -T`.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import {
  idleFlood,
  multicastCorpus,
  openFds,
  sendDatagrams,
  tcpCorpus,
  tcpFuzz,
} from '../harness/hostile.js';
import {
  C_VIRT,
  C_XVM,
  runAgent,
  startDaemon,
  tempDir,
  type RunningDaemon,
} from '../harness/processes.js';
import { fmt, median, timed } from './stats.js';

const MCAST_PORT = 13201;
const TCP_PORT = 13202;
const CLOSED_PORT = 13209;
const SEED = 16;

export interface HostileBenchOptions {
  quick: boolean;
  log: (line: string) => void;
}

function rssKb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

export async function runHostileBench(options: HostileBenchOptions): Promise<void> {
  const { quick, log } = options;
  const dir = tempDir('virtfence-bench-hostile-');
  const key = randomBytes(4096);
  const keyFile = dir.file('key', key);
  const config = dir.file(
    'fence_virt.conf',
    `fence_virtd { listener = "multicast,tcp"; backend = "libvirt"; }\n` +
      `listeners {\n multicast { key_file = "${keyFile}"; port = "${MCAST_PORT}"; }\n` +
      ` tcp { key_file = "${keyFile}"; address = "127.0.0.1"; port = "${TCP_PORT}"; }\n}\n` +
      `backends { libvirt { uri = "test:///default"; } }\n`,
  );
  let daemon: RunningDaemon | undefined;
  try {
    daemon = await startDaemon({ kind: 'ours', configFile: config, pidFile: `${dir.path}/pid` });
    const pid = daemon.pid;
    const xvm = () =>
      runAgent(C_XVM, ['-p', String(MCAST_PORT), '-k', keyFile, '-o', 'status', '-H', 'test']);
    const virt = () =>
      timed(() =>
        runAgent(C_VIRT, [
          '-T',
          '127.0.0.1',
          '-p',
          String(TCP_PORT),
          '-k',
          keyFile,
          '-t',
          '10',
          '-o',
          'status',
          '-n',
          'test',
        ]),
      );
    const logSize = () => {
      const out = daemon!.output();
      return { lines: out.split('\n').length - 1, bytes: Buffer.byteLength(out) };
    };
    const executed = () =>
      daemon!.logs.filter((e) => e.event === 'request' && e.action !== 'status').length;

    log('\n## hostile input against our fence_virtd (multicast + tcp, one key, seeded corpora)');
    log('measurement                                   figure');

    const packets = quick ? 20_000 : 100_000;
    const fds0 = openFds(pid);
    const rss0 = rssKb(pid);
    const log0 = logSize();
    const mcast = await timed(() =>
      sendDatagrams(MCAST_PORT, multicastCorpus(SEED, { key, closedPort: CLOSED_PORT }), packets),
    );
    const served = (await xvm()).code === 0;
    log(
      `multicast fuzz: ${packets.toLocaleString('en')} packets         ${fmt(mcast.ms)} ` +
        `(${Math.round(packets / (mcast.ms / 1000)).toLocaleString('en')}/s sent), ` +
        `fence_xvm afterwards ${served ? 'served' : 'FAILED'}`,
    );

    const connections = quick ? 2_000 : 10_000;
    const locals = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);
    const tcp = await timed(() =>
      tcpFuzz(TCP_PORT, tcpCorpus(SEED, { key }), connections, { localAddresses: locals }),
    );
    const virtAfter = await virt();
    log(
      `tcp fuzz: ${connections.toLocaleString('en')} connections          ${fmt(tcp.ms)} ` +
        `(${Math.round(connections / (tcp.ms / 1000)).toLocaleString('en')}/s), ` +
        `fence_virt -T afterwards ${virtAfter.value.code === 0 ? 'served' : 'FAILED'}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const log1 = logSize();
    log(
      `after both: fds ${fds0} → ${openFds(pid)}, RSS ${Math.round(rss0 / 1024)} → ` +
        `${Math.round(rssKb(pid) / 1024)} MB, actions executed ${executed()}, ` +
        `log +${log1.lines - log0.lines} lines (${log1.bytes - log0.bytes} bytes)`,
    );

    // A sustained flood of unauthenticated packets: the log grows by a line and a summary per
    // reason per 10 s interval, not per packet.
    const floodMs = quick ? 5_000 : 20_000;
    const before = logSize();
    const corpus = multicastCorpus(SEED + 1, { closedPort: CLOSED_PORT }); // no key: all forged
    let sent = 0;
    const until = Date.now() + floodMs;
    while (Date.now() < until) {
      await sendDatagrams(MCAST_PORT, corpus, 2_000);
      sent += 2_000;
    }
    const after = logSize();
    log(
      `${floodMs / 1000} s flood of forged packets: ${sent.toLocaleString('en')} packets → ` +
        `${after.lines - before.lines} log lines (${after.bytes - before.bytes} bytes)` +
        ` [before the fix: 1.54 M lines]`,
    );

    // Idle connections against the real C fence_virt -T.
    const quiet: number[] = [];
    for (let i = 0; i < 15; i++) quiet.push((await virt()).ms);
    const attackers = Array.from({ length: 20 }, (_, i) => `127.0.0.${i + 20}`);
    const flood = idleFlood(TCP_PORT, 500, attackers);
    const busy: number[] = [];
    let ok = 0;
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (let i = 0; i < 15; i++) {
        const r = await virt();
        busy.push(r.ms);
        if (r.value.code === 0) ok++;
      }
    } finally {
      flood.stop();
    }
    log(
      `500 idle connections from 20 addresses: fence_virt -T ${ok}/15 served, median ` +
        `${fmt(median(busy))} (quiet ${fmt(median(quiet))}) [before the fix: 6/15]`,
    );
  } finally {
    await daemon?.stop();
    dir.remove();
  }
}
