/**
 * The cpg comparison: three hosts on real corosync (./corosync.ts), a private libvirtd each,
 * and either our fence_virtd or the C one with `backend = "cpg"` on every host, fed the SAME
 * C-style fence_virt.conf. The real /usr/sbin/fence_xvm in a guest namespace sends every
 * request (multicast reaches every host's daemon).
 *
 * Healthy cluster: list, status, off, on, reboot of VMs on other hosts. Then three failures,
 * each followed by status, off and reboot of a VM that is still running:
 *  1. the owner's daemon is killed;
 *  2. the owner host leaves the membership (its corosync is killed; its daemon stays up);
 *  3. the owner host is partitioned off the network.
 * Every answer is judged against the VM's real state on its libvirtd right after: success for
 * off while the VM runs, or for reboot while it runs on with the same domain id, is a false
 * success;
 * status OFF while it runs is a false OFF.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type ChildProcess } from 'node:child_process';
import { CorosyncCluster } from './corosync.js';
import { DaemonProcess } from './cluster.js';
import { seedHost, startLibvirtd, virsh, type SimHost, type VmSpec } from './libvirtd.js';
import { C_DAEMON, C_XVM, OUR_DAEMON } from './processes.js';
import { sleep } from '../../src/util/time.js';

export type CpgDaemonKind = 'ours' | 'c';

export interface CpgAnswer {
  phase: 'healthy' | 'daemon-killed' | 'host-left' | 'partition';
  action: string;
  vm: string;
  /** fence_xvm exit code (null: killed at our time limit). */
  code: number | null;
  ms: number;
  verdict: 'ok' | 'correct-fail' | 'false-success' | 'false-off' | 'wrong' | 'no-answer';
  detail: string;
}

export interface CpgRunResult {
  kind: CpgDaemonKind;
  answers: CpgAnswer[];
  falseSuccesses: number;
  falseOff: number;
  /** Healthy requests answered correctly / asked. */
  healthyOk: number;
  healthyTotal: number;
  /** VMs the healthy `list` showed, of all the cluster's. */
  listed: number;
  vmsInCluster: number;
  /** Starts after which no status was answered within 8 s (then the daemons were restarted). */
  startupHangs: number;
  /** Wall times (ms) of the healthy status requests answered correctly. */
  statusMs: number[];
}

const KEY = Buffer.from('cpg-comparison-xvm-key-0123456789abcdef');

const VMS: Record<string, VmSpec[]> = {
  h1: [{ name: 'cpg-a1', uuid: 'c9000000-0000-4000-8000-0000000000a1', running: true }],
  h2: [
    { name: 'cpg-b1', uuid: 'c9000000-0000-4000-8000-0000000000b1', running: true },
    { name: 'cpg-b2', uuid: 'c9000000-0000-4000-8000-0000000000b2', running: true },
  ],
  h3: [
    { name: 'cpg-c1', uuid: 'c9000000-0000-4000-8000-0000000000c1', running: true },
    { name: 'cpg-c2', uuid: 'c9000000-0000-4000-8000-0000000000c2', running: false },
  ],
};

export interface CpgRunOptions {
  kind: CpgDaemonKind;
  prefix: string;
  subnet: string;
  port: number;
  /** fence_xvm -t (seconds); C may never answer. */
  agentTimeoutSec?: number;
  log?: (line: string) => void;
}

export function cpgConfig(o: { keyFile: string; port: number; uri: string }): string {
  // What `fence_virtd -c` writes for the C daemon; nothing of ours.
  return `fence_virtd {
\tlistener = "multicast";
\tbackend = "cpg";
}

listeners {
\tmulticast {
\t\tkey_file = "${o.keyFile}";
\t\taddress = "225.0.0.12";
\t\tport = "${o.port}";
\t\tinterface = "eth0";
\t\tfamily = "ipv4";
\t}
}

backends {
\tcpg {
\t\turi = "${o.uri}";
\t\tname_mode = "name";
\t}
}
`;
}

export class CpgComparison {
  readonly cluster: CorosyncCluster;
  readonly libvirt = new Map<string, SimHost>();
  readonly daemons = new Map<string, DaemonProcess>();
  private readonly keyFile: string;
  private readonly log: (line: string) => void;

  constructor(private readonly options: CpgRunOptions) {
    this.cluster = new CorosyncCluster({
      prefix: options.prefix,
      subnet: options.subnet,
      hosts: 3,
    });
    this.keyFile = path.join(this.cluster.root, 'fence_xvm.key');
    this.log = options.log ?? (() => undefined);
  }

  async start(): Promise<void> {
    fs.writeFileSync(this.keyFile, KEY, { mode: 0o600 });
    await this.cluster.start();
    for (const h of this.cluster.hosts) {
      const lv = await startLibvirtd(`${this.options.prefix}-${h.id}`);
      this.libvirt.set(h.id, lv);
      await seedHost(lv, VMS[h.id] ?? []);
      fs.writeFileSync(
        path.join(h.dir, 'fence_virt.conf'),
        cpgConfig({ keyFile: this.keyFile, port: this.options.port, uri: lv.uri }),
        { mode: 0o600 },
      );
    }
    for (const h of this.cluster.hosts) await this.startDaemon(h.id);
  }

  async stop(): Promise<void> {
    for (const d of this.daemons.values()) await d.stop('SIGKILL').catch(() => undefined);
    this.daemons.clear();
    for (const lv of this.libvirt.values()) await lv.stop().catch(() => undefined);
    this.libvirt.clear();
    await this.cluster.stop();
  }

  daemon(hostId: string): DaemonProcess {
    const d = this.daemons.get(hostId);
    if (!d) throw new Error(`no daemon on ${hostId}`);
    return d;
  }

  async startDaemon(hostId: string): Promise<DaemonProcess> {
    const h = this.cluster.host(hostId);
    const binary = this.options.kind === 'ours' ? OUR_DAEMON : C_DAEMON;
    const child: ChildProcess = this.cluster.spawn(
      hostId,
      binary,
      ['-F', '-f', path.join(h.dir, 'fence_virt.conf'), '-p', path.join(h.dir, 'fence_virtd.pid')],
      { env: { VIRTFENCE_LOG_FORMAT: 'json' } },
    );
    const d = new DaemonProcess(child);
    this.daemons.set(hostId, d);
    if (this.options.kind === 'ours') await d.waitForLog((e) => e.event === 'started', 20_000);
    else await sleep(1000);
    return d;
  }

  /**
   * Our daemons: every host has every other host's inventory and logged `synced` (its settle
   * time passed too). Before that a daemon refuses, correctly, any answer that rests on a VM
   * running nowhere else (status OFF, off/reboot success of another host's VM, on): FAIL
   * `not-synced`, which the healthy phase would count as wrong.
   */
  async waitSynced(hosts: string[], timeoutMs = 20_000): Promise<void> {
    if (this.options.kind !== 'ours') return;
    for (const h of hosts) {
      const d = this.daemon(h);
      for (const peer of hosts.filter((p) => p !== h)) {
        await d.waitForLog((e) => e.event === 'peer-inventory' && e.peer === peer, timeoutMs);
      }
      await d.waitForLog((e) => e.event === 'synced', timeoutMs);
    }
  }

  /** The real fence_xvm from the guest namespace. */
  async xvm(action: string, vm: string): Promise<{ code: number | null; out: string; ms: number }> {
    const t = this.options.agentTimeoutSec ?? 5;
    const started = performance.now();
    const child = this.cluster.spawnGuest(C_XVM, [
      '-a',
      '225.0.0.12',
      '-p',
      String(this.options.port),
      '-k',
      this.keyFile,
      '-o',
      action,
      '-t',
      String(t),
      ...(vm ? ['-H', vm] : []),
    ]);
    child.stdin?.end();
    let out = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), (t + 5) * 1000);
    const code = await new Promise<number | null>((resolve) =>
      child.once('close', (c) => resolve(c)),
    );
    clearTimeout(killer);
    return { code, out, ms: performance.now() - started };
  }

  private owner(vm: string): SimHost {
    for (const [host, specs] of Object.entries(VMS)) {
      if (specs.some((s) => s.name === vm)) return this.libvirt.get(host) as SimHost;
    }
    throw new Error(`unknown vm ${vm}`);
  }

  async domState(vm: string): Promise<{ state: string; id: string }> {
    const uri = this.owner(vm).uri;
    const state = (await virsh(uri, 'domstate', vm)).trim();
    const id = (await virsh(uri, 'domid', vm).catch(() => '-')).trim();
    return { state, id };
  }

  /** Asks one request and judges the answer against the VM's state on its libvirtd. */
  async ask(phase: CpgAnswer['phase'], action: string, vm: string): Promise<CpgAnswer> {
    const before = await this.domState(vm);
    const r = await this.xvm(action, vm);
    const after = await this.domState(vm);
    const running = after.state === 'running';
    let verdict: CpgAnswer['verdict'];
    if (r.code === null) verdict = 'no-answer';
    else if (action === 'status') {
      verdict =
        r.code === 2 && running
          ? 'false-off'
          : (r.code === 0 && running) || (r.code === 2 && !running)
            ? 'ok'
            : r.code === 1
              ? 'correct-fail'
              : 'wrong';
    } else if (action === 'off') {
      verdict = r.code === 0 ? (running ? 'false-success' : 'ok') : 'correct-fail';
    } else if (action === 'reboot') {
      // The old instance must be gone: still running with the same domain id is a lie.
      const untouched = running && before.state === 'running' && before.id === after.id;
      verdict = r.code === 0 ? (untouched ? 'false-success' : 'ok') : 'correct-fail';
    } else if (action === 'on') {
      verdict = r.code === 0 ? (running ? 'ok' : 'false-success') : 'correct-fail';
    } else verdict = r.code === 0 ? 'ok' : 'correct-fail';
    const answer: CpgAnswer = {
      phase,
      action,
      vm,
      code: r.code,
      ms: r.ms,
      verdict,
      detail: `${before.state}/${before.id} → ${after.state}/${after.id}: ${r.out.trim().split('\n').slice(-1)[0] ?? ''}`,
    };
    this.log(
      `  ${this.options.kind} ${phase} ${action} ${vm}: exit ${r.code} in ${r.ms.toFixed(0)} ms → ${verdict} (${answer.detail})`,
    );
    return answer;
  }

  /** Waits until a daemon answers status for `vm` with success (start-up probe). */
  async probe(vm: string, timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const r = await this.xvm('status', vm);
      if (r.code === 0) return true;
      await sleep(300);
    }
    return false;
  }

  /**
   * Probes until a status of a VM on h3 is answered; a start that answers nothing (the C cpg
   * backend's start-up race) is counted and `restart`'s daemons are started again, 3 times at
   * most. Returns the number of starts that answered nothing.
   */
  async ensureServing(restart: string[]): Promise<number> {
    let hangs = 0;
    for (let attempt = 0; ; attempt++) {
      if (await this.probe('cpg-c1', 8000)) return hangs;
      hangs++;
      this.log(
        `  ${this.options.kind}: no answer after start (attempt ${attempt + 1}); restarting`,
      );
      if (attempt >= 2) return hangs;
      for (const h of restart) {
        await this.daemon(h).stop('SIGKILL');
        await this.startDaemon(h);
      }
    }
  }

  /** The whole comparison. */
  async run(): Promise<CpgRunResult> {
    const answers: CpgAnswer[] = [];
    const all = Object.values(VMS).flat();
    let startupHangs = 0;
    const hosts = ['h1', 'h2', 'h3'];
    await this.waitSynced(hosts);
    startupHangs += await this.ensureServing(hosts);

    // Healthy cluster.
    const list = await this.xvm('list', '');
    const listed = all.filter((v) => list.out.includes(v.name)).length;
    this.log(
      `  ${this.options.kind} healthy list: ${listed} of ${all.length} VMs (exit ${list.code})`,
    );
    const healthy: Array<[string, string]> = [
      ['status', 'cpg-c1'],
      ['status', 'cpg-b1'],
      ['off', 'cpg-b1'],
      ['status', 'cpg-b1'],
      ['on', 'cpg-b1'],
      ['reboot', 'cpg-c1'],
      ['on', 'cpg-c2'],
      ['status', 'cpg-a1'],
    ];
    for (const [action, vm] of healthy) answers.push(await this.ask('healthy', action, vm));

    // 1. The owner's daemon is killed (cpg-c1 on h3).
    await this.daemon('h3').stop('SIGKILL');
    await sleep(1500);
    for (const action of ['status', 'off', 'reboot'])
      answers.push(await this.ask('daemon-killed', action, 'cpg-c1'));
    await this.startDaemon('h3');
    await this.waitSynced(hosts).catch(() => undefined);
    startupHangs += await this.ensureServing(['h3']);

    // 2. The owner host leaves the membership (cpg-b2 on h2): its corosync dies.
    await this.cluster.killCorosync('h2');
    await this.cluster.waitMembers(['h1', 'h3'], [1, 3]);
    await sleep(500);
    for (const action of ['status', 'off', 'reboot'])
      answers.push(await this.ask('host-left', action, 'cpg-b2'));
    this.cluster.startCorosync('h2');
    await this.cluster.waitMembers(hosts, [1, 2, 3]);

    // 3. The owner host is cut off the network (cpg-a1 on h1).
    this.cluster.partition('h1');
    await this.cluster.waitMembers(['h2', 'h3'], [2, 3]);
    await sleep(500);
    for (const action of ['status', 'off', 'reboot'])
      answers.push(await this.ask('partition', action, 'cpg-a1'));

    const healthyAnswers = answers.filter((a) => a.phase === 'healthy');
    return {
      kind: this.options.kind,
      answers,
      falseSuccesses: answers.filter((a) => a.verdict === 'false-success').length,
      falseOff: answers.filter((a) => a.verdict === 'false-off').length,
      healthyOk: healthyAnswers.filter((a) => a.verdict === 'ok').length,
      healthyTotal: healthyAnswers.length,
      listed,
      vmsInCluster: all.length,
      startupHangs,
      statusMs: healthyAnswers
        .filter((a) => a.action === 'status' && a.verdict === 'ok')
        .map((a) => a.ms),
    };
  }
}
