/** `ip` for the namespaces, bridges and veths that tests and harnesses create (root needed). */
import { execFileSync } from 'node:child_process';

/** Runs `ip ARGS…`; throws with ip's stderr on failure. */
export function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Like `ip`, for teardown: what is already gone is not an error. */
export function tryIp(...args: string[]): void {
  try {
    ip(...args);
  } catch {
    /* already gone */
  }
}
