/**
 * Starts our fence_virtd or the real C one as a separate process with a generated config, and
 * runs agents against it. Everything is stopped by pid and every temp dir removed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const OUR_DAEMON = path.join(ROOT, 'bin/fence_virtd');
export const C_DAEMON = '/usr/sbin/fence_virtd';
export const C_XVM = '/usr/sbin/fence_xvm';
export const C_VIRT = '/usr/sbin/fence_virt';

export type DaemonKind = 'ours' | 'c';

export interface TempDir {
  path: string;
  file(name: string, content: string | Buffer, mode?: number): string;
  remove(): void;
}

export function tempDir(prefix = 'virtfence-'): TempDir {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return {
    path: dir,
    file(name, content, mode = 0o600) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, content, { mode });
      fs.chmodSync(file, mode);
      return file;
    },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export interface LogEntry {
  event: string;
  level: string;
  [field: string]: unknown;
}

export interface RunningDaemon {
  kind: DaemonKind;
  pid: number;
  process: ChildProcess;
  /** Parsed JSON log lines (ours only). */
  logs: LogEntry[];
  output(): string;
  waitForLog(match: (entry: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  kind: DaemonKind;
  configFile: string;
  pidFile: string;
  /** UDP port that is bound once the daemon serves (multicast listener). */
  udpPort?: number;
  udpFamily?: 'udp4' | 'udp6';
  env?: NodeJS.ProcessEnv;
  extraArgs?: string[];
}

export async function startDaemon(options: StartOptions): Promise<RunningDaemon> {
  const binary = options.kind === 'ours' ? OUR_DAEMON : C_DAEMON;
  const args = [
    '-F',
    '-f',
    options.configFile,
    '-p',
    options.pidFile,
    ...(options.extraArgs ?? []),
  ];
  const child = spawn(binary, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, VIRTFENCE_LOG_FORMAT: 'json', ...options.env },
  });
  const daemon = track(options.kind, child);
  try {
    if (options.kind === 'ours') {
      await daemon.waitForLog((e) => e.event === 'started', 15_000);
    } else if (options.udpPort !== undefined) {
      await waitForUdpBound(options.udpPort, options.udpFamily ?? 'udp4', child, 10_000);
    }
  } catch (err) {
    await daemon.stop('SIGKILL');
    throw new Error(
      `${options.kind} daemon did not start: ${(err as Error).message}\n${daemon.output()}`,
    );
  }
  return daemon;
}

function track(kind: DaemonKind, child: ChildProcess): RunningDaemon {
  const logs: LogEntry[] = [];
  let text = '';
  let waiters: Array<() => void> = [];
  const onLine = (line: string): void => {
    text += line + '\n';
    if (line.startsWith('{')) {
      try {
        logs.push(JSON.parse(line) as LogEntry);
      } catch {
        // not a log line
      }
    }
    const pending = waiters;
    waiters = [];
    pending.forEach((wake) => wake());
  };
  forEachOutputLine(child, onLine);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.on('exit', () => {
    const pending = waiters;
    waiters = [];
    pending.forEach((wake) => wake());
  });
  return {
    kind,
    pid: child.pid ?? -1,
    process: child,
    logs,
    output: () => text,
    async waitForLog(match, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = logs.find(match);
        if (found) return found;
        if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error('timed out waiting for a log entry');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      process.kill(child.pid!, signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Calls `onLine` for every complete line the child writes on stdout or stderr. */
export function forEachOutputLine(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream?.on('data', (chunk: Buffer) => {
      partial += chunk.toString();
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      lines.forEach(onLine);
    });
  }
}

/** The port is bound when we can no longer bind it ourselves (no SO_REUSEADDR on either side). */
async function waitForUdpBound(
  port: number,
  type: 'udp4' | 'udp6',
  child: ChildProcess,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`);
    const free = await new Promise<boolean>((resolve) => {
      const probe = dgram.createSocket(type);
      probe.once('error', () => resolve(false));
      probe.bind({ port, exclusive: true }, () => probe.close(() => resolve(true)));
    });
    if (!free) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`UDP port ${port} was not bound within ${timeoutMs} ms`);
}

export interface AgentResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run an agent binary with arguments or stdin lines; killed after `timeoutMs`. */
export function runAgent(
  binary: string,
  args: string[],
  options: { stdin?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; argv0?: string } = {},
): Promise<AgentResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
      ...(options.argv0 ? { argv0: options.argv0 } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined); // the agent may exit before reading stdin
    child.stdin.end(options.stdin ?? '');
  });
}
