/** Where an agent writes: stdout for results and (as in 4.12.1) error lines, stderr for perror-style ones. */
import { errText } from '../util/errors.js';
export interface AgentIO {
  out(line: string): void;
  err(line: string): void;
}

export function processIO(): AgentIO {
  return {
    out: (line) => process.stdout.write(line + '\n'),
    err: (line) => process.stderr.write(line + '\n'),
  };
}

/** Microseconds part of the current time: the clients' request id (docs/protocol.md §3). */
export function microsecondSeqno(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000) % 1_000_000;
}

export { sleep } from '../util/time.js';

/** strerror-style text of a Node system error. */
export function errorText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const known: Record<string, string> = {
    ECONNREFUSED: 'Connection refused',
    ECONNRESET: 'Connection reset by peer',
    ETIMEDOUT: 'Connection timed out',
    EHOSTUNREACH: 'No route to host',
    ENETUNREACH: 'Network is unreachable',
    EADDRINUSE: 'Address already in use',
    EACCES: 'Permission denied',
    ENOENT: 'No such file or directory',
    EBUSY: 'Device or resource busy',
    ENOTTY: 'Inappropriate ioctl for device',
    EINVAL: 'Invalid argument',
  };
  if (code && known[code]) return known[code];
  return errText(err);
}
