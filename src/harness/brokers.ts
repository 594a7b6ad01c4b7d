/**
 * Every broker the tests, the demo and the benchmarks run, behind one handle: RabbitMQ 3.x
 * (Debian's package, rabbitmq.ts) and the JVM brokers fetched by scripts/brokers.sh (ActiveMQ
 * Artemis, ActiveMQ Classic, Qpid Broker-J), each started by its broker/<name>/start.sh with
 * all state in a temp folder and stopped by pid.
 *
 *   const broker = await startBroker('artemis', { port: 5801, users: [{ user, password, cluster }] });
 *   await broker.stop('SIGKILL');   // outage
 *   await broker.restart();         // same port, same state
 *   await broker.dispose();         // stopped by pid, folder removed
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProfileName } from '../amqp/profiles.js';
import { startRabbit, rabbitAvailable } from './rabbitmq.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const BROKER_KINDS = ['rabbitmq', 'artemis', 'activemq', 'qpid-broker-j'] as const;
export type BrokerKind = (typeof BROKER_KINDS)[number];

/** The profile each bundled broker is configured for. */
export const BROKER_PROFILE: Record<BrokerKind, ProfileName> = {
  rabbitmq: 'rabbitmq3',
  artemis: 'artemis',
  activemq: 'activemq',
  'qpid-broker-j': 'qpid-broker-j',
};

export interface BrokerUser {
  user: string;
  password: string;
  /** The only cluster whose addresses this user may use (not enforced on RabbitMQ here). */
  cluster: string;
}

export interface BrokerStartOptions {
  port: number;
  /** Default: one user virtfence/virtfence for cluster "virtfence" (RabbitMQ: always that). */
  users?: BrokerUser[];
  /** RabbitMQ only: Erlang distribution and epmd ports (default port+20000, 4369+port%100). */
  distPort?: number;
  epmdPort?: number;
  /** RabbitMQ only: least-privilege users to create, one per host of the cluster. */
  hostUsers?: { cluster: string; hosts: string[] };
  /** RabbitMQ only: node name, Erlang cookie and rabbitmq.conf lines (a cluster's nodes). */
  rabbit?: { nodeName?: string; cookie?: string; extraConfig?: string };
  /** Extra environment for start.sh (HA and TLS settings, see broker/<name>/start.sh; an HA
   *  backup or slave does not wait for readiness). */
  env?: Record<string, string>;
  /** An existing state folder (a second HA node shares only what env names). */
  stateDir?: string;
  readyTimeoutMs?: number;
}

export interface BrokerHandle {
  /** RabbitMQ started with hostUsers: a host's own broker login. */
  hostCredentials?: (host: string) => { username: string; password: string };
  /** RabbitMQ only: rabbitmqctl against this node. */
  ctl?: (args: string[]) => Promise<string>;
  kind: BrokerKind;
  profile: ProfileName;
  /** amqp://127.0.0.1:<port>, without credentials. */
  url: string;
  port: number;
  users: BrokerUser[];
  stateDir: string;
  /** The broker's pid (changes on restart; -1 when not running). */
  readonly pid: number;
  /** Stops the broker with the signal (default SIGTERM) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  kill(): Promise<void>;
  /** Starts it again on the same port and state; resolves once AMQP-ready. */
  restart(): Promise<void>;
  /** Stops everything by pid and removes the state folder. */
  dispose(): Promise<void>;
}

/** The JVM brokers' default user (start.sh without VIRTFENCE_BROKER_USERS); on RabbitMQ the
 *  operator account of broker/rabbitmq/definitions.json, which has the same name. */
export const DEFAULT_BROKER_USER: BrokerUser = {
  user: 'virtfence',
  password: 'virtfence',
  cluster: 'virtfence',
};

/** Whether the broker can run here: a JVM broker's distribution unpacked by
 *  scripts/brokers.sh, RabbitMQ's Debian package. */
export function brokerAvailable(kind: BrokerKind): boolean {
  if (kind === 'rabbitmq') return rabbitAvailable();
  const cache = process.env.VIRTFENCE_BROKER_CACHE ?? join(ROOT, '.cache', 'brokers');
  if (!existsSync(cache)) return false;
  return readdirSafe(cache).some(
    (d) => d.startsWith(`${kind}-`) && existsSync(join(cache, d, '.unpacked')),
  );
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

function run(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

export async function startBroker(
  kind: BrokerKind,
  options: BrokerStartOptions,
): Promise<BrokerHandle> {
  if (kind === 'rabbitmq') {
    const rabbit = await startRabbit({
      port: options.port,
      distPort: options.distPort ?? options.port + 20000,
      epmdPort: options.epmdPort ?? 4369 + (options.port % 100) + 1,
      ...(options.readyTimeoutMs !== undefined ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
      ...options.rabbit,
      ...(options.hostUsers ? { hostUsers: options.hostUsers } : {}),
    });
    return {
      kind,
      profile: BROKER_PROFILE[kind],
      url: rabbit.url,
      port: rabbit.port,
      users: [DEFAULT_BROKER_USER],
      stateDir: rabbit.stateDir,
      get pid() {
        return rabbit.pid;
      },
      stop: (signal) => rabbit.stop(signal),
      kill: () => rabbit.kill(),
      restart: () => rabbit.restart(),
      dispose: () => rabbit.dispose(),
      ctl: (args) => rabbit.ctl(args),
      hostCredentials: (host) => rabbit.hostCredentials(host),
    };
  }
  const users = options.users ?? [DEFAULT_BROKER_USER];
  const ownState = options.stateDir === undefined;
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), `virtfence-${kind}-`));
  const script = join(ROOT, 'broker', kind, 'start.sh');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    VIRTFENCE_BROKER_USERS: users.map((u) => `${u.user}:${u.password}:${u.cluster}`).join(' '),
    READY_TIMEOUT_MS: String(options.readyTimeoutMs ?? 90_000),
    ...options.env,
  };
  const pidFile = join(stateDir, 'broker.pid');
  const readPid = (): number => {
    try {
      return Number(readFileSync(pidFile, 'utf8').trim()) || -1;
    } catch {
      return -1;
    }
  };
  let pid = -1;
  const launch = async () => {
    const r = await run(script, [stateDir, String(options.port)], env);
    pid = readPid();
    if (r.code !== 0) throw new Error(`${kind} did not start (exit ${r.code}): ${r.out.trim()}`);
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (!alive(pid)) return;
    process.kill(pid, signal);
    if (!(await waitGone(pid, 30_000))) {
      process.kill(pid, 'SIGKILL');
      await waitGone(pid, 10_000);
    }
  };
  const dispose = async () => {
    await stop('SIGKILL');
    if (ownState) rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    await launch();
  } catch (err) {
    await dispose();
    throw err;
  }
  return {
    kind,
    profile: BROKER_PROFILE[kind],
    url: `amqp://127.0.0.1:${options.port}`,
    port: options.port,
    users,
    stateDir,
    get pid() {
      return alive(pid) ? pid : -1;
    },
    stop,
    kill: () => stop('SIGKILL'),
    restart: async () => {
      await stop('SIGTERM');
      await launch();
    },
    dispose,
  };
}
