/**
 * A simulated multi-host cluster for the broker-routed backend: one private broker (RabbitMQ
 * by default, or any of brokers.ts), N
 * simulated hypervisor hosts (a private libvirtd each, seeded with VMs of fixed UUIDs), and
 * OUR fence_virtd as a separate process per host (`backend = "amqp"`, `listener = "multicast"`
 * on a distinct port per host), driven by the real /usr/sbin/fence_xvm.
 *
 * Everything is stopped by pid and every temp dir removed by dispose().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  C_XVM,
  OUR_DAEMON,
  forEachOutputLine,
  runAgent,
  tempDir,
  type AgentResult,
  type LogEntry,
  type TempDir,
} from './processes.js';
import {
  BROKER_PROFILE,
  startBroker,
  type BrokerHandle,
  type BrokerKind,
  type BrokerUser,
} from './brokers.js';
import { OPERATOR, type BrokerCredentials } from './rabbitmq.js';
import { seedHost, startLibvirtd, type SimHost, type VmSpec } from './libvirtd.js';
import { LifecycleEventType, type Hypervisor } from '../libvirt/hypervisor.js';
import { ClusterBus, type BusDelivery } from '../amqp/bus.js';
import { resolveProfile, type ProfileName } from '../amqp/profiles.js';
import { sleep } from '../util/time.js';

export const XVM_KEY = Buffer.from('multihost-xvm-key-0123456789');
export const CLUSTER_KEY = Buffer.from('multihost-cluster-key-abcdefghijkl');
export const CLUSTER_NAME = 'itest';

export interface HostSpec {
  id: string;
  vms: VmSpec[];
}

/** The broker user of the cluster on the JVM brokers (RabbitMQ: the bundled virtfence user). */
export const CLUSTER_USER: BrokerUser = {
  user: 'itest-hosts',
  password: 'itest-secret',
  cluster: CLUSTER_NAME,
};

export interface ClusterOptions {
  /** AMQP port (5720-5739); RabbitMQ's dist port is derived (25720+). */
  amqpPort: number;
  /** RabbitMQ's epmd port. */
  epmdPort: number;
  /** Which broker (default rabbitmq). */
  broker?: BrokerKind;
  /** Use this running broker instead of starting one (dispose() leaves it running). */
  sharedBroker?: BrokerHandle;
  /** First multicast port; host i listens on basePort + i (12550-12599). */
  basePort: number;
  hosts: HostSpec[];
  heartbeatMs?: number;
  deadAfterMs?: number;
  multicastGroup?: string;
  /** Broker URL the daemons use (default amqp://127.0.0.1:<amqpPort>). */
  daemonBrokerUrl?: string;
  /** Further broker URLs (url1, url2, …): the failover list after daemonBrokerUrl. */
  failoverUrls?: string[];
  /** Run host i's daemon under this command prefix (e.g. ["ip","netns","exec","ns1"]). */
  prefixFor?: (index: number) => string[];
  /** Multicast port for host i (default basePort + i). */
  portFor?: (index: number) => number;
  /** Listeners besides multicast for host i, given its libvirt URI (e.g. a serial listener). */
  extraListenersFor?: (index: number, uri: string) => ExtraListeners | undefined;
  /** More `key = "value";` lines for host i's fence_virtd block (e.g. metrics_port). */
  daemonKeysFor?: (index: number) => string;
  /** More environment for host i's daemon (e.g. NOTIFY_SOCKET). */
  envFor?: (index: number) => NodeJS.ProcessEnv;
  /**
   * Starts host i's hypervisor and returns it with a connection the harness keeps (destroy
   * counting). Default: a private libvirtd on the test driver seeded with `spec.vms`.
   */
  startHost?: (spec: HostSpec, index: number) => Promise<{ sim: SimHost; hv: Hypervisor }>;
}

export interface ExtraListeners {
  /** Listener names added to `listener = "multicast,…"`. */
  names: string[];
  /** Their blocks, placed inside `listeners { … }`. */
  blocks: string;
}

/** Our daemon as a child process, with its JSON log lines parsed. */
export class DaemonProcess {
  readonly logs: LogEntry[] = [];
  private text = '';
  private wakers: Array<() => void> = [];
  private readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    forEachOutputLine(child, (line) => this.onLine(line));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    child.on('exit', () => this.wake());
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  output(): string {
    return this.text;
  }

  private onLine(line: string): void {
    this.text += line + '\n';
    if (line.startsWith('{')) {
      try {
        this.logs.push(JSON.parse(line) as LogEntry);
      } catch {
        /* not JSON */
      }
    }
    this.wake();
  }

  private wake(): void {
    const w = this.wakers;
    this.wakers = [];
    w.forEach((f) => f());
  }

  async waitForLog(match: (e: LogEntry) => boolean, timeoutMs = 15_000): Promise<LogEntry> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find(match);
      if (found) return found;
      if (!this.running) throw new Error(`daemon exited (${this.child.exitCode})\n${this.text}`);
      const left = until - Date.now();
      if (left <= 0)
        throw new Error(`timed out waiting for a log entry\n${this.text.slice(-4000)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wakers.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return;
    process.kill(this.pid, signal);
    const t = setTimeout(() => {
      if (this.running) process.kill(this.pid, 'SIGKILL');
    }, 5000);
    await this.exited;
    clearTimeout(t);
  }
}

export interface ClusterHost {
  id: string;
  index: number;
  port: number;
  sim: SimHost;
  configFile: string;
  daemon: DaemonProcess | undefined;
}

export function daemonConfig(o: {
  port: number;
  group: string;
  xvmKeyFile: string;
  clusterKeyFile: string;
  brokerUrl: string;
  hostId: string;
  uri: string;
  heartbeatMs: number;
  deadAfterMs: number;
  extra?: ExtraListeners;
  profile?: ProfileName;
  daemonKeys?: string;
  /** The host's own least-privilege broker user. */
  username?: string;
  passwordFile?: string;
  failoverUrls?: string[];
}): string {
  const failover = (o.failoverUrls ?? []).map((u, i) => `\t\turl${i + 1} = "${u}";\n`).join('');
  const login =
    o.username !== undefined && o.passwordFile !== undefined
      ? `\t\tusername = "${o.username}";\n\t\tpassword_file = "${o.passwordFile}";\n`
      : '';
  const listeners = ['multicast', ...(o.extra?.names ?? [])].join(',');
  return `fence_virtd {
	listener = "${listeners}";
	backend = "amqp";
${o.daemonKeys ?? ''}
}
listeners {
	multicast {
		key_file = "${o.xvmKeyFile}";
		address = "${o.group}";
		family = "ipv4";
		port = "${o.port}";
		hash = "sha256";
		auth = "sha256";
	}
${o.extra?.blocks ?? ''}
}
backends {
	amqp {
		url = "${o.brokerUrl}";
${failover}${login}		cluster = "${CLUSTER_NAME}";
		host_id = "${o.hostId}";
		key_file = "${o.clusterKeyFile}";
		heartbeat_interval = "${o.heartbeatMs}";
		dead_after = "${o.deadAfterMs}";
		max_reconnect_delay = "500";
		profile = "${o.profile ?? 'rabbitmq3'}";
		uri = "${o.uri}";
	}
}
`;
}

export class SimCluster {
  broker!: BrokerHandle;
  readonly hosts: ClusterHost[] = [];
  readonly dir: TempDir;
  readonly xvmKeyFile: string;
  readonly clusterKeyFile: string;
  private readonly buses: ClusterBus[] = [];
  private readonly destroyCounts = new Map<string, number>();
  private readonly unsubs: Array<() => void> = [];

  constructor(readonly options: ClusterOptions) {
    this.dir = tempDir('vf-cluster-');
    this.xvmKeyFile = this.dir.file('fence_xvm.key', XVM_KEY);
    this.clusterKeyFile = this.dir.file('cluster.key', CLUSTER_KEY);
  }

  /** The broker's URL; daemons log in as themselves (username, password_file). */
  get brokerUrl(): string {
    return this.options.sharedBroker?.url ?? `amqp://127.0.0.1:${this.options.amqpPort}`;
  }

  get brokerKind(): BrokerKind {
    return this.options.sharedBroker?.kind ?? this.options.broker ?? 'rabbitmq';
  }

  get profile(): ProfileName {
    return BROKER_PROFILE[this.brokerKind];
  }

  /** The broker user of the JVM brokers' hosts and the tests' member buses there. */
  get user(): BrokerUser {
    return CLUSTER_USER;
  }

  /**
   * The broker login of a host's daemon: on RabbitMQ the host's own least-privilege user (or
   * the operator on a shared broker started without host users), on the JVM brokers the
   * cluster's user.
   */
  loginFor(id: string): BrokerCredentials {
    if (this.brokerKind !== 'rabbitmq')
      return { username: CLUSTER_USER.user, password: CLUSTER_USER.password };
    try {
      return this.broker.hostCredentials?.(id) ?? { ...OPERATOR };
    } catch {
      return { ...OPERATOR };
    }
  }

  /** The operator account's URL (the tests' own member buses). */
  get operatorUrl(): string {
    return `amqp://${OPERATOR.username}:${OPERATOR.password}@127.0.0.1:${this.options.amqpPort}`;
  }

  /** A host's configuration with the operator's broker login instead of the host's (CLI runs). */
  operatorConfig(id: string): string {
    const file = this.dir.file(`${id}.operator.password`, OPERATOR.password);
    return fs
      .readFileSync(this.host(id).configFile, 'utf8')
      .replace(/username = "[^"]*";/, `username = "${OPERATOR.username}";`)
      .replace(/password_file = "[^"]*";/, `password_file = "${file}";`);
  }

  host(id: string): ClusterHost {
    const h = this.hosts.find((x) => x.id === id);
    if (!h) throw new Error(`no host ${id}`);
    return h;
  }

  keeper(id: string): Hypervisor {
    const k = this.host(id).sim.keeper;
    if (!k) throw new Error(`host ${id} not seeded`);
    return k;
  }

  /** Starts broker, libvirtds (seeded) and every daemon; waits until each knows every VM. */
  async start(): Promise<void> {
    const o = this.options;
    this.broker =
      o.sharedBroker ??
      (await startBroker(this.brokerKind, {
        port: o.amqpPort,
        distPort: o.amqpPort + 20000,
        epmdPort: o.epmdPort,
        users: [CLUSTER_USER],
        hostUsers: { cluster: CLUSTER_NAME, hosts: o.hosts.map((h) => h.id) },
      }));
    for (const [index, spec] of o.hosts.entries()) {
      const login = this.loginFor(spec.id);
      const { sim, hv } = o.startHost
        ? await o.startHost(spec, index)
        : await startTestDriverHost(spec);
      this.watchDestroys(spec.id, hv);
      const port = o.portFor ? o.portFor(index) : o.basePort + index;
      const configFile = this.dir.file(
        `${spec.id}.conf`,
        daemonConfig({
          port,
          group: o.multicastGroup ?? '225.0.0.12',
          xvmKeyFile: this.xvmKeyFile,
          clusterKeyFile: this.clusterKeyFile,
          brokerUrl: o.daemonBrokerUrl ?? this.brokerUrl,
          hostId: spec.id,
          uri: sim.uri,
          heartbeatMs: o.heartbeatMs ?? 200,
          deadAfterMs: o.deadAfterMs ?? 1500,
          extra: o.extraListenersFor?.(index, sim.uri),
          profile: this.profile,
          ...(o.failoverUrls ? { failoverUrls: o.failoverUrls } : {}),
          daemonKeys: o.daemonKeysFor?.(index),
          username: login.username,
          passwordFile: this.dir.file(`${spec.id}.amqp.password`, login.password),
        }),
      );
      this.hosts.push({ id: spec.id, index, port, sim, configFile, daemon: undefined });
    }
    for (const h of this.hosts) await this.startDaemon(h.id, false);
    for (const h of this.hosts) await this.waitSynced(h.id);
  }

  /** Until `id`'s daemon has every other running daemon's inventory and its settle time passed. */
  async waitSynced(id: string, timeoutMs = 20_000): Promise<void> {
    const d = this.host(id).daemon;
    if (!d) throw new Error(`no daemon for ${id}`);
    for (const other of this.hosts) {
      if (other.id === id || !other.daemon?.running) continue;
      await d.waitForLog((e) => e.event === 'peer-inventory' && e.peer === other.id, timeoutMs);
    }
    await d.waitForLog((e) => e.event === 'synced', timeoutMs);
  }

  async startDaemon(id: string, sync = true): Promise<DaemonProcess> {
    const h = this.host(id);
    const prefix = this.options.prefixFor?.(h.index) ?? [];
    const argv = [
      ...prefix,
      OUR_DAEMON,
      '-F',
      '-f',
      h.configFile,
      '-p',
      path.join(this.dir.path, `${id}.pid`),
    ];
    const child = spawn(argv[0] as string, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, VIRTFENCE_LOG_FORMAT: 'json', ...this.options.envFor?.(h.index) },
    });
    const d = new DaemonProcess(child);
    h.daemon = d;
    await d.waitForLog((e) => e.event === 'started', 20_000);
    if (sync) await this.waitSynced(id);
    return d;
  }

  /** Waits until fence_xvm -o list through `viaHost` shows every name in `names`. */
  async waitListed(viaHost: string, names: string[], timeoutMs = 20_000): Promise<string> {
    const until = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < until) {
      const r = await this.xvm(viaHost, ['-o', 'list'], { timeout: 5 });
      last = r.stdout;
      const listed = new Set(last.split('\n').map((l) => l.split(/\s+/)[0]));
      if (r.code === 0 && names.every((n) => listed.has(n))) return last;
      await sleep(200);
    }
    throw new Error(`${names.join(',')} not all listed via ${viaHost}; last list:\n${last}`);
  }

  /** fence_xvm aimed at one host's daemon (its multicast port). */
  xvm(
    viaHost: string,
    args: string[],
    opts: { timeout?: number; prefix?: string[] } = {},
  ): Promise<AgentResult> {
    const h = this.host(viaHost);
    const argv = [
      '-p',
      String(h.port),
      '-k',
      this.xvmKeyFile,
      '-t',
      String(opts.timeout ?? 10),
      '-r',
      '10',
      ...args,
    ];
    if (opts.prefix && opts.prefix.length > 0) {
      return runAgent(opts.prefix[0] as string, [...opts.prefix.slice(1), C_XVM, ...argv]);
    }
    return runAgent(C_XVM, argv);
  }

  /** Destroy events (Stopped/Destroyed) seen on a host for a VM since start. */
  destroys(hostId: string, uuid: string): number {
    return this.destroyCounts.get(`${hostId}/${uuid.toLowerCase()}`) ?? 0;
  }

  private watchDestroys(hostId: string, hv: Hypervisor): void {
    this.unsubs.push(
      hv.onLifecycle((e) => {
        if (e.event === LifecycleEventType.STOPPED && e.detail === 1) {
          const key = `${hostId}/${e.uuid.toLowerCase()}`;
          this.destroyCounts.set(key, (this.destroyCounts.get(key) ?? 0) + 1);
        }
      }),
    );
  }

  /** A cluster member owned by the test (publishes evidence, sends raw messages). */
  async memberBus(hostId: string, key: Buffer = CLUSTER_KEY): Promise<ClusterBus> {
    const bus = new ClusterBus({
      urls: [this.operatorUrl],
      hostId,
      cluster: CLUSTER_NAME,
      key,
      profile: resolveProfile(this.profile),
      ...(this.brokerKind === 'rabbitmq'
        ? {}
        : { username: this.user.user, password: this.user.password }),
      maxReconnectDelayMs: 500,
    });
    this.buses.push(bus);
    await bus.start({ timeoutMs: 20_000 });
    return bus;
  }

  /** Collects verified messages a member bus receives. */
  static collect(bus: ClusterBus): BusDelivery[] {
    const seen: BusDelivery[] = [];
    bus.onMessage((d) => seen.push(d));
    return seen;
  }

  async dispose(): Promise<void> {
    for (const u of this.unsubs.splice(0)) u();
    for (const b of this.buses.splice(0)) await b.stop().catch(() => undefined);
    for (const h of this.hosts) await h.daemon?.stop('SIGKILL').catch(() => undefined);
    for (const h of this.hosts) await h.sim.stop().catch(() => undefined);
    if (!this.options.sharedBroker) await this.broker?.dispose().catch(() => undefined);
    this.dir.remove();
  }
}

async function startTestDriverHost(spec: HostSpec): Promise<{ sim: SimHost; hv: Hypervisor }> {
  const sim = await startLibvirtd(spec.id);
  return { sim, hv: await seedHost(sim, spec.vms) };
}

export function fileExists(p: string): boolean {
  return fs.existsSync(p);
}
export { sleep };
