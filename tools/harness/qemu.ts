/**
 * Simulated hypervisor hosts running REAL guests: one private privileged libvirtd per host with
 * libvirt's QEMU driver (software emulation, domain type 'qemu'), each in a mount namespace of its
 * own so that several hosts on one machine do not collide on libvirt's fixed state paths:
 *
 *   <dir>/run  over /run/libvirt      <dir>/var  over /var (lib/, cache/, log/ for libvirt)
 *   <dir>/etc  over /etc/libvirt      <dir>/passwd, <dir>/group over /etc/passwd, /etc/group
 *                                     (with the libvirt-qemu user the QEMU driver insists on)
 *
 * optionally inside a network namespace (`netns`). Guests boot Debian's cloud kernel with the
 * initramfs of scripts/guest-image.sh: busybox, the real C fence_virt / fence_xvm, and a command
 * loop on the console (ttyS0), which QEMU exposes as a unix socket and logs to a file. Tests
 * type commands through the socket and read the answers from the console log.
 *
 * Every QEMU process and libvirtd is stopped by pid; temp dirs are removed by stop().
 */
import { execFile } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DomainState } from '../../src/protocol/constants.js';
import { ROOT } from './processes.js';
import type { SimHost } from './libvirtd.js';
import { killPid, PrivateLibvirtd } from './private-libvirtd.js';
import { sleep } from '../../src/util/time.js';

const execFileAsync = promisify(execFile);

export const GUEST_IMAGE_DIR = join(ROOT, '.state/qemu-guest');
/** The same guest plus Node.js and our compiled agent (`scripts/guest-image.sh --with-node`). */
export const NODE_GUEST_IMAGE_DIR = join(ROOT, '.state/qemu-guest-node');
const QEMU_BINARY = '/usr/bin/qemu-system-x86_64';
const QEMU_DRIVER = '/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so';

export interface GuestImage {
  kernel: string;
  initrd: string;
}

/**
 * The kernel and initramfs scripts/guest-image.sh built (scripts/setup.sh runs it); `withNode`:
 * the image that also carries Node.js and our agent (/opt/virtfence/bin/fence_virt).
 */
export function guestImage(withNode = false): GuestImage {
  const dir = withNode ? NODE_GUEST_IMAGE_DIR : GUEST_IMAGE_DIR;
  const kernel = join(dir, 'vmlinuz');
  const initrd = join(dir, 'initramfs.lz4');
  if (!existsSync(kernel) || !existsSync(initrd)) {
    throw new Error(
      `no QEMU test guest in ${dir}: run scripts/setup.sh (or scripts/guest-image.sh${withNode ? ' --with-node' : ''})`,
    );
  }
  return { kernel, initrd };
}

/** Why real QEMU guests cannot run here, or undefined when they can. */
export function qemuUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'QEMU hosts need root (a privileged libvirtd per host)';
  if (!existsSync(QEMU_BINARY)) return `${QEMU_BINARY} missing (apt-get install qemu-system-x86)`;
  if (!existsSync(QEMU_DRIVER))
    return `libvirt's QEMU driver missing (apt-get install libvirt-daemon-driver-qemu)`;
  return undefined;
}

export interface QemuHostOptions {
  /** Run libvirtd (and so its guests) in this network namespace (`ip netns add` made it). */
  netns?: string;
  /** Also listen on TCP (no auth) at this address, for migration between hosts. */
  listenTcp?: { address: string; port: number };
  /** Extra qemu.conf lines (e.g. migration_address). */
  qemuConf?: string[];
}

/** QEMU processes outlive libvirtd: find them by the pid files libvirt writes. */
function qemuPids(dir: string): number[] {
  const runDir = join(dir, 'run', 'qemu');
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number.parseInt(readFileSync(join(runDir, f), 'utf8').trim(), 10))
    .filter((pid) => Number.isInteger(pid) && pid > 1);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const LIBVIRT_QEMU_USER =
  'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin';
const LIBVIRT_QEMU_GROUP = 'libvirt-qemu:x:64055:';

export class QemuHost extends PrivateLibvirtd implements SimHost {
  protected readonly label = 'libvirtd (QEMU)';

  constructor(
    name: string,
    dir: string,
    readonly options: QemuHostOptions,
  ) {
    super(name, dir, `qemu+unix:///system?socket=${join(dir, 'sock', 'libvirt-sock')}`, {
      readyMs: 20_000,
      stopGraceMs: 10_000,
    });
    this.prepare();
  }

  /** Directory for guest sockets and console logs, outside the bind mounts (seen by everyone). */
  get guestDir(): string {
    return join(this.dir, 'guests');
  }

  private prepare(): void {
    const d = this.dir;
    for (const sub of [
      'sock',
      'run',
      'etc',
      'drivers',
      'guests',
      'var/lib/libvirt/qemu',
      'var/cache/libvirt/qemu',
      'var/log/libvirt/qemu',
      'var/tmp',
    ]) {
      mkdirSync(join(d, sub), { recursive: true });
    }
    symlinkSync('/run', join(d, 'var', 'run'));
    symlinkSync('/run/lock', join(d, 'var', 'lock'));
    // Only the QEMU driver is loaded (no network, storage or nodedev drivers).
    symlinkSync(QEMU_DRIVER, join(d, 'drivers', 'libvirt_driver_qemu.so'));
    const tcp = this.options.listenTcp;
    writeFileSync(
      join(d, 'etc', 'libvirtd.conf'),
      [
        `unix_sock_dir = "${join(d, 'sock')}"`,
        'unix_sock_ro_perms = "0777"',
        'unix_sock_rw_perms = "0700"',
        'unix_sock_admin_perms = "0700"',
        'auth_unix_ro = "none"',
        'auth_unix_rw = "none"',
        ...(tcp
          ? [
              'listen_tls = 0',
              'listen_tcp = 1',
              `listen_addr = "${tcp.address}"`,
              `tcp_port = "${tcp.port}"`,
              'auth_tcp = "none"',
            ]
          : []),
        `log_outputs = "3:file:${this.logFile}"`,
        // Hosts of one machine would share the SMBIOS UUID, and libvirt refuses to migrate a
        // guest to "the same host".
        `host_uuid = "${randomUUID()}"`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(d, 'etc', 'qemu.conf'),
      [
        'stdio_handler = "file"',
        'security_driver = "none"',
        'user = "root"',
        'group = "root"',
        'namespaces = [ ]',
        ...(this.options.qemuConf ?? []),
        '',
      ].join('\n'),
    );
    copyFileSync('/etc/passwd', join(d, 'passwd'));
    copyFileSync('/etc/group', join(d, 'group'));
    if (!/^libvirt-qemu:/m.test(readFileSync(join(d, 'passwd'), 'utf8')))
      writeFileSync(join(d, 'passwd'), LIBVIRT_QEMU_USER + '\n', { flag: 'a' });
    if (!/^libvirt-qemu:/m.test(readFileSync(join(d, 'group'), 'utf8')))
      writeFileSync(join(d, 'group'), LIBVIRT_QEMU_GROUP + '\n', { flag: 'a' });
  }

  /** The command that runs libvirtd in its own mount namespace (and the host's netns). */
  protected command(): string[] {
    const d = this.dir;
    const script = [
      `mount --bind '${d}/run' /run/libvirt`,
      `mount --bind '${d}/var' /var`,
      `mount --bind '${d}/etc' /etc/libvirt`,
      `mount --bind '${d}/passwd' /etc/passwd`,
      `mount --bind '${d}/group' /etc/group`,
      `exec libvirtd -f /etc/libvirt/libvirtd.conf -p '${d}/libvirtd.pid'${this.options.listenTcp ? ' --listen' : ''}`,
    ].join(' && ');
    const inner = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', script];
    return this.options.netns
      ? ['nsenter', `--net=/run/netns/${this.options.netns}`, ...inner]
      : inner;
  }

  /** Destroys every guest, stops libvirtd, kills any QEMU left, removes the directory. */
  async stop(): Promise<void> {
    if (this.launched) {
      try {
        const hv = await this.connection();
        for (const dom of await hv.listDomains()) {
          if (dom.state !== DomainState.SHUTOFF) await hv.destroy(dom.uuid).catch(() => undefined);
        }
      } catch {
        /* libvirtd gone: the pid files below still name the guests */
      }
    }
    await this.dropKeeper();
    await this.terminate();
    const left = qemuPids(this.dir).filter(alive);
    left.forEach(killPid);
    for (const pid of left) {
      for (let i = 0; i < 50 && alive(pid); i++) await sleep(20);
    }
    this.removeDir();
  }

  /** QEMU processes outlive libvirtd: their pid files name them. */
  override cleanUpAtExit(): void {
    qemuPids(this.dir).forEach(killPid);
    super.cleanUpAtExit();
  }

  /** pid of the QEMU process running guest `name`, or undefined when none runs. */
  qemuPid(name: string): number | undefined {
    try {
      const pid = Number.parseInt(
        readFileSync(join(this.dir, 'run', 'qemu', `${name}.pid`), 'utf8').trim(),
        10,
      );
      return Number.isInteger(pid) && alive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** virsh against this host. */
  async virsh(...args: string[]): Promise<string> {
    const { stdout } = await execFileAsync('virsh', ['-q', '-c', this.uri, ...args], {
      env: { ...process.env, LC_ALL: 'C' },
    });
    return stdout;
  }
}

/** Starts a private libvirtd with the QEMU driver for one simulated host. */
export async function startQemuHost(
  name: string,
  options: QemuHostOptions = {},
): Promise<QemuHost> {
  const reason = qemuUnavailable();
  if (reason) throw new Error(reason);
  const safe = name.replace(/[^A-Za-z0-9-]/g, '').slice(0, 16) || 'host';
  const path = mkdtempSync(join(tmpdir(), `vf-qemu-${safe}-`));
  const host = new QemuHost(name, path, options);
  try {
    await host.launch();
  } catch (cause) {
    await host.stop();
    throw cause;
  }
  return host;
}

export interface GuestSpec {
  name: string;
  uuid: string;
  memoryMiB?: number;
  /** `<serial type='unix'>` on port 1 (the guest's /dev/ttyS1), for fence_virt -D. */
  serialSocket?: string;
  /** A virtio-serial `<channel type='unix'>` (the guest's /dev/vport0p1). */
  channelSocket?: string;
  /** A virtio NIC on a bridge of the host's network namespace, with this address (CIDR). */
  nic?: { bridge: string; mac: string; ip: string };
  /** ACPI, so that `poweroff` inside the guest ends QEMU (boots slower under emulation). */
  acpi?: boolean;
  /** Boot the image with Node.js and our agent (larger, slower to boot; give it 384 MiB). */
  withNode?: boolean;
}

function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/'/g, '&apos;');
}

/** The virtio-serial port name the guest's relay opens (the guest sees /dev/vport0p1). */
export const FENCE_CHANNEL_NAME = 'org.clusterlabs.fence_virt.0';

/** Domain XML of a test guest; its console socket and log live in `consoleDir`. */
export function guestXml(spec: GuestSpec, consoleDir: string, image: GuestImage): string {
  const cmdline = [
    'console=ttyS0',
    'quiet',
    'panic=-1',
    `vf.name=${spec.name}`,
    ...(spec.nic ? [`vf.ip=${spec.nic.ip}`] : []),
  ].join(' ');
  const devices = [
    `<emulator>${QEMU_BINARY}</emulator>`,
    `<serial type='unix'><source mode='bind' path='${escapeXml(join(consoleDir, `${spec.name}.console`))}'/>` +
      `<log file='${escapeXml(join(consoleDir, `${spec.name}.log`))}' append='on'/><target port='0'/></serial>`,
    ...(spec.serialSocket
      ? [
          `<serial type='unix'><source mode='bind' path='${escapeXml(spec.serialSocket)}'/><target port='1'/></serial>`,
        ]
      : []),
    ...(spec.channelSocket
      ? [
          `<channel type='unix'><source mode='bind' path='${escapeXml(spec.channelSocket)}'/>` +
            `<target type='virtio' name='${FENCE_CHANNEL_NAME}'/></channel>`,
        ]
      : []),
    ...(spec.nic
      ? [
          `<interface type='bridge'><source bridge='${escapeXml(spec.nic.bridge)}'/>` +
            `<mac address='${spec.nic.mac}'/><model type='virtio'/></interface>`,
        ]
      : []),
    `<controller type='usb' model='none'/>`,
    `<memballoon model='none'/>`,
  ];
  return (
    `<domain type='qemu'><name>${escapeXml(spec.name)}</name><uuid>${spec.uuid}</uuid>` +
    `<memory unit='MiB'>${spec.memoryMiB ?? 128}</memory><vcpu>1</vcpu>` +
    `<os><type arch='x86_64' machine='pc'>hvm</type><kernel>${escapeXml(image.kernel)}</kernel>` +
    `<initrd>${escapeXml(image.initrd)}</initrd><cmdline>${escapeXml(cmdline)}</cmdline></os>` +
    (spec.acpi ? `<features><acpi/></features>` : '') +
    `<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>` +
    `<devices>${devices.join('')}</devices></domain>`
  );
}

export interface ConsoleResult {
  /** Exit status of the command in the guest, read from the console log. */
  code: number;
  /** What the command printed (the echoed command line removed, \r stripped). */
  output: string;
}

/** Marks the line the guest's /init prints once its command loop reads the console. */
export const GUEST_READY = 'vfguest: ready';

/** A guest defined on a QEMU host; driven and observed through its console. */
export class QemuGuest {
  readonly consoleSocket: string;
  readonly consoleLog: string;
  private seq = 0;
  private bootOffset = 0;

  constructor(
    readonly host: QemuHost,
    readonly spec: GuestSpec,
  ) {
    this.consoleSocket = join(host.guestDir, `${spec.name}.console`);
    this.consoleLog = join(host.guestDir, `${spec.name}.log`);
  }

  get name(): string {
    return this.spec.name;
  }

  get uuid(): string {
    return this.spec.uuid;
  }

  /** Defines the domain (persistent, so `on` can start it again). */
  async define(): Promise<void> {
    const hv = await this.host.connection();
    await hv.defineXml(guestXml(this.spec, this.host.guestDir, guestImage(this.spec.withNode)));
  }

  /** Starts the defined domain and waits until its command loop runs. */
  async start(): Promise<void> {
    this.markBoot();
    const hv = await this.host.connection();
    await hv.create(this.uuid);
    await this.waitReady();
  }

  /** Remembers where the console log ends: waitReady() looks for a boot after this point. */
  markBoot(): void {
    this.bootOffset = this.logText().length;
  }

  logText(): string {
    try {
      return readFileSync(this.consoleLog, 'utf8').replace(/\r/g, '');
    } catch {
      return '';
    }
  }

  /** Console text since the last markBoot(). */
  sinceBoot(): string {
    return this.logText().slice(this.bootOffset);
  }

  async waitReady(timeoutMs = 60_000): Promise<number> {
    const started = Date.now();
    const until = started + timeoutMs;
    while (Date.now() < until) {
      if (this.sinceBoot().includes(GUEST_READY)) return Date.now() - started;
      await sleep(50);
    }
    throw new Error(
      `guest ${this.name} did not reach its command loop in ${timeoutMs} ms; console:\n${this.sinceBoot().slice(-2000)}`,
    );
  }

  /**
   * Types `command` on the guest's console and waits for its exit status, which the guest
   * prints as a marker line; both are read back from the console log file.
   */
  async run(command: string, timeoutMs = 60_000): Promise<ConsoleResult> {
    const id = `${process.pid}-${++this.seq}`;
    const marker = new RegExp(`@@vf-${id} rc=(\\d+)\\n`);
    const from = this.logText().length;
    const socket = connect({ path: this.consoleSocket });
    socket.on('error', () => undefined);
    socket.resume();
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    try {
      socket.write(`${command}; echo "@@vf-${id} rc=$?"\n`);
      const until = Date.now() + timeoutMs;
      for (;;) {
        const text = this.logText().slice(from);
        const match = marker.exec(text);
        if (match) {
          const body = text.slice(0, match.index);
          const newline = body.indexOf('\n');
          return {
            code: Number(match[1]),
            output: newline >= 0 ? body.slice(newline + 1) : '',
          };
        }
        if (Date.now() > until) {
          throw new Error(
            `guest ${this.name}: no exit status for \`${command}\` within ${timeoutMs} ms; console:\n${text.slice(-2000)}`,
          );
        }
        await sleep(50);
      }
    } finally {
      socket.destroy();
    }
  }
}
