/**
 * Agent start-up cost: wall time of `fence_xvm -o status` for OUR agent and the C one against the
 * same C fence_virtd (multicast, libvirt test driver), paired and alternating in one run so both
 * see the same machine load. Pacemaker runs the agent for every monitor, so this is what it pays.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { C_XVM, ROOT, startDaemon, tempDir } from '../harness/processes.js';
import { fmt, median, percentile, ratio } from './stats.js';

export interface AgentStartupOptions {
  /** Runs of each agent (default 30). */
  rounds?: number;
  /** Multicast port of the daemon started for the run (default 12395). */
  port?: number;
  ourAgent?: string;
  cAgent?: string;
}

export interface AgentTimings {
  medianMs: number;
  p90Ms: number;
  samples: number[];
}

export interface BenchResult {
  rounds: number;
  ours: AgentTimings;
  c: AgentTimings;
  /** ours / C, medians. */
  ratio: number;
  /** A `node -e` that prints one line, on this machine: the floor under any Node.js agent. */
  nodeFloorMs: number;
  /** Every run answered "Status: ON" with exit code 0. */
  allOk: boolean;
}

const KEY = 'agent-startup-bench-key';

function daemonConfig(keyFile: string, port: number): string {
  return [
    'fence_virtd {\n\tlistener = "multicast";\n\tbackend = "libvirt";',
    '\tmodule_path = "/usr/lib/x86_64-linux-gnu/fence-virt";\n}',
    `listeners {\n\tmulticast {\n\t\tkey_file = "${keyFile}";\n\t\tport = "${port}";`,
    '\t\tfamily = "ipv4";\n\t\tinterface = "lo";\n\t}\n}',
    'backends {\n\tlibvirt {\n\t\turi = "test:///default";\n\t}\n}\n',
  ].join('\n');
}

/** Wall time from spawn to exit, and whether the answer was the expected one. */
function timeRun(
  binary: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ ms: number; ok: boolean }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'ignore'], env });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      resolve({ ms, ok: code === 0 && stdout === 'Status: ON\n' });
    });
  });
}

function timings(samples: number[]): AgentTimings {
  return { medianMs: median(samples), p90Ms: percentile(samples, 90), samples };
}

export async function benchAgentStartup(options: AgentStartupOptions = {}): Promise<BenchResult> {
  const rounds = options.rounds ?? 30;
  const port = options.port ?? 12395;
  const ourAgent = options.ourAgent ?? path.join(ROOT, 'bin/fence_xvm');
  const cAgent = options.cAgent ?? C_XVM;
  const dir = tempDir('vf-bench-agent-');
  const keyFile = dir.file('key', KEY);
  const daemon = await startDaemon({
    kind: 'c',
    configFile: dir.file('fence_virt.conf', daemonConfig(keyFile, port)),
    pidFile: path.join(dir.path, 'pid'),
    udpPort: port,
  });
  try {
    const args = ['-k', keyFile, '-p', String(port), '-t', '10', '-o', 'status', '-n', 'test'];
    const ours: number[] = [];
    const c: number[] = [];
    let allOk = true;
    // One warm-up each (page cache), then alternate which agent goes first in each pair.
    await timeRun(ourAgent, args);
    await timeRun(cAgent, args);
    for (let i = 0; i < rounds; i += 1) {
      const order = i % 2 === 0 ? [ourAgent, cAgent] : [cAgent, ourAgent];
      for (const binary of order) {
        const run = await timeRun(binary, args);
        allOk &&= run.ok;
        (binary === ourAgent ? ours : c).push(run.ms);
      }
    }
    // The floor runs with the environment our bin script gives node (no NODE_EXTRA_CA_CERTS).
    const floorEnv = { ...process.env };
    delete floorEnv.NODE_EXTRA_CA_CERTS;
    const script = ['-e', 'process.stdout.write("Status: ON\\n")'];
    const floor: number[] = [];
    for (let i = 0; i < Math.min(rounds, 10); i += 1) {
      floor.push((await timeRun(process.execPath, script, floorEnv)).ms);
    }
    const oursT = timings(ours);
    const cT = timings(c);
    return {
      rounds,
      ours: oursT,
      c: cT,
      ratio: oursT.medianMs / cT.medianMs,
      nodeFloorMs: median(floor),
      allOk,
    };
  } finally {
    await daemon.stop();
    dir.remove();
  }
}

/** The `npm run bench` section. */
export async function runAgentStartupBench(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<BenchResult> {
  const { log } = options;
  const result = await benchAgentStartup({ rounds: options.quick ? 10 : 30 });
  log(
    '\n## agent start-up: fence_xvm -o status against the C fence_virtd (multicast, test driver)',
  );
  log(`runs per agent: ${result.rounds} (paired, alternating), all answered ON: ${result.allOk}`);
  log(`ours  median ${fmt(result.ours.medianMs)}  p90 ${fmt(result.ours.p90Ms)}`);
  log(`C     median ${fmt(result.c.medianMs)}  p90 ${fmt(result.c.p90Ms)}`);
  log(`ratio ours/C (medians): ${ratio(result.ours.medianMs, result.c.medianMs)}`);
  log(`node -e floor on this machine: ${fmt(result.nodeFloorMs)}; goal for ours: < 120 ms median`);
  return result;
}
