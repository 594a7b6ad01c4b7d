/**
 * fence_virtd: a drop-in for the C daemon (same flags, same config file), with any number of
 * listeners feeding one backend.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Backend } from '../backends/backend.js';
import { backendPlugins } from '../backends/registry.js';
import type { DaemonConfig } from '../config/types.js';
import type { Listener } from '../listeners/listener.js';
import { listenerPlugins } from '../listeners/registry.js';
import { ReplayFilter } from '../protocol/replay-filter.js';
import { PermissionMap } from '../routing/permissions.js';
import { createLogger, type Logger } from '../util/logger.js';
import { createDispatcher } from './dispatcher.js';
import { openLogFile, type LogFile } from './log-file.js';
import type { DaemonMetrics } from './metrics.js';
import { createNotifier, type Notifier } from './systemd.js';
import { parseDaemonOptions, usage, type DaemonOptions } from './options.js';
import {
  StartupError,
  claimPidFile,
  enforcePrivateMode,
  readKeyFile,
  releasePidFile,
} from './startup.js';

const INIT_RETRY_MS = 5_000;
const STOP_BUDGET_MS = 800;
/** How often readiness is re-checked while the backend is not serving, and after READY. */
const SERVING_POLL_MS = 250;
const SERVING_WATCH_MS = 1_000;

export async function main(argv: readonly string[], program = 'fence_virtd'): Promise<number> {
  const options = parseDaemonOptions(argv);
  if (options.help) {
    if (options.invalid)
      process.stderr.write(`${program}: invalid option -- '${options.invalid}'\n`);
    process.stdout.write(usage(program));
    return 0;
  }
  if (options.listPlugins) {
    process.stdout.write(pluginList());
    return 0;
  }
  if (options.configure) {
    announceOptions(options);
    const { runWizard } = await import('../config/wizard.js');
    return runWizard({
      input: process.stdin,
      output: process.stdout,
      configFile: options.configFile,
    });
  }
  try {
    return await run(options, program);
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`${program}: ${err.message}\n`);
      notifyParent({ error: err.message, code: err.exitCode });
      return err.exitCode;
    }
    throw err;
  }
}

async function run(options: DaemonOptions, program: string): Promise<number> {
  announceOptions(options);
  const config = await loadConfig(options.configFile);
  const foreground = options.foreground || config.fenceVirtd.foreground;
  if (!foreground && process.env.VIRTFENCE_DAEMONIZED !== '1') return daemonize(program);

  const debug = options.debug ?? config.fenceVirtd.debug;
  const { logger: baseLogger, file: logFile } = makeLogger(foreground, debug);
  const notifier = createNotifier({ logger: baseLogger });
  notifier.startWatchdog();
  notifier.status('Reading the configuration');
  const waitForInit = options.waitForInit || config.fenceVirtd.waitForInit;
  const plan = resolvePlugins(config);

  for (const message of plan.permissionMessages(options.configFile)) {
    process.stdout.write(message + '\n');
    baseLogger.warn('insecure-permissions', { message });
  }
  const pidFile = options.pidFile ?? `/var/run/${program}.pid`;
  claimPidFile(pidFile, program);
  const daemon: RunningDaemon = { listeners: [], notifier, logFile, timers: [] };
  installStopHandlers(daemon, pidFile, baseLogger);
  const metrics = await createDaemonMetrics(config, daemon);
  const logger = metrics ? metrics.tapLogger(baseLogger) : baseLogger;
  try {
    await startPlugins(config, plan, logger, waitForInit, daemon, metrics);
    if (config.fenceVirtd.metrics && metrics) {
      const { address, port } = config.fenceVirtd.metrics;
      notifier.status(`Starting the metrics endpoint on ${address}:${port}`);
      daemon.metricsServer = await startMetricsEndpoint(metrics, address, port, logger);
    }
  } catch (err) {
    releasePidFile(pidFile);
    throw err;
  }
  logger.info('started', {
    listeners: config.fenceVirtd.listeners.join(','),
    backend: config.fenceVirtd.backend,
    pid: process.pid,
  });
  notifyParent({ ready: true });
  const serving = `Serving: listeners ${config.fenceVirtd.listeners.join(',')}, backend ${config.fenceVirtd.backend}`;
  watchServing(daemon, serving, logger);
  if (metrics && config.fenceVirtd.statsIntervalSec > 0) {
    const timer = setInterval(
      () => logger.info('stats', metrics.summary()),
      config.fenceVirtd.statsIntervalSec * 1000,
    );
    timer.unref();
    daemon.timers.push(timer);
  }
  // Runs until a signal stops it. Listeners and backends may hold no handle that keeps Node's
  // event loop alive (a serial listener with no guest yet, timers that are unref'd): this does.
  daemon.timers.push(setInterval(() => undefined, 1 << 30));
  return new Promise<number>(() => undefined);
}

/** Everything a stop must take down; filled in as start-up proceeds. */
interface RunningDaemon {
  backend?: Backend;
  listeners: Listener[];
  notifier: Notifier;
  logFile: LogFile | undefined;
  metricsServer?: { close(): Promise<void> };
  /** Intervals to clear on stop (stats line). */
  timers: NodeJS.Timeout[];
  /** The next readiness check. */
  servingCheck?: NodeJS.Timeout;
  /** READY=1 was sent. */
  ready?: boolean;
}

/**
 * READY=1 once every listener is bound (done when this runs) and the backend serves (amqp:
 * connected and synced); until then STATUS= says what it waits for. Afterwards STATUS= follows
 * the backend (e.g. a lost broker), READY is never withdrawn.
 */
function watchServing(daemon: RunningDaemon, serving: string, logger: Logger): void {
  const check = (): void => {
    const ready = daemon.ready === true;
    const health = daemon.backend?.health?.();
    if (!health || health.serving) {
      if (!ready) {
        daemon.ready = true;
        logger.info('ready', {}); // before READY=1: whoever hears it finds the line written
        daemon.notifier.ready(serving);
      } else daemon.notifier.status(serving);
    } else {
      const waiting = `Waiting for ${health.waitingFor ?? 'the backend'}`;
      daemon.notifier.status(ready ? `Degraded: ${waiting.toLowerCase()}` : waiting);
    }
    daemon.servingCheck = setTimeout(check, daemon.ready ? SERVING_WATCH_MS : SERVING_POLL_MS);
    daemon.servingCheck.unref();
  };
  check();
}

async function startMetricsEndpoint(
  metrics: DaemonMetrics,
  address: string,
  port: number,
  logger: Logger,
): Promise<{ close(): Promise<void> }> {
  const { serveMetrics } = await import('./metrics.js');
  try {
    return await serveMetrics(metrics, address, port, logger);
  } catch (err) {
    throw new StartupError(
      `Failed to start the metrics endpoint on ${address}:${port}: ${(err as Error).message}`,
      1,
    );
  }
}

async function createDaemonMetrics(
  config: DaemonConfig,
  daemon: RunningDaemon,
): Promise<DaemonMetrics | undefined> {
  // The counters also feed the stats line, so they exist whenever either is on.
  if (!config.fenceVirtd.metrics && config.fenceVirtd.statsIntervalSec <= 0) return undefined;
  const { createMetrics } = await import('./metrics.js');
  return createMetrics({
    health: () => daemon.backend?.health?.(),
    processMetrics: config.fenceVirtd.metrics !== undefined,
    routed: config.fenceVirtd.backend === 'amqp',
  });
}

async function loadConfig(file: string): Promise<DaemonConfig> {
  const { loadConfigFile } = await import('../config/load.js');
  let loaded: { config: DaemonConfig; warnings: string[] };
  try {
    loaded = loadConfigFile(file);
  } catch (err) {
    const message = (err as Error).message;
    // The loader's messages already start with file:line:column.
    throw new StartupError(message.startsWith(file) ? message : `${file}: ${message}`, 255);
  }
  for (const warning of loaded.warnings) process.stderr.write(`warning: ${warning}\n`);
  return loaded.config;
}

interface PluginPlan {
  permissionMessages(configFile: string): string[];
  keyFiles: Map<string, string | undefined>;
}

function resolvePlugins(config: DaemonConfig): PluginPlan {
  const names = config.fenceVirtd.listeners;
  if (names.length === 0) throw new StartupError('Failed to determine listener.', 255);
  if (!config.fenceVirtd.backend) throw new StartupError('Failed to determine backend.', 255);
  const keyFiles = new Map<string, string | undefined>();
  for (const name of names) {
    const plugin = listenerPlugins[name];
    if (!plugin) throw new StartupError(`Could not find listener "${name}"`, 1);
    keyFiles.set(name, plugin.needsKey(config) ? plugin.keyFile(config) : undefined);
  }
  if (!backendPlugins[config.fenceVirtd.backend]) {
    throw new StartupError(`Could not find backend "${config.fenceVirtd.backend}"`, 1);
  }
  return {
    keyFiles,
    permissionMessages(configFile) {
      const files = new Set([configFile, ...[...keyFiles.values()].filter(isString)]);
      return [...files].map(enforcePrivateMode).filter(isString);
    },
  };
}

async function startPlugins(
  config: DaemonConfig,
  plan: PluginPlan,
  logger: Logger,
  waitForInit: boolean,
  daemon: RunningDaemon,
  metrics: DaemonMetrics | undefined,
): Promise<void> {
  const backendName = config.fenceVirtd.backend;
  const { notifier } = daemon;
  const backend = await backendPlugins[backendName]!.create(config, { logger, waitForInit });
  daemon.backend = backend;
  notifier.status(`Starting backend ${backendName}`);
  await initOrRetry(
    `Backend plugin ${backendName}`,
    () => backend.start(),
    waitForInit,
    logger,
    notifier,
  );
  const handler = createDispatcher({
    backend,
    permissions: new PermissionMap(config.groups),
    logger,
    ...(metrics ? { observe: (o) => metrics.observeRequest(o) } : {}),
  });
  const replays = new ReplayFilter(); // one for all listeners: replays across them are refused
  for (const name of config.fenceVirtd.listeners) {
    notifier.status(`Starting listener ${name}`);
    const keyFile = plan.keyFiles.get(name);
    const key = keyFile ? readKeyFile(keyFile) : Buffer.alloc(0);
    const listener = await listenerPlugins[name]!.create(config, {
      logger,
      key,
      replays,
      openHypervisor: async (uri) => (await import('../libvirt/native.js')).openHypervisor(uri),
    });
    await initOrRetry(
      `Listener plugin ${name}`,
      () => listener.start(handler),
      waitForInit,
      logger,
      notifier,
    );
    daemon.listeners.push(listener);
  }
}

/** Start a plugin; with wait_for_init retry every 5 s instead of giving up (docs/protocol.md §16). */
async function initOrRetry(
  what: string,
  start: () => Promise<void>,
  waitForInit: boolean,
  logger: Logger,
  notifier: Notifier,
): Promise<void> {
  for (;;) {
    try {
      await start();
      return;
    } catch (err) {
      const reason = (err as Error).message;
      if (!waitForInit) throw new StartupError(`${what} failed to initialize: ${reason}`, 1);
      notifier.status(`Waiting for ${what}: ${reason}; retrying every ${INIT_RETRY_MS / 1000} s`);
      logger.warn('init-retry', { plugin: what, reason, retry_ms: INIT_RETRY_MS });
      await new Promise((resolve) => setTimeout(resolve, INIT_RETRY_MS));
    }
  }
}

function installStopHandlers(daemon: RunningDaemon, pidFile: string, logger: Logger): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    daemon.notifier.stopping(`Stopping on ${signal}`);
    logger.info('stopping', { signal });
    for (const timer of daemon.timers) clearInterval(timer);
    clearTimeout(daemon.servingCheck);
    const all = Promise.allSettled([
      ...daemon.listeners.map((l) => l.stop()),
      ...(daemon.backend ? [daemon.backend.stop()] : []),
      ...(daemon.metricsServer ? [daemon.metricsServer.close()] : []),
    ]);
    const budget = new Promise((resolve) => setTimeout(resolve, STOP_BUDGET_MS));
    void Promise.race([all, budget]).then(() => {
      releasePidFile(pidFile);
      logger.info('stopped', {});
      daemon.notifier.close();
      daemon.logFile?.close();
      process.exit(0);
    });
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const)
    process.on(signal, () => stop(signal));
  // SIGHUP (systemctl reload, logrotate): reopen the log file. Nothing else is reloaded.
  process.on('SIGHUP', () => {
    if (stopping) return;
    const wasReady = daemon.ready === true; // never READY=1 before the daemon serves
    if (wasReady) daemon.notifier.reloading('Reopening the log file');
    const error = daemon.logFile?.reopen();
    if (error) logger.error('log-reopen-failed', { file: daemon.logFile?.path, error });
    else logger.info('log-reopened', { file: daemon.logFile?.path ?? 'stderr' });
    if (wasReady) daemon.notifier.ready();
  });
}

function makeLogger(
  foreground: boolean,
  debug: number,
): { logger: Logger; file: LogFile | undefined } {
  const requested = process.env.VIRTFENCE_LOG_FORMAT;
  const format =
    requested === 'json' || requested === 'text' ? requested : foreground ? 'text' : 'json';
  const path = process.env.VIRTFENCE_LOG_FILE;
  let file: LogFile | undefined;
  if (path) {
    try {
      file = openLogFile(path);
    } catch (err) {
      throw new StartupError(`cannot open log file '${path}': ${(err as Error).message}`, 1);
    }
  }
  const write = file
    ? (line: string) => file.write(line)
    : (line: string) => process.stderr.write(line + '\n');
  return { logger: createLogger({ level: debug > 0 ? 'debug' : 'info', format, write }), file };
}

/**
 * Node cannot fork(): run a detached copy in the foreground, wait until it is serving or has
 * failed, and report that as the exit status, so errors still reach the terminal.
 */
function daemonize(program: string): Promise<number> {
  const logFile = process.env.VIRTFENCE_LOG_FILE ?? `/var/log/${program}.log`;
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const out = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [process.argv[1]!, ...process.argv.slice(2), '-F'], {
    detached: true,
    stdio: ['ignore', out, out, 'ipc'],
    // The child writes its log lines to the file itself (reopened on SIGHUP); the descriptors
    // handed over here only catch what Node itself prints (a crash).
    env: {
      ...process.env,
      VIRTFENCE_DAEMONIZED: '1',
      VIRTFENCE_LOG_FORMAT: 'json',
      VIRTFENCE_LOG_FILE: logFile,
    },
  });
  return new Promise((resolve) => {
    child.on('message', (message: { ready?: boolean; error?: string; code?: number }) => {
      if (message.error) process.stderr.write(`${program}: ${message.error}\n`);
      child.disconnect();
      child.unref();
      resolve(message.ready ? 0 : (message.code ?? 1));
    });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

/** The lines the C daemon prints while reading its options; scripts may look for them. */
function announceOptions(options: DaemonOptions): void {
  if (process.env.VIRTFENCE_DAEMONIZED === '1') return;
  const lines: string[] = [];
  if (options.foreground) lines.push('Background mode disabled');
  if (options.configFileGiven) lines.push(`Using ${options.configFile}`);
  if (options.pidFile) lines.push(`Using ${options.pidFile}`);
  if (lines.length > 0) process.stdout.write(lines.join('\n') + '\n');
}

function notifyParent(message: { ready?: boolean; error?: string; code?: number }): void {
  if (process.send) {
    process.send(message);
    process.disconnect?.();
  }
}

function pluginList(): string {
  const lines = ['Available listeners:'];
  for (const [name, p] of Object.entries(listenerPlugins)) lines.push(`    ${name} ${p.version}`);
  lines.push('Available backends:');
  for (const [name, p] of Object.entries(backendPlugins)) lines.push(`    ${name} ${p.version}`);
  return lines.join('\n') + '\n';
}

const isString = (v: string | undefined): v is string => typeof v === 'string';
