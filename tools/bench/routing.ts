/**
 * Routing benchmark.
 *
 * 1. Routed fence latency through RabbitMQ: three in-process hosts (RoutedBackend + ClusterBus
 *    + LibvirtBackend on a private `test:///<file>.xml` hypervisor each); requests enter at
 *    host 1 for a VM on host 3, compared with the same request entering at host 3 (local).
 *    Actions: status, and off/on alternating. Every request has its own seqno (no dedup hit).
 * 2. The ownership table fed the events of 1,000 hosts × 100 VMs (in a child process, so the
 *    RSS is the table's process alone): RSS, events/s, full resync time.
 *
 * Goals: routed overhead p50 ≤ 10 ms, p99 ≤ 25 ms; 100,000 VMs < 200 MB RSS; resync < 5 s.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ClusterBus } from '../../src/amqp/bus.js';
import { resolveProfile, type AddressProfile } from '../../src/amqp/profiles.js';
import { LibvirtBackend } from '../../src/backends/libvirt/backend.js';
import { ClusterBusPort, RoutedBackend } from '../../src/backends/amqp/index.js';
import type { FenceAction, RequestContext } from '../../src/backends/backend.js';
import { OPERATOR } from '../harness/rabbitmq.js';
import { silentLogger } from '../../src/util/logger.js';
import type { TableBenchResult } from './routing-table.js';

const execFileAsync = promisify(execFile);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BROKER = path.join(ROOT, 'broker/rabbitmq');

export interface RoutingBenchOptions {
  /** Requests per measured series. Default 500 (quick: 100). */
  iterations?: number;
  /** Use this broker instead of starting a private one. */
  brokerUrl?: string;
  /** Ports for the private broker. Defaults 5726 / 25726 / 4383. */
  amqpPort?: number;
  distPort?: number;
  epmdPort?: number;
  /** Table size (defaults 1,000 hosts × 100 VMs). */
  hosts?: number;
  vmsPerHost?: number;
  /** Skip the broker part (table only). */
  tableOnly?: boolean;
  log?: (line: string) => void;
}

export interface LatencyFigures {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface RoutingBenchResult {
  routed: { status: LatencyFigures; power: LatencyFigures } | undefined;
  local: { status: LatencyFigures; power: LatencyFigures } | undefined;
  /** routed minus local, per percentile (ms). */
  overhead:
    { statusP50: number; statusP99: number; powerP50: number; powerP99: number } | undefined;
  table: TableBenchResult;
  goals: Record<string, boolean>;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export function figures(samples: number[]): LatencyFigures {
  const s = [...samples].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    n: s.length,
    p50: r(percentile(s, 50)),
    p90: r(percentile(s, 90)),
    p99: r(percentile(s, 99)),
    max: r(s[s.length - 1] ?? NaN),
  };
}

function hostXml(vms: Array<{ name: string; uuid: string }>): string {
  const cpu =
    '<cpu><mhz>2400</mhz><model>sim</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores>' +
    '<threads>1</threads><active>4</active></cpu><memory>16777216</memory>';
  const doms = vms
    .map(
      (vm) =>
        `<domain type='test'><name>${vm.name}</name><uuid>${vm.uuid}</uuid><memory unit='MiB'>128</memory>` +
        `<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>`,
    )
    .join('');
  return `<node>${cpu}${doms}</node>`;
}

async function startBroker(dir: string, port: number, dist: number, epmd: number): Promise<string> {
  const { stdout } = await execFileAsync(
    path.join(BROKER, 'start.sh'),
    [dir, String(port), String(dist), String(epmd)],
    {
      timeout: 90_000,
    },
  );
  return stdout.trim().split('\n').pop() ?? `amqp://127.0.0.1:${port}`;
}

async function stopBroker(dir: string): Promise<void> {
  await execFileAsync(path.join(BROKER, 'stop.sh'), [dir, 'TERM'], { timeout: 60_000 }).catch(
    () => undefined,
  );
}

/** The table part in a fresh child process (clean RSS). */
async function tableInChild(hosts: number, vmsPerHost: number): Promise<TableBenchResult> {
  const module = new URL('./routing-table.ts', import.meta.url).href;
  const script =
    `import(${JSON.stringify(module)}).then((m) => process.stdout.write(JSON.stringify(` +
    `m.benchRoutingTable({ hosts: ${hosts}, vmsPerHost: ${vmsPerHost} }))))`;
  const { stdout } = await execFileAsync(
    process.execPath,
    ['--import', 'tsx', '--expose-gc', '--input-type=module', '-e', script],
    {
      timeout: 300_000,
      maxBuffer: 1 << 20,
    },
  );
  return JSON.parse(stdout) as TableBenchResult;
}

interface BenchHost {
  id: string;
  backend: RoutedBackend;
}

/** The broker a routed series runs through. */
export interface BenchBroker {
  url: string;
  label: string;
  profile?: AddressProfile;
  username?: string;
  password?: string;
  cluster?: string;
}

export async function routedPart(
  target: string | BenchBroker,
  iterations: number,
  log: (line: string) => void,
): Promise<{ routed: RoutingBenchResult['routed']; local: RoutingBenchResult['local'] }> {
  const broker: BenchBroker =
    typeof target === 'string'
      ? { url: target, label: `RabbitMQ at ${target}`, ...OPERATOR } // anonymous access is off
      : target;
  const url = broker.url;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-bench-routing-'));
  const key = randomBytes(32);
  const cluster = broker.cluster ?? `bench${process.pid}`;
  const vm = { name: 'vm-bench', uuid: 'b0000000-0000-4000-8000-000000000003' };
  const hosts: BenchHost[] = [];
  try {
    for (const [i, id] of ['bh1', 'bh2', 'bh3'].entries()) {
      const file = path.join(dir, `${id}.xml`);
      const vms =
        i === 2
          ? [vm]
          : [{ name: `vm-idle-${id}`, uuid: `b0000000-0000-4000-8000-00000000010${i}` }];
      fs.writeFileSync(file, hostXml(vms));
      const local = new LibvirtBackend({ uris: [`test://${file}`] }, silentLogger);
      const bus = new ClusterBus({
        urls: [url],
        hostId: id,
        cluster,
        key,
        profile: broker.profile ?? resolveProfile('rabbitmq3'),
        ...(broker.username !== undefined ? { username: broker.username } : {}),
        ...(broker.password !== undefined ? { password: broker.password } : {}),
        maxReconnectDelayMs: 500,
      });
      const backend = new RoutedBackend(local, new ClusterBusPort(bus), {
        hostId: id,
        heartbeatIntervalMs: 500,
        deadAfterMs: 5000,
        logger: silentLogger,
      });
      await backend.start();
      hosts.push({ id, backend });
    }
    const [h1, , h3] = hosts as [BenchHost, BenchHost, BenchHost];
    // Until host 1 routes the VM to host 3.
    const until = Date.now() + 30_000;
    let seqno = 1;
    const ctx = (): RequestContext => ({
      id: `bench-${seqno}`,
      listener: 'bench',
      source: '127.0.0.1',
      seqno: seqno++,
      deadline: Date.now() + 10_000,
    });
    for (;;) {
      const r = await h1.backend.fence('status', vm.name, ctx());
      if (r.code === 0 && r.executedBy === 'bh3') break;
      if (Date.now() > until) throw new Error(`host 1 never routed the VM to host 3 (${r.reason})`);
      await new Promise((res) => setTimeout(res, 100));
    }

    async function series(host: BenchHost, actions: FenceAction[]): Promise<number[]> {
      const out: number[] = [];
      for (let i = 0; i < iterations; i++) {
        const action = actions[i % actions.length] as FenceAction;
        const t0 = process.hrtime.bigint();
        const r = await host.backend.fence(action, vm.name, ctx());
        out.push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (r.code !== 0 && !(action === 'status' && r.code === 2)) {
          throw new Error(`bench ${action} at ${host.id} failed: ${r.reason}`);
        }
      }
      return out;
    }
    // Every host synced (answers that rest on "runs nowhere else" need it), then warm-up, and
    // the series one after the other.
    while (!hosts.every((h) => h.backend.health().serving)) {
      if (Date.now() > until) throw new Error('the hosts never synced');
      await new Promise((res) => setTimeout(res, 100));
    }
    await series(h1, ['status']);
    const localStatus = await series(h3, ['status']);
    const routedStatus = await series(h1, ['status']);
    const localPower = await series(h3, ['off', 'on']);
    const routedPower = await series(h1, ['off', 'on']);
    log(`routing: ${iterations} requests per series, 3 in-process hosts, ${broker.label}`);
    return {
      routed: { status: figures(routedStatus), power: figures(routedPower) },
      local: { status: figures(localStatus), power: figures(localPower) },
    };
  } finally {
    for (const h of hosts.reverse()) await h.backend.stop().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchRouting(options: RoutingBenchOptions = {}): Promise<RoutingBenchResult> {
  const log = options.log ?? (() => undefined);
  const iterations = options.iterations ?? 500;
  const table = await tableInChild(options.hosts ?? 1000, options.vmsPerHost ?? 100);
  let routed: RoutingBenchResult['routed'];
  let local: RoutingBenchResult['local'];
  if (!options.tableOnly) {
    let brokerDir: string | undefined;
    try {
      let url = options.brokerUrl;
      if (!url) {
        brokerDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-bench-rabbit-'));
        url = await startBroker(
          brokerDir,
          options.amqpPort ?? 5726,
          options.distPort ?? 25726,
          options.epmdPort ?? 4383,
        );
      }
      ({ routed, local } = await routedPart(url, iterations, log));
    } finally {
      if (brokerDir) {
        await stopBroker(brokerDir);
        fs.rmSync(brokerDir, { recursive: true, force: true });
      }
    }
  }
  const overhead =
    routed && local
      ? {
          statusP50: Math.round((routed.status.p50 - local.status.p50) * 100) / 100,
          statusP99: Math.round((routed.status.p99 - local.status.p99) * 100) / 100,
          powerP50: Math.round((routed.power.p50 - local.power.p50) * 100) / 100,
          powerP99: Math.round((routed.power.p99 - local.power.p99) * 100) / 100,
        }
      : undefined;
  const goals: Record<string, boolean> = {
    'table RSS < 200 MB (100,000 VMs)': table.rssMb < 200,
    'full resync < 5 s': table.resyncVerifiedMs < 5000,
  };
  if (overhead) {
    goals['routed overhead p50 <= 10 ms'] = overhead.statusP50 <= 10 && overhead.powerP50 <= 10;
    goals['routed overhead p99 <= 25 ms'] = overhead.statusP99 <= 25 && overhead.powerP99 <= 25;
  }
  return { routed, local, overhead, table, goals };
}

/** The `npm run bench` section. */
export async function runRoutingBench(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<RoutingBenchResult> {
  const { log } = options;
  log('\n## Broker routing (amqp backend)');
  const result = await benchRouting({ iterations: options.quick ? 100 : 500, log });
  const lat = (f: LatencyFigures) =>
    `p50 ${f.p50} ms, p90 ${f.p90} ms, p99 ${f.p99} ms, max ${f.max} ms (n=${f.n})`;
  if (result.routed && result.local && result.overhead) {
    log(`status, local at host 3:        ${lat(result.local.status)}`);
    log(`status, routed host 1 → host 3: ${lat(result.routed.status)}`);
    log(`off/on, local at host 3:        ${lat(result.local.power)}`);
    log(`off/on, routed host 1 → host 3: ${lat(result.routed.power)}`);
    log(
      `routed overhead: status p50 ${result.overhead.statusP50} ms / p99 ${result.overhead.statusP99} ms; ` +
        `off/on p50 ${result.overhead.powerP50} ms / p99 ${result.overhead.powerP99} ms`,
    );
  }
  const t = result.table;
  log(
    `table: ${t.hosts} hosts × ${t.vms / t.hosts} VMs = ${t.vms} VMs; ${t.events} events at ${t.eventsPerSecond} events/s; ` +
      `RSS ${t.rssMb} MB (table heap ${t.tableHeapMb} MB)`,
  );
  log(
    `full resync: ${t.resyncMs} ms applying snapshots, ${t.resyncVerifiedMs} ms with HMAC + schema verification; ` +
      `route decision ${t.decideRouteMicros} µs`,
  );
  for (const [goal, met] of Object.entries(result.goals))
    log(`goal ${met ? 'met' : 'MISSED'}: ${goal}`);
  return result;
}
