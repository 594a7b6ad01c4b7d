/**
 * The daemon's log file: opened once, appended to with one write per line, and reopened on
 * request (SIGHUP after logrotate moved it away).
 */
import fs from 'node:fs';
import path from 'node:path';

export interface LogFile {
  readonly path: string;
  write(line: string): void;
  /** Opens the path again and switches to it; returns an error message, or undefined. */
  reopen(): string | undefined;
  close(): void;
}

function open(file: string): number {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return fs.openSync(file, 'a', 0o640);
}

export function openLogFile(file: string): LogFile {
  let fd = open(file);
  return {
    path: file,
    write(line) {
      try {
        fs.writeSync(fd, line + '\n');
      } catch {
        // A full disk must not stop fencing; the line is lost.
      }
    },
    reopen() {
      try {
        const next = open(file);
        const previous = fd;
        fd = next;
        fs.closeSync(previous);
        return undefined;
      } catch (err) {
        return (err as Error).message; // keep writing to the old descriptor
      }
    },
    close() {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
    },
  };
}
