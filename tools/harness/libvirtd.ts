/**
 * Simulated hypervisor hosts for integration tests: one private libvirtd per host running the
 * built-in test driver, reachable at `test+unix:///default?socket=<dir>/sock/libvirt-sock`.
 *
 * The test driver inside libvirtd resets to its single `test` domain when its last client
 * leaves, so `seedHost` keeps one connection per host open until `stop()`.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openHypervisor } from '../../src/libvirt/native.js';
import type {
  CloseReason,
  DomainInfo,
  Hypervisor,
  LifecycleEvent,
} from '../../src/libvirt/hypervisor.js';
import { DomainState } from '../../src/protocol/constants.js';
import { sleep } from '../../src/util/time.js';

const execFileAsync = promisify(execFile);

/** The domain every fresh test driver starts with. */
export const DEFAULT_TEST_DOMAIN = { name: 'test', uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f' };

export interface VmSpec {
  name: string;
  uuid: string;
  running: boolean;
  /** Started, then suspended (virsh suspend): state PAUSED. */
  paused?: boolean;
  /** `<serial type='unix'><source mode='bind' path=…/>` devices (serial listener). */
  serialPaths?: string[];
  /** `<channel type='unix'><source mode='bind' path=…/>` devices (vmchannel mode). */
  channelPaths?: string[];
}

export interface SimHost {
  readonly name: string;
  readonly uri: string;
  /** Temp directory holding config, sockets, pid and log; removed by stop(). */
  readonly dir: string;
  readonly logFile: string;
  /** pid of the running libvirtd (changes on restart). */
  readonly pid: number;
  /** The connection that keeps the test driver's state, once seeded. */
  readonly keeper: Hypervisor | undefined;
  /** SIGTERM (then SIGKILL) by pid, close the keeper, remove the temp dir. */
  stop(): Promise<void>;
  /** SIGKILL by pid: "libvirt went away". The temp dir stays for restart(). */
  kill(): Promise<void>;
  /** Start libvirtd again on the same socket; its state is fresh (re-seed it). */
  restart(): Promise<void>;
}

const running = new Map<number, ChildProcess>();
const dirs = new Set<string>();

// Safety net: a test that forgot stop() still leaves no process or directory behind.
process.once('exit', () => {
  for (const pid of running.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function writeConfig(dir: string): string {
  const conf = join(dir, 'libvirtd.conf');
  writeFileSync(
    conf,
    [
      `unix_sock_dir = "${join(dir, 'sock')}"`,
      'unix_sock_ro_perms = "0777"',
      'unix_sock_rw_perms = "0700"',
      'unix_sock_admin_perms = "0700"',
      'auth_unix_ro = "none"',
      'auth_unix_rw = "none"',
      `log_outputs = "3:file:${join(dir, 'libvirtd.log')}"`,
      '',
    ].join('\n'),
  );
  return conf;
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

class LibvirtdHost implements SimHost {
  readonly uri: string;
  readonly logFile: string;
  keeper: Hypervisor | undefined;
  private child: ChildProcess | undefined;
  private readonly conf: string;

  constructor(
    readonly name: string,
    readonly dir: string,
  ) {
    mkdirSync(join(dir, 'sock'));
    mkdirSync(join(dir, 'drivers'));
    this.conf = writeConfig(dir);
    this.logFile = join(dir, 'libvirtd.log');
    this.uri = `test+unix:///default?socket=${join(dir, 'sock', 'libvirt-sock')}`;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  async launch(): Promise<void> {
    const out = openSync(join(this.dir, 'libvirtd.out'), 'a');
    const child = spawn('libvirtd', ['-f', this.conf, '-p', join(this.dir, 'libvirtd.pid')], {
      cwd: this.dir,
      env: { ...process.env, LIBVIRT_DRIVER_DIR: join(this.dir, 'drivers'), LC_ALL: 'C' },
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    if (child.pid === undefined)
      throw new Error(`libvirtd for ${this.name} did not start (is libvirt-daemon installed?)`);
    this.child = child;
    running.set(child.pid, child);
    child.once('exit', () => running.delete(child.pid ?? -1));
    await this.waitReady(child);
  }

  /** Ready = a real client connection succeeds. */
  private async waitReady(child: ChildProcess): Promise<void> {
    const until = Date.now() + 10_000;
    let last: unknown;
    while (Date.now() < until) {
      if (child.exitCode !== null) {
        throw new Error(
          `libvirtd for ${this.name} exited with ${child.exitCode}; see ${this.dir}/libvirtd.out`,
        );
      }
      try {
        const probe = await openHypervisor(this.uri, { keepaliveInterval: 0 });
        await probe.close();
        return;
      } catch (cause) {
        last = cause;
        await sleep(50);
      }
    }
    throw new Error(`libvirtd for ${this.name} not ready after 10 s: ${String(last)}`);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined) return;
    process.kill(child.pid, 'SIGKILL');
    await waitForExit(child, 5000);
    this.child = undefined;
  }

  async restart(): Promise<void> {
    await this.dropKeeper();
    await this.terminate();
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.dropKeeper();
    await this.terminate();
    rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }

  async keeperConnection(): Promise<Hypervisor> {
    if (this.keeper && this.keeper.isAlive()) return this.keeper;
    this.keeper = await openHypervisor(this.uri, { keepaliveInterval: 0 });
    return this.keeper;
  }

  private async dropKeeper(): Promise<void> {
    const keeper = this.keeper;
    this.keeper = undefined;
    await keeper?.close().catch(() => undefined);
  }

  private async terminate(): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined) return;
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, 'SIGTERM');
      if (!(await waitForExit(child, 5000))) {
        process.kill(child.pid, 'SIGKILL');
        await waitForExit(child, 5000);
      }
    }
    this.child = undefined;
  }
}

/** Starts a private libvirtd named `name` (letters, digits, dashes) and waits until it answers. */
export async function startLibvirtd(name: string): Promise<SimHost> {
  const safe = name.replace(/[^A-Za-z0-9-]/g, '').slice(0, 16) || 'host';
  const path = mkdtempSync(join(tmpdir(), `vf-lvd-${safe}-`));
  dirs.add(path);
  const host = new LibvirtdHost(name, path);
  try {
    await host.launch();
  } catch (cause) {
    await host.stop();
    throw cause;
  }
  return host;
}

function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/'/g, '&apos;');
}

/** Domain XML for the test driver, with optional unix serial/channel devices. */
export function vmXml(spec: VmSpec): string {
  const serials = (spec.serialPaths ?? []).map(
    (path, i) =>
      `<serial type='unix'><source mode='bind' path='${escapeXml(path)}'/><target port='${i + 1}'/></serial>`,
  );
  const channels = (spec.channelPaths ?? []).map(
    (path) =>
      `<channel type='unix'><source mode='bind' path='${escapeXml(path)}'/>` +
      `<target type='guestfwd' address='10.0.2.179' port='1229'/></channel>`,
  );
  return (
    `<domain type='test'><name>${escapeXml(spec.name)}</name><uuid>${spec.uuid}</uuid>` +
    `<memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>` +
    `<devices>${serials.join('')}${channels.join('')}</devices></domain>`
  );
}

/** Brings a VM to the spec's state on an open connection (define, start, suspend). */
async function placeVm(hv: Hypervisor, spec: VmSpec): Promise<void> {
  await hv.defineXml(vmXml(spec));
  if (spec.running || spec.paused) await hv.create(spec.uuid);
  if (spec.paused) await virsh(hv.uri, 'suspend', spec.uuid);
}

/** Runs virsh against a URI (for the few operations the binding does not cover). */
export async function virsh(uri: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('virsh', ['-q', '-c', uri, ...args], {
    env: { ...process.env, LC_ALL: 'C' },
  });
  return stdout;
}

/**
 * Replaces the host's domains with `vms` (fixed UUIDs) and keeps the connection that holds
 * this state open until the host is stopped. Returns that connection.
 */
export async function seedHost(host: SimHost, vms: readonly VmSpec[]): Promise<Hypervisor> {
  if (!(host instanceof LibvirtdHost)) throw new Error('seedHost needs a host from startLibvirtd');
  const hv = await host.keeperConnection();
  await clearDomains(hv);
  for (const spec of vms) await placeVm(hv, spec);
  return hv;
}

/** Destroys and undefines every domain (the default `test` included). */
export async function clearDomains(hv: Hypervisor): Promise<void> {
  for (const dom of await hv.listDomains()) {
    if (dom.state !== DomainState.SHUTOFF) await hv.destroy(dom.uuid);
    await hv.undefine(dom.uuid).catch(() => undefined); // transient ones vanish on destroy
  }
}

/** Simulated migration: destroy+undefine on `from`, define (same XML and UUID)+create on `to`. */
export async function moveVm(from: SimHost, to: SimHost, uuid: string): Promise<void> {
  const source = from.keeper;
  const target = to.keeper;
  if (!source || !target) throw new Error('moveVm needs both hosts seeded (seedHost)');
  const xml = await source.getXml(uuid, VIR_DOMAIN_XML_INACTIVE);
  const before = await source.lookupByUuid(uuid);
  if (!before) throw new Error(`VM ${uuid} is not on ${from.name}`);
  if (before.state !== DomainState.SHUTOFF) await source.destroy(uuid);
  await source.undefine(uuid);
  await target.defineXml(xml);
  await target.create(uuid);
}

/** virDomainXMLFlags: the persistent definition rather than the live one. */
const VIR_DOMAIN_XML_INACTIVE = 2;

/**
 * An in-memory Hypervisor for what the real test driver cannot be made to do on demand: hold a
 * list open while events arrive, refuse a destroy, keep a destroyed domain running. Unit tests only.
 */
export class ScriptedHypervisor implements Hypervisor {
  readonly uri = 'scripted:///';
  domainsNow = new Map<string, DomainInfo>();
  /** When set, listDomains() waits for this promise (snapshot taken at call time). */
  holdList: Promise<void> | undefined;
  alive = true;
  private lifecycle = new Set<(e: LifecycleEvent) => void>();
  private closers = new Set<(r: CloseReason) => void>();

  set(uuid: string, name: string, state: number): void {
    this.domainsNow.set(uuid, { uuid, name, state, id: state === DomainState.SHUTOFF ? -1 : 1 });
  }
  fire(uuid: string, event: number, detail = 0): void {
    const name = this.domainsNow.get(uuid)?.name ?? 'gone';
    for (const l of [...this.lifecycle]) l({ uuid, name, event, detail });
  }
  loseConnection(): void {
    this.alive = false;
    for (const l of [...this.closers]) l('eof');
  }
  async listDomains(): Promise<DomainInfo[]> {
    const snapshot = [...this.domainsNow.values()].map((d) => ({ ...d }));
    await this.holdList;
    return snapshot;
  }
  async lookupByName(name: string): Promise<DomainInfo | undefined> {
    return [...this.domainsNow.values()].find((d) => d.name === name);
  }
  async lookupByUuid(uuid: string): Promise<DomainInfo | undefined> {
    const d = this.domainsNow.get(uuid.toLowerCase());
    return d && { ...d };
  }
  /** Set to make an operation reject, or to replace what destroy does. */
  failDestroy: Error | undefined;
  failCreate: Error | undefined;
  destroyLeavesRunning = false;
  async destroy(uuid: string): Promise<void> {
    if (this.failDestroy) throw this.failDestroy;
    const d = this.domainsNow.get(uuid.toLowerCase());
    if (d && !this.destroyLeavesRunning) this.set(d.uuid, d.name, DomainState.SHUTOFF);
  }
  async create(uuid: string): Promise<void> {
    if (this.failCreate) throw this.failCreate;
    const d = this.domainsNow.get(uuid.toLowerCase());
    if (d) this.set(d.uuid, d.name, DomainState.RUNNING);
  }
  async createXml(): Promise<DomainInfo> {
    throw this.failCreate ?? new Error('createXml is not scripted');
  }
  async defineXml(): Promise<DomainInfo> {
    throw new Error('not scripted');
  }
  async undefine(): Promise<void> {}
  async getXml(): Promise<string> {
    return '';
  }
  onLifecycle(listener: (event: LifecycleEvent) => void): () => void {
    this.lifecycle.add(listener);
    return () => this.lifecycle.delete(listener);
  }
  onClose(listener: (reason: CloseReason) => void): () => void {
    this.closers.add(listener);
    return () => this.closers.delete(listener);
  }
  isAlive(): boolean {
    return this.alive;
  }
  async close(): Promise<void> {
    this.alive = false;
  }
}
