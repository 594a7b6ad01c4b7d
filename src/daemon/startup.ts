/** Start-up checks of docs/protocol.md §16: file permissions, key loading, the single-instance pid file. */
import fs from 'node:fs';
import path from 'node:path';
import { readKeyBytes } from '../protocol/key-file.js';

export class StartupError extends Error {
  constructor(
    message: string,
    /** Process exit code, matching the C daemon's where it has one. */
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/**
 * The file must exist; a mode other than 0600 is corrected with a message, as the C daemon does.
 * Returns the message, if any.
 */
export function enforcePrivateMode(file: string): string | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    throw new StartupError(`stat failed on file '${file}': ${describe(err)}`, 255);
  }
  const mode = stat.mode & 0o7777;
  if (mode === 0o600) return undefined;
  fs.chmodSync(file, 0o600);
  return `Insecure permissions on file '${file}': changing from 0${mode.toString(8)} to 0600.`;
}

/** Raw key bytes, first 4096 only (docs/protocol.md §2.1). */
export function readKeyFile(file: string): Buffer {
  try {
    return readKeyBytes(file);
  } catch (err) {
    throw new StartupError(`cannot read key file '${file}': ${describe(err)}`, 1);
  }
}

/**
 * Refuse to start when the pid file names a live process running this program; otherwise
 * record our pid (no newline, as C writes it).
 */
export function claimPidFile(file: string, program: string): void {
  const running = runningPid(file, program);
  if (running !== undefined) {
    throw new StartupError(`${program} is already running (pid ${running}, pid file ${file})`, 1);
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, String(process.pid));
}

export function releasePidFile(file: string): void {
  try {
    if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
  } catch {
    // already gone
  }
}

function runningPid(file: string, program: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    return cmdline.includes(program) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return 'No such file or directory';
  if (e.code === 'EACCES') return 'Permission denied';
  return e.message;
}
