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
  const logger = makeLogger(foreground, debug);
  const waitForInit = options.waitForInit || config.fenceVirtd.waitForInit;
  const plan = resolvePlugins(config);

  for (const message of plan.permissionMessages(options.configFile)) {
    process.stdout.write(message + '\n');
    logger.warn('insecure-permissions', { message });
  }
  const pidFile = options.pidFile ?? `/var/run/${program}.pid`;
  claimPidFile(pidFile, program);
  const running = await startPlugins(config, plan, logger, waitForInit);
  logger.info('started', {
    listeners: config.fenceVirtd.listeners.join(','),
    backend: config.fenceVirtd.backend,
    pid: process.pid,
  });
  notifyParent({ ready: true });
  installStopHandlers(running, pidFile, logger);
  return new Promise<number>(() => undefined); // runs until a signal stops it
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

interface RunningPlugins {
  backend: Backend;
  listeners: Listener[];
}

async function startPlugins(
  config: DaemonConfig,
  plan: PluginPlan,
  logger: Logger,
  waitForInit: boolean,
): Promise<RunningPlugins> {
  const backendName = config.fenceVirtd.backend;
  const backend = await backendPlugins[backendName]!.create(config, { logger, waitForInit });
  await initOrRetry(`Backend plugin ${backendName}`, () => backend.start(), waitForInit, logger);
  const handler = createDispatcher({
    backend,
    permissions: new PermissionMap(config.groups),
    logger,
  });
  const listeners: Listener[] = [];
  const replays = new ReplayFilter(); // one for all listeners: replays across them are refused
  for (const name of config.fenceVirtd.listeners) {
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
    );
    listeners.push(listener);
  }
  return { backend, listeners };
}

/** Start a plugin; with wait_for_init retry every 5 s instead of giving up (docs/protocol.md §16). */
async function initOrRetry(
  what: string,
  start: () => Promise<void>,
  waitForInit: boolean,
  logger: Logger,
): Promise<void> {
  for (;;) {
    try {
      await start();
      return;
    } catch (err) {
      const reason = (err as Error).message;
      if (!waitForInit) throw new StartupError(`${what} failed to initialize: ${reason}`, 1);
      logger.warn('init-retry', { plugin: what, reason, retry_ms: INIT_RETRY_MS });
      await new Promise((resolve) => setTimeout(resolve, INIT_RETRY_MS));
    }
  }
}

function installStopHandlers(running: RunningPlugins, pidFile: string, logger: Logger): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    const all = Promise.allSettled([
      ...running.listeners.map((l) => l.stop()),
      running.backend.stop(),
    ]);
    const budget = new Promise((resolve) => setTimeout(resolve, STOP_BUDGET_MS));
    void Promise.race([all, budget]).then(() => {
      releasePidFile(pidFile);
      logger.info('stopped', {});
      process.exit(0);
    });
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const)
    process.on(signal, () => stop(signal));
}

function makeLogger(foreground: boolean, debug: number): Logger {
  const requested = process.env.VIRTFENCE_LOG_FORMAT;
  const format =
    requested === 'json' || requested === 'text' ? requested : foreground ? 'text' : 'json';
  const logFile = process.env.VIRTFENCE_LOG_FILE;
  const write = logFile
    ? (line: string) => fs.appendFileSync(logFile, line + '\n')
    : (line: string) => process.stderr.write(line + '\n');
  return createLogger({ level: debug > 0 ? 'debug' : 'info', format, write });
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
    env: { ...process.env, VIRTFENCE_DAEMONIZED: '1', VIRTFENCE_LOG_FORMAT: 'json' },
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
