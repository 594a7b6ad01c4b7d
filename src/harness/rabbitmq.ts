/**
 * A private RabbitMQ 3.x broker for tests, all state in a temp folder, stopped by pid.
 * Same set-up as broker/rabbitmq/start.sh (the config template and definitions are shared):
 * no anonymous access; `url` carries the operator account's credentials (full rights, as the
 * CLI and test tooling need); `hostUsers` adds one least-privilege user per daemon host
 * (broker/rabbitmq/host-users.mjs), whose credentials `hostCredentials(host)` returns.
 *
 *   const broker = await startRabbit({ port: 5700, distPort: 25700, epmdPort: 4370 });
 *   await broker.stop('SIGTERM');  // outage (epmd stays up)
 *   await broker.restart();        // same ports, same state
 *   await broker.dispose();        // beam.smp + epmd stopped by pid, folder removed
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BROKER_DIR = fileURLToPath(new URL('../../broker/', import.meta.url));
const SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';

export interface RabbitOptions {
  port: number;
  distPort: number;
  epmdPort: number;
  /** Default 60 s. */
  readyTimeoutMs?: number;
  /** Least-privilege users to create, one per host of the cluster. */
  hostUsers?: { cluster: string; hosts: string[] };
}

/** The operator account of broker/rabbitmq/definitions.json. */
export const OPERATOR = { username: 'virtfence', password: 'virtfence' } as const;

export interface BrokerCredentials {
  username: string;
  password: string;
}

interface HostUsersModule {
  addHostUsers(
    definitions: unknown,
    cluster: string,
    hosts: { host: string; password: string }[],
  ): unknown;
  hostUserName(cluster: string, host: string): string;
}

async function hostUsersModule(): Promise<HostUsersModule> {
  const href = new URL('rabbitmq/host-users.mjs', `file://${BROKER_DIR}`).href;
  return (await import(href)) as HostUsersModule;
}

export interface RabbitBroker {
  /** amqp://virtfence:…@127.0.0.1:port — the operator account. */
  url: string;
  /** Credentials of a host created through `hostUsers`. */
  hostCredentials(host: string): BrokerCredentials;
  port: number;
  /** beam.smp pid of the current run (changes on restart). */
  readonly pid: number;
  stateDir: string;
  /** Stops beam.smp with the signal (default SIGTERM) and waits for it to exit; epmd stays. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** stop('SIGKILL'). */
  kill(): Promise<void>;
  /** Starts beam.smp again on the same ports and state; resolves when AMQP-ready. */
  restart(): Promise<void>;
  /** Stops everything by pid and removes the state folder. */
  dispose(): Promise<void>;
}

export function rabbitAvailable(): boolean {
  return existsSync(SERVER);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function waitReady(url: string, timeoutMs: number, beam: ChildProcess): Promise<void> {
  const probe = spawn(process.execPath, [join(BROKER_DIR, 'ready.mjs'), url, String(timeoutMs)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  probe.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const onBeamExit = () => probe.kill('SIGTERM');
  beam.once('exit', onBeamExit);
  const code = await new Promise<number | null>((resolve) => probe.once('exit', resolve));
  beam.off('exit', onBeamExit);
  if (code !== 0)
    throw new Error(`RabbitMQ at ${url} not ready: ${stderr.trim() || 'broker exited'}`);
}

export async function startRabbit(options: RabbitOptions): Promise<RabbitBroker> {
  if (!rabbitAvailable()) throw new Error(`${SERVER} missing: apt-get install rabbitmq-server`);
  const stateDir = mkdtempSync(join(tmpdir(), 'virtfence-rabbit-'));
  const { port, distPort, epmdPort } = options;
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const url = `amqp://${OPERATOR.username}:${OPERATOR.password}@127.0.0.1:${port}`;
  for (const d of ['mnesia', 'log', 'home']) mkdirSync(join(stateDir, d), { recursive: true });
  const template = readFileSync(join(BROKER_DIR, 'rabbitmq', 'rabbitmq.conf.template'), 'utf8');
  writeFileSync(
    join(stateDir, 'rabbitmq.conf'),
    template
      .replaceAll('@@ADDRESS@@', '127.0.0.1')
      .replaceAll('@@PORT@@', String(port))
      .replaceAll('@@STATEDIR@@', stateDir),
  );
  const credentials = new Map<string, BrokerCredentials>();
  if (options.hostUsers) {
    const { cluster, hosts } = options.hostUsers;
    const users = await hostUsersModule();
    const entries = hosts.map((host) => ({ host, password: `pw-${host}-${process.pid}` }));
    const base: unknown = JSON.parse(
      readFileSync(join(BROKER_DIR, 'rabbitmq', 'definitions.json'), 'utf8'),
    );
    writeFileSync(
      join(stateDir, 'definitions.json'),
      JSON.stringify(users.addHostUsers(base, cluster, entries)),
    );
    for (const e of entries) {
      credentials.set(e.host, {
        username: users.hostUserName(cluster, e.host),
        password: e.password,
      });
    }
  } else {
    copyFileSync(
      join(BROKER_DIR, 'rabbitmq', 'definitions.json'),
      join(stateDir, 'definitions.json'),
    );
  }
  writeFileSync(join(stateDir, 'advanced.config'), '[].\n');
  writeFileSync(join(stateDir, 'enabled_plugins'), '[rabbitmq_amqp1_0].\n');

  const epmd = spawn('epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], {
    stdio: 'ignore',
    detached: true,
  });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    HOME: join(stateDir, 'home'),
    detached: '1', // the script execs erl in place: the child pid is beam.smp
    RABBITMQ_CONF_ENV_FILE: join(stateDir, 'rabbitmq-env.conf.absent'),
    RABBITMQ_CONFIG_FILE: join(stateDir, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(stateDir, 'advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(stateDir, 'enabled_plugins'),
    RABBITMQ_MNESIA_BASE: join(stateDir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(stateDir, 'log'),
    RABBITMQ_PID_FILE: join(stateDir, 'rabbit.pid'),
    RABBITMQ_NODENAME: 'rabbit@localhost',
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  };

  let beam: ChildProcess | undefined;
  const launch = async () => {
    const child = spawn(SERVER, [], { env, stdio: 'ignore', detached: true });
    beam = child;
    try {
      await waitReady(url, readyTimeoutMs, child);
    } catch (err) {
      child.kill('SIGKILL');
      await waitExit(child, 10_000);
      throw err;
    }
  };
  const stopBeam = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const child = beam;
    if (!child?.pid || !alive(child.pid)) return;
    child.kill(signal);
    if (!(await waitExit(child, 30_000))) {
      child.kill('SIGKILL');
      await waitExit(child, 10_000);
    }
  };
  const dispose = async () => {
    await stopBeam('SIGTERM');
    if (epmd.pid && alive(epmd.pid)) {
      epmd.kill('SIGTERM');
      await waitExit(epmd, 5000);
    }
    rmSync(stateDir, { recursive: true, force: true });
  };

  try {
    await launch();
  } catch (err) {
    await dispose();
    throw err;
  }

  return {
    url,
    hostCredentials(host) {
      const found = credentials.get(host);
      if (!found) throw new Error(`no broker user for host ${host}`);
      return found;
    },
    port,
    stateDir,
    get pid() {
      return beam?.pid ?? -1;
    },
    stop: stopBeam,
    kill: () => stopBeam('SIGKILL'),
    restart: async () => {
      await stopBeam('SIGTERM');
      await launch();
    },
    dispose,
  };
}
