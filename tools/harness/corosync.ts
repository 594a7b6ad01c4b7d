/**
 * Real corosync clusters for tests and benchmarks: N hosts, each a network namespace with a
 * veth on one bridge, knet over UDP between them, and a mount + UTS namespace of its own
 * (private /dev/shm tmpfs, /run, /var/lib/corosync and /etc/corosync bind-mounted from a temp
 * directory; host name = host id), so several corosync instances run side by side on one
 * machine. A guest namespace on the same bridge runs agents.
 *
 * Every process of a host runs through `nsenter` into a holder process that owns that host's
 * namespaces. Needs root; meant to run inside scripts/isolated.sh (the bridge and the
 * namespaces then disappear with the run's own network namespace).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sleep } from '../../src/util/time.js';
import { ip, tryIp } from './netns.js';

const execFileAsync = promisify(execFile);

export interface CorosyncClusterOptions {
  /** Interface and namespace prefix, at most 6 characters (Linux names stop at 15). */
  prefix: string;
  /** First three octets of the bridge subnet, e.g. `10.233.0` (a private test range). */
  subnet: string;
  hosts: number;
  /** Corosync token timeout (ms): how fast a vanished node leaves the membership. */
  tokenMs?: number;
}

export interface CorosyncHost {
  readonly id: string;
  readonly nodeid: number;
  readonly address: string;
  readonly netns: string;
  readonly dir: string;
  /** Holder process whose namespaces the host's programs enter. */
  holderPid: number;
  corosync: ChildProcess | undefined;
}

const tracked = new Set<number>();
process.once('exit', () => {
  for (const pid of tracked) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Whether this process may build the namespaces (root, `ip netns`, `unshare`, corosync). */
export function corosyncAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return fs.existsSync('/usr/sbin/corosync') && fs.existsSync('/usr/bin/nsenter');
  } catch {
    return false;
  }
}

export class CorosyncCluster {
  readonly hosts: CorosyncHost[] = [];
  readonly guestNetns: string;
  readonly guestAddress: string;
  readonly bridge: string;
  readonly root: string;
  private readonly authkey = randomBytes(256);

  constructor(readonly options: CorosyncClusterOptions) {
    if (options.prefix.length > 6) throw new Error('prefix: at most 6 characters');
    this.bridge = `${options.prefix}-br`;
    this.guestNetns = `${options.prefix}-guest`;
    this.guestAddress = `${options.subnet}.100`;
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `virtfence-${options.prefix}-`));
    for (let i = 1; i <= options.hosts; i++) {
      const dir = path.join(this.root, `h${i}`);
      this.hosts.push({
        id: `h${i}`,
        nodeid: i,
        address: `${options.subnet}.${10 + i}`,
        netns: `${options.prefix}-h${i}`,
        dir,
        holderPid: -1,
        corosync: undefined,
      });
    }
  }

  host(id: string): CorosyncHost {
    const h = this.hosts.find((x) => x.id === id);
    if (!h) throw new Error(`no host ${id}`);
    return h;
  }

  /** Bridge, namespaces, holders, corosync on every host; resolves once all are members. */
  async start(): Promise<void> {
    this.network();
    for (const h of this.hosts) await this.holder(h);
    for (const h of this.hosts) this.startCorosync(h);
    await this.waitMembers(
      this.hosts.map((h) => h.id),
      this.hosts.map((h) => h.nodeid),
      30_000,
    );
  }

  async stop(): Promise<void> {
    for (const h of this.hosts) await this.killCorosync(h.id, 'SIGTERM');
    for (const h of this.hosts) {
      if (h.holderPid > 0) {
        try {
          process.kill(h.holderPid, 'SIGKILL');
        } catch {
          /* gone */
        }
        tracked.delete(h.holderPid);
      }
    }
    for (const [i, h] of this.hosts.entries()) {
      tryIp('link', 'del', `${this.options.prefix}-v${i + 1}`);
      tryIp('netns', 'del', h.netns);
    }
    tryIp('link', 'del', `${this.options.prefix}-vg`);
    tryIp('netns', 'del', this.guestNetns);
    tryIp('link', 'del', this.bridge);
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  /** Spawns `cmd` inside a host's namespaces (network, mount, UTS). */
  spawn(
    hostId: string,
    cmd: string,
    args: string[],
    options: { env?: NodeJS.ProcessEnv; stdio?: 'pipe' | 'ignore' } = {},
  ): ChildProcess {
    const h = this.host(hostId);
    const child = spawn(
      'nsenter',
      ['-t', String(h.holderPid), '-m', '-n', '-u', '--', cmd, ...args],
      {
        stdio: ['ignore', options.stdio ?? 'pipe', options.stdio ?? 'pipe'],
        env: { ...process.env, ...options.env },
      },
    );
    if (child.pid) {
      tracked.add(child.pid);
      child.once('exit', () => tracked.delete(child.pid as number));
    }
    return child;
  }

  /** Runs a command inside a host's namespaces and returns its stdout. */
  async exec(hostId: string, cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
    const h = this.host(hostId);
    const { stdout } = await execFileAsync(
      'nsenter',
      ['-t', String(h.holderPid), '-m', '-n', '-u', '--', cmd, ...args],
      { timeout: timeoutMs },
    );
    return stdout;
  }

  /** Spawns `cmd` in the guest's network namespace. */
  spawnGuest(cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.guestNetns, cmd, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    if (child.pid) {
      tracked.add(child.pid);
      child.once('exit', () => tracked.delete(child.pid as number));
    }
    return child;
  }

  /** Node ids corosync on `hostId` currently sees as members ([] if it does not answer). */
  async members(hostId: string): Promise<number[]> {
    try {
      const out = await this.exec(hostId, 'corosync-quorumtool', ['-l'], 5000);
      const ids: number[] = [];
      for (const line of out.split('\n')) {
        const m = /^\s+(\d+)\s+\d+\s+\S+/.exec(line);
        if (m) ids.push(Number(m[1]));
      }
      return ids.sort((a, b) => a - b);
    } catch {
      return [];
    }
  }

  /** Waits until every host in `on` sees exactly `expected` as members. */
  async waitMembers(on: string[], expected: number[], timeoutMs = 20_000): Promise<void> {
    const want = [...expected].sort((a, b) => a - b).join(',');
    const until = Date.now() + timeoutMs;
    for (;;) {
      const seen = await Promise.all(on.map((h) => this.members(h)));
      if (seen.every((s) => s.join(',') === want)) return;
      if (Date.now() > until)
        throw new Error(
          `corosync membership not [${want}] within ${timeoutMs} ms: ${on
            .map((h, i) => `${h}=[${seen[i]?.join(',')}]`)
            .join(' ')}\n${this.corosyncLog(on[0] ?? 'h1').slice(-3000)}`,
        );
      await sleep(200);
    }
  }

  corosyncLog(hostId: string): string {
    try {
      return fs.readFileSync(path.join(this.host(hostId).dir, 'corosync.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops corosync on a host (SIGKILL: the node vanishes; SIGTERM: it leaves cleanly). */
  async killCorosync(hostId: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const h = this.host(hostId);
    const c = h.corosync;
    h.corosync = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(signal);
    if (!(await waitExit(c, 5000))) {
      c.kill('SIGKILL');
      await waitExit(c, 5000);
    }
  }

  startCorosync(hostId: string | CorosyncHost): void {
    const h = typeof hostId === 'string' ? this.host(hostId) : hostId;
    const log = fs.openSync(path.join(h.dir, 'corosync.log'), 'a');
    const child = spawn(
      'nsenter',
      ['-t', String(h.holderPid), '-m', '-n', '-u', '--', 'corosync', '-f'],
      { stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    if (child.pid) {
      tracked.add(child.pid);
      child.once('exit', () => tracked.delete(child.pid as number));
    }
    h.corosync = child;
  }

  /** Cuts a host off the bridge (both directions): a network partition. */
  partition(hostId: string): void {
    ip('link', 'set', this.bridgePort(hostId), 'down');
  }

  heal(hostId: string): void {
    ip('link', 'set', this.bridgePort(hostId), 'up');
  }

  private bridgePort(hostId: string): string {
    const i = this.hosts.findIndex((h) => h.id === hostId);
    if (i < 0) throw new Error(`no host ${hostId}`);
    return `${this.options.prefix}-v${i + 1}`;
  }

  // ------------------------------------------------------------------------------------

  private network(): void {
    const p = this.options.prefix;
    tryIp('link', 'del', this.bridge);
    ip('link', 'add', this.bridge, 'type', 'bridge', 'mcast_snooping', '0');
    ip('link', 'set', this.bridge, 'up');
    const ends: Array<{ ns: string; outer: string; address: string }> = this.hosts.map((h, i) => ({
      ns: h.netns,
      outer: `${p}-v${i + 1}`,
      address: h.address,
    }));
    ends.push({ ns: this.guestNetns, outer: `${p}-vg`, address: this.guestAddress });
    for (const e of ends) {
      tryIp('netns', 'del', e.ns);
      ip('netns', 'add', e.ns);
      ip('link', 'add', e.outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', e.ns);
      ip('link', 'set', e.outer, 'master', this.bridge);
      ip('link', 'set', e.outer, 'up');
      ip('-n', e.ns, 'link', 'set', 'lo', 'up');
      ip('-n', e.ns, 'addr', 'add', `${e.address}/24`, 'dev', 'eth0');
      ip('-n', e.ns, 'link', 'set', 'eth0', 'up');
      ip('-n', e.ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0');
    }
  }

  private corosyncConf(): string {
    const nodes = this.hosts
      .map(
        (h) =>
          `  node {\n    ring0_addr: ${h.address}\n    nodeid: ${h.nodeid}\n    name: ${h.id}\n  }\n`,
      )
      .join('');
    return (
      'totem {\n  version: 2\n  cluster_name: virtfence-test\n  transport: knet\n' +
      '  crypto_cipher: aes256\n  crypto_hash: sha256\n' +
      `  token: ${this.options.tokenMs ?? 1000}\n  interface {\n    linknumber: 0\n    knet_transport: udp\n  }\n}\n` +
      `nodelist {\n${nodes}}\n` +
      'quorum {\n  provider: corosync_votequorum\n}\n' +
      'logging {\n  to_stderr: yes\n  to_logfile: no\n  to_syslog: no\n  timestamp: on\n}\n'
    );
  }

  private async holder(h: CorosyncHost): Promise<void> {
    for (const d of ['etc', 'run', 'lib']) fs.mkdirSync(path.join(h.dir, d), { recursive: true });
    fs.writeFileSync(path.join(h.dir, 'etc', 'corosync.conf'), this.corosyncConf());
    fs.writeFileSync(path.join(h.dir, 'etc', 'authkey'), this.authkey, { mode: 0o400 });
    const ready = path.join(h.dir, 'ready');
    const script = [
      'set -e',
      'mount -t tmpfs -o mode=1777 virtfence-shm /dev/shm',
      `mount --bind ${h.dir}/run /run`,
      `mount --bind ${h.dir}/lib /var/lib/corosync`,
      `mount --bind ${h.dir}/etc /etc/corosync`,
      `hostname ${h.id}`,
      `touch ${ready}`,
      'exec sleep infinity',
    ].join('\n');
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        h.netns,
        'unshare',
        '-m',
        '-u',
        '--propagation',
        'private',
        'sh',
        '-c',
        script,
      ],
      { stdio: 'ignore' },
    );
    if (!child.pid) throw new Error(`cannot start the namespace holder of ${h.id}`);
    tracked.add(child.pid);
    h.holderPid = child.pid;
    const until = Date.now() + 10_000;
    while (!fs.existsSync(ready)) {
      if (child.exitCode !== null) throw new Error(`namespace holder of ${h.id} exited`);
      if (Date.now() > until) throw new Error(`namespace holder of ${h.id} not ready`);
      await sleep(20);
    }
  }
}
