/**
 * Broker settings for the broker-facing `virtfence` commands: the `backends { amqp { … } }`
 * block of fence_virt.conf (`-f/--config`), overridden by flags. The CLI joins the cluster as
 * an observer with an id of its own (`virtfence-cli.<pid>.<random>`) that owns no VM.
 */
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Flags } from '@oclif/core';
import { loadAmqpSecrets, parseAmqpConfig, type AmqpConfig } from '../../amqp/config.js';
import { PROFILE_NAMES, resolveProfile, type AddressProfile } from '../../amqp/profiles.js';
import type { ConfigBlock, GroupConfig } from '../../config/types.js';
import { blockValues } from '../../config/lookup.js';
import { DEFAULT_CONFIG_FILE } from '../../protocol/constants.js';
import { configFileFlag } from '../base.js';
import { defaultCacheFile } from './cache.js';

/** Seconds as a decimal number ("1.5"), returned in ms. */
export function parseSeconds(input: string, what = 'seconds'): number {
  if (!/^\d+(\.\d+)?$/.test(input.trim()))
    throw new Error(`${what}: expected seconds, got "${input}"`);
  return Math.round(Number(input) * 1000);
}

const secondsFlag = (summary: string) =>
  Flags.custom<number>({
    summary,
    helpValue: 'SECONDS',
    parse: async (input) => parseSeconds(input),
  })();

/** The flags every broker command shares. */
export const brokerFlags = {
  config: configFileFlag,
  url: Flags.string({
    summary: 'Broker URL (amqp:// or amqps://); repeat for a failover list. Overrides the config.',
    multiple: true,
    helpValue: 'URL',
  }),
  cluster: Flags.string({ summary: 'Cluster name. Overrides the config.', helpValue: 'NAME' }),
  'key-file': Flags.string({
    summary: 'Cluster key file (signs and verifies messages). Overrides the config.',
    helpValue: 'FILE',
  }),
  profile: Flags.string({
    summary: 'Broker address profile. Overrides the config.',
    options: [...PROFILE_NAMES],
  }),
  username: Flags.string({ summary: 'SASL user name. Overrides the config.', helpValue: 'USER' }),
  'password-file': Flags.string({
    summary: 'File whose first line is the SASL password. Overrides the config.',
    helpValue: 'FILE',
  }),
  wait: secondsFlag(
    'How long to listen for heartbeats and inventories (default: one heartbeat interval + 0.75 s).',
  ),
  'connect-timeout': secondsFlag('How long to try reaching the broker (default 5).'),
  'cache-file': Flags.string({
    summary:
      'Where to remember what was heard, so hosts that went silent stay known ' +
      '(default $XDG_CACHE_HOME/virtfence/observed-CLUSTER.json).',
    helpValue: 'FILE',
  }),
  cache: Flags.boolean({
    summary: 'Use the cache file (--no-cache: only what is heard now).',
    allowNo: true,
    default: true,
  }),
};

export interface BrokerFlagValues {
  config: string;
  url?: string[] | undefined;
  cluster?: string | undefined;
  'key-file'?: string | undefined;
  profile?: string | undefined;
  username?: string | undefined;
  'password-file'?: string | undefined;
  wait?: number | undefined;
  'connect-timeout'?: number | undefined;
  'cache-file'?: string | undefined;
  cache?: boolean | undefined;
}

export interface BrokerSettings {
  /** The config file read, if any. */
  configFile: string | undefined;
  amqp: AmqpConfig;
  profile: AddressProfile;
  key: Buffer;
  password: string | undefined;
  ca: Buffer | undefined;
  /** The observer's own bus id (owns nothing). */
  observerId: string;
  /** The host_id of the config file, if it names one (the host the CLI runs on). */
  configHostId: string | undefined;
  /** The `groups` permission map of the config file. */
  groups: GroupConfig[];
  waitMs: number;
  connectTimeoutMs: number;
  /** undefined: no cache. */
  cacheFile: string | undefined;
}

/** A settings problem, with the reason shown to the user (one line). */
export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsError';
  }
}

export function observerId(): string {
  return `virtfence-cli.${process.pid}.${randomBytes(3).toString('hex')}`;
}

/** The default listening time: a little over one heartbeat interval. */
export function defaultWaitMs(heartbeatIntervalMs: number): number {
  return heartbeatIntervalMs + 750;
}

/**
 * Reads the config (when present, or when named explicitly) and applies flag overrides.
 * `loadConfig` is the caller's loader (BaseCommand.loadConfig: one-line errors).
 */
export async function resolveBrokerSettings(
  flags: BrokerFlagValues,
  loadConfig: (file: string) => { tree: ConfigBlock; groups: GroupConfig[] },
): Promise<BrokerSettings> {
  let values: Record<string, string> = {};
  let groups: GroupConfig[] = [];
  let configFile: string | undefined;
  const explicit = flags.config !== DEFAULT_CONFIG_FILE;
  if (explicit || existsSync(flags.config)) {
    const loaded = loadConfig(flags.config);
    values = blockValues(loaded.tree, 'backends/amqp');
    groups = loaded.groups;
    configFile = flags.config;
  }
  const configHostId = values.host_id;
  if (flags.url && flags.url.length > 0) {
    for (const k of Object.keys(values)) if (/^url\d*$/.test(k)) delete values[k];
    flags.url.forEach((u, i) => (values[i === 0 ? 'url' : `url${i}`] = u));
  }
  if (flags.cluster !== undefined) values.cluster = flags.cluster;
  if (flags['key-file'] !== undefined) values.key_file = flags['key-file'];
  if (flags.profile !== undefined) values.profile = flags.profile;
  if (flags.username !== undefined) values.username = flags.username;
  if (flags['password-file'] !== undefined) {
    delete values.password;
    values.password_file = flags['password-file'];
  }
  const id = observerId();
  values.host_id = id;
  if (values.url === undefined && values.key_file === undefined) {
    throw new SettingsError(
      configFile
        ? `no broker configured: ${configFile} has no backends { amqp { url; key_file } } block (give --url and --key-file)`
        : `no broker configured: no ${flags.config} (give -f FILE, or --url and --key-file)`,
    );
  }
  const parsed = parseAmqpConfig(values, { hostId: id });
  if (!parsed.ok) {
    const where = configFile ? `${configFile} backends/amqp` : 'broker settings';
    const hint = configFile === undefined ? ` (no ${flags.config}: give --url and --key-file)` : '';
    throw new SettingsError(
      `${where}: ${parsed.problems.map((p) => `${p.key}: ${p.message}`).join('; ')}${hint}`,
    );
  }
  const amqp = parsed.config;
  let secrets;
  try {
    secrets = await loadAmqpSecrets(amqp);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const path = typeof e.path === 'string' ? e.path : amqp.keyFile;
    if (path === amqp.keyFile || /cluster key/.test(e.message)) {
      throw new SettingsError(
        `cluster key missing: cannot read ${amqp.keyFile} (${e.code ?? e.message})`,
      );
    }
    throw new SettingsError(`cannot read ${path}: ${e.code ?? e.message}`);
  }
  const profile = resolveProfile(amqp.profile, {
    ...(amqp.eventAddress !== undefined ? { eventAddress: amqp.eventAddress } : {}),
    ...(amqp.eventSubscribeAddress !== undefined
      ? { eventSubscribeAddress: amqp.eventSubscribeAddress }
      : {}),
    ...(amqp.requestAddress !== undefined ? { requestAddress: amqp.requestAddress } : {}),
    ...(amqp.replyAddress !== undefined ? { replyAddress: amqp.replyAddress } : {}),
  });
  return {
    configFile,
    amqp,
    profile,
    key: secrets.key,
    password: secrets.password,
    ca: secrets.ca,
    observerId: id,
    configHostId,
    groups,
    waitMs: flags.wait ?? defaultWaitMs(amqp.heartbeatInterval),
    connectTimeoutMs: flags['connect-timeout'] ?? 5000,
    cacheFile:
      flags.cache === false ? undefined : (flags['cache-file'] ?? defaultCacheFile(amqp.cluster)),
  };
}
