/**
 * systemd's notification protocol (sd_notify) for `Type=notify` units: READY=1 once the daemon
 * serves, STATUS= lines while it waits, WATCHDOG=1 beats, STOPPING=1 on shutdown. Datagrams go
 * to $NOTIFY_SOCKET through the small native addon build/Release/virtfence_sys.node; without
 * NOTIFY_SOCKET nothing is loaded and every call is a no-op.
 */
import { createRequire } from 'node:module';
import type { Logger } from '../util/logger.js';

interface SysAddon {
  /** 0 on success, else the errno of the failed call. */
  notify(socketPath: string, message: string): number;
}

const ADDON_PATH = new URL('../../build/Release/virtfence_sys.node', import.meta.url).pathname;

function loadSysAddon(): SysAddon {
  const require = createRequire(import.meta.url);
  return require(ADDON_PATH) as SysAddon;
}

export interface Notifier {
  /** Whether a service manager listens (NOTIFY_SOCKET was set and the addon loaded). */
  readonly active: boolean;
  status(text: string): void;
  /** READY=1; after a reload also the answer to RELOADING=1. */
  ready(status?: string): void;
  reloading(status?: string): void;
  stopping(status?: string): void;
  /** Starts WATCHDOG=1 beats at half WATCHDOG_USEC from the event loop, if systemd asked. */
  startWatchdog(): void;
  /** The beat period in ms, or undefined when no watchdog is configured. */
  readonly watchdogMs: number | undefined;
  close(): void;
}

export interface NotifierOptions {
  env?: NodeJS.ProcessEnv;
  logger: Logger;
  pid?: number;
  /** For tests: a different addon. */
  addon?: SysAddon;
}

/** The watchdog period systemd asks for, honouring WATCHDOG_PID (ms, or undefined). */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 1000 / 2));
}

export function createNotifier(options: NotifierOptions): Notifier {
  const env = options.env ?? process.env;
  const pid = options.pid ?? process.pid;
  const socket = env.NOTIFY_SOCKET;
  const log = options.logger;
  let addon: SysAddon | undefined;
  if (socket) {
    try {
      addon = options.addon ?? loadSysAddon();
    } catch (err) {
      log.error('systemd-notify-unavailable', {
        reason: 'addon-missing',
        error: (err as Error).message,
      });
    }
  }
  const watchdogMs = addon ? watchdogIntervalMs(env, pid) : undefined;
  let failedOnce = false;
  let timer: NodeJS.Timeout | undefined;
  let lastStatus: string | undefined;

  const send = (lines: string[]): void => {
    if (!addon || !socket) return;
    const errno = addon.notify(socket, lines.join('\n'));
    if (errno !== 0 && !failedOnce) {
      failedOnce = true; // one line, not one per beat
      log.warn('systemd-notify-failed', { socket, errno });
    }
  };
  const withStatus = (first: string, status: string | undefined): string[] => {
    if (status === undefined) return [first];
    lastStatus = status;
    return [first, `STATUS=${status}`];
  };

  return {
    active: addon !== undefined,
    watchdogMs,
    status(text) {
      if (text === lastStatus) return;
      lastStatus = text;
      send([`STATUS=${text}`]);
    },
    ready: (status) => send(withStatus('READY=1', status)),
    // MONOTONIC_USEC: systemd >= 253 (Type=notify-reload) matches the reload with it.
    reloading: (status) =>
      send([
        ...withStatus('RELOADING=1', status),
        `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`,
      ]),
    stopping: (status) => {
      if (timer) clearInterval(timer);
      timer = undefined;
      send(withStatus('STOPPING=1', status));
    },
    startWatchdog() {
      if (watchdogMs === undefined || timer) return;
      // A plain interval on the event loop: a blocked loop stops the beats and systemd restarts us.
      timer = setInterval(() => send(['WATCHDOG=1']), watchdogMs);
      timer.unref();
    },
    close() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
