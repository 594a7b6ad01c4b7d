/**
 * A private libvirtd of one simulated host, run and stopped by pid: what the test-driver hosts
 * (libvirtd.ts) and the QEMU hosts (qemu.ts) share. Subclasses say how libvirtd is started
 * (`command()`) and what stop() removes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { openHypervisor } from '../../src/libvirt/native.js';
import type { Hypervisor } from '../../src/libvirt/hypervisor.js';
import { sleep } from '../../src/util/time.js';

/** Hosts not stopped yet. */
const live = new Set<PrivateLibvirtd>();

// Safety net: a test that forgot stop() still leaves no process or directory behind.
process.once('exit', () => {
  for (const host of live) host.cleanUpAtExit();
});

export function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

export function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export interface LibvirtdTiming {
  /** How long libvirtd may take to answer a first client. */
  readyMs: number;
  /** How long SIGTERM may take before SIGKILL. */
  stopGraceMs: number;
}

export abstract class PrivateLibvirtd {
  keeper: Hypervisor | undefined;
  readonly logFile: string;
  private child: ChildProcess | undefined;

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly uri: string,
    private readonly timing: LibvirtdTiming,
  ) {
    live.add(this);
    this.logFile = join(dir, 'libvirtd.log');
  }

  /** argv that runs libvirtd in the foreground for this host. */
  protected abstract command(): string[];

  /** What the error messages call this libvirtd. */
  protected abstract readonly label: string;

  /** pid of the running libvirtd (changes on restart). */
  get pid(): number {
    return this.child?.pid ?? -1;
  }

  async launch(): Promise<void> {
    const out = openSync(join(this.dir, 'libvirtd.out'), 'a');
    const [file, ...args] = this.command();
    const child = spawn(file as string, args, {
      cwd: this.dir,
      env: { ...process.env, LIBVIRT_DRIVER_DIR: join(this.dir, 'drivers'), LC_ALL: 'C' },
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    if (child.pid === undefined)
      throw new Error(`${this.label} for ${this.name} did not start (is libvirt installed?)`);
    this.child = child;
    await this.waitReady(child);
  }

  /** A connection held by the harness (the test driver's state, events, direct lookups). */
  async connection(): Promise<Hypervisor> {
    if (this.keeper && this.keeper.isAlive()) return this.keeper;
    this.keeper = await openHypervisor(this.uri, { keepaliveInterval: 0 });
    return this.keeper;
  }

  /** SIGKILL by pid: "libvirt went away". The directory stays for restart(). */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined) return;
    process.kill(child.pid, 'SIGKILL');
    await waitForExit(child, 5000);
    this.child = undefined;
  }

  /** libvirtd stops and starts again on the same socket. */
  async restart(): Promise<void> {
    await this.dropKeeper();
    await this.terminate();
    await this.launch();
  }

  /** True while libvirtd runs (stop() destroys guests through it only then). */
  protected get launched(): boolean {
    return this.child !== undefined;
  }

  protected async dropKeeper(): Promise<void> {
    const keeper = this.keeper;
    this.keeper = undefined;
    await keeper?.close().catch(() => undefined);
  }

  /** SIGTERM, then SIGKILL after the grace time. */
  protected async terminate(): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined) return;
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, 'SIGTERM');
      if (!(await waitForExit(child, this.timing.stopGraceMs))) {
        process.kill(child.pid, 'SIGKILL');
        await waitForExit(child, 5000);
      }
    }
    this.child = undefined;
  }

  protected removeDir(): void {
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** At process exit, synchronously: kill what runs, remove the directory. */
  cleanUpAtExit(): void {
    if (this.child?.pid !== undefined) killPid(this.child.pid);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Ready = a real client connection succeeds. */
  private async waitReady(child: ChildProcess): Promise<void> {
    const until = Date.now() + this.timing.readyMs;
    let last: unknown;
    while (Date.now() < until) {
      if (child.exitCode !== null) {
        throw new Error(
          `${this.label} for ${this.name} exited with ${child.exitCode}: ` +
            readFileSync(join(this.dir, 'libvirtd.out'), 'utf8').slice(-2000),
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
    throw new Error(
      `${this.label} for ${this.name} not ready after ${this.timing.readyMs} ms: ${String(last)}`,
    );
  }
}
