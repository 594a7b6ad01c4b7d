/**
 * Simulated hypervisor hosts for integration tests: one private libvirtd per host running the
 * built-in test driver, reachable at `test+unix:///default?socket=<dir>/sock/libvirt-sock`.
 *
 * The test driver inside libvirtd resets to its single `test` domain when its last client
 * leaves, so `seedHost` keeps one connection per host open until `stop()`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type {
  CloseReason,
  DomainInfo,
  Hypervisor,
  LifecycleEvent,
} from '../../src/libvirt/hypervisor.js';
import { DomainState } from '../../src/protocol/constants.js';
import { PrivateLibvirtd } from './private-libvirtd.js';

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

class LibvirtdHost extends PrivateLibvirtd implements SimHost {
  protected readonly label = 'libvirtd';
  private readonly conf: string;

  constructor(name: string, dir: string) {
    super(name, dir, `test+unix:///default?socket=${join(dir, 'sock', 'libvirt-sock')}`, {
      readyMs: 10_000,
      stopGraceMs: 5000,
    });
    mkdirSync(join(dir, 'sock'));
    mkdirSync(join(dir, 'drivers'));
    this.conf = writeConfig(dir);
  }

  protected command(): string[] {
    return ['libvirtd', '-f', this.conf, '-p', join(this.dir, 'libvirtd.pid')];
  }

  async stop(): Promise<void> {
    await this.dropKeeper();
    await this.terminate();
    this.removeDir();
  }
}

/** Starts a private libvirtd named `name` (letters, digits, dashes) and waits until it answers. */
export async function startLibvirtd(name: string): Promise<SimHost> {
  const safe = name.replace(/[^A-Za-z0-9-]/g, '').slice(0, 16) || 'host';
  const path = mkdtempSync(join(tmpdir(), `vf-lvd-${safe}-`));
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
  const hv = await host.connection();
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
