/**
 * The `backends { amqp { … } }` block of fence_virt.conf: raw key/values in, typed config out.
 *
 * Numbered lists follow the C `uri, uri1, uri2, …` rule: the plain key first, then 1, 2, …
 * until the first missing index.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { z } from 'zod';
import { IdentifierSchema } from '../messages/schemas.js';
import { readClusterKey, type ClusterKey } from '../messages/sign.js';
import { AMQP_KEYS } from './keys.js';
import {
  PROFILE_NAMES,
  profileProblems,
  templatePlaceholders,
  type ProfileName,
} from './profiles.js';

export const AMQP_DEFAULTS = {
  cluster: 'virtfence',
  profile: 'rabbitmq3' as ProfileName,
  heartbeatInterval: 1000,
  deadAfter: 5000,
  idleTimeout: 5000,
  maxReconnectDelay: 2000,
  sendTimeout: 5000,
  nameMode: 'name' as const,
};

export { AMQP_KEYS };

const boolFlag = z
  .enum(['0', '1', 'yes', 'no', 'true', 'false', 'on', 'off'])
  .transform((v) => ['1', 'yes', 'true', 'on'].includes(v));

const ms = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'milliseconds, a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const brokerUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'amqp:' || u.protocol === 'amqps:') && u.hostname !== '';
  } catch {
    return false;
  }
}, 'an amqp://host[:port] or amqps://host[:port] URL');

const template = (needsHost: boolean) =>
  z
    .string()
    .min(1)
    .refine(
      (t) => templatePlaceholders(t).every((p) => p === 'cluster' || p === 'host'),
      'only {cluster} and {host} placeholders',
    )
    .refine(
      (t) => !needsHost || templatePlaceholders(t).includes('host'),
      'must contain {host} (one address per host)',
    );

export const AmqpConfigSchema = z
  .object({
    urls: z.array(brokerUrl).min(1, 'url is required'),
    username: z.string().min(1).optional(),
    password: z.string().optional(),
    passwordFile: z.string().min(1).optional(),
    tls: boolFlag.default(false),
    caFile: z.string().min(1).optional(),
    cluster: IdentifierSchema.default(AMQP_DEFAULTS.cluster),
    hostId: IdentifierSchema,
    keyFile: z.string().min(1, 'key_file is required'),
    profile: z.enum(PROFILE_NAMES).default(AMQP_DEFAULTS.profile),
    eventAddress: template(false).optional(),
    eventSubscribeAddress: template(false).optional(),
    requestAddress: template(true).optional(),
    replyAddress: template(true).optional(),
    heartbeatInterval: ms(50, 600_000).default(AMQP_DEFAULTS.heartbeatInterval),
    deadAfter: ms(100, 3_600_000).default(AMQP_DEFAULTS.deadAfter),
    uris: z.array(z.string().min(1)),
    containerId: IdentifierSchema.optional(),
    idleTimeout: ms(0, 600_000).default(AMQP_DEFAULTS.idleTimeout),
    maxReconnectDelay: ms(10, 60_000).default(AMQP_DEFAULTS.maxReconnectDelay),
    sendTimeout: ms(100, 600_000).default(AMQP_DEFAULTS.sendTimeout),
    nameMode: z.enum(['name', 'uuid']).default(AMQP_DEFAULTS.nameMode),
  })
  .refine((c) => c.deadAfter > c.heartbeatInterval, {
    message: 'dead_after must be longer than heartbeat_interval',
    path: ['deadAfter'],
  })
  .refine((c) => !(c.password !== undefined && c.passwordFile !== undefined), {
    message: 'give password or password_file, not both',
    path: ['passwordFile'],
  })
  .superRefine((c, ctx) => {
    for (const problem of profileProblems(c)) {
      ctx.addIssue({
        code: 'custom',
        message: problem.message,
        path: [KEY_TO_FIELD[problem.key] ?? problem.key],
      });
    }
  });

export type AmqpConfig = z.output<typeof AmqpConfigSchema>;

/** url, url1, url2, … (stops at the first missing index). */
export function numberedValues(values: Record<string, string>, base: string): string[] {
  const out: string[] = [];
  const first = values[base];
  if (first === undefined) return out;
  out.push(first);
  for (let i = 1; ; i++) {
    const next = values[`${base}${i}`];
    if (next === undefined) break;
    out.push(next);
  }
  return out;
}

/** Keys of the block that this parser does not know (typos deserve a warning). */
export function unknownAmqpKeys(values: Record<string, string>): string[] {
  const known = new Set<string>(AMQP_KEYS);
  return Object.keys(values).filter((k) => !known.has(k) && !/^(url|uri)\d+$/.test(k));
}

const FIELD_TO_KEY: Record<string, string> = {
  urls: 'url',
  passwordFile: 'password_file',
  caFile: 'ca_file',
  hostId: 'host_id',
  keyFile: 'key_file',
  eventAddress: 'event_address',
  eventSubscribeAddress: 'event_subscribe_address',
  requestAddress: 'request_address',
  replyAddress: 'reply_address',
  heartbeatInterval: 'heartbeat_interval',
  deadAfter: 'dead_after',
  uris: 'uri',
  containerId: 'container_id',
  idleTimeout: 'idle_time_out',
  maxReconnectDelay: 'max_reconnect_delay',
  sendTimeout: 'send_timeout',
  nameMode: 'name_mode',
};

const KEY_TO_FIELD: Record<string, string> = Object.fromEntries(
  Object.entries(FIELD_TO_KEY).map(([field, key]) => [key, field]),
);

export class AmqpConfigError extends Error {
  constructor(readonly problems: { key: string; message: string }[]) {
    super(`backends/amqp: ${problems.map((p) => `${p.key}: ${p.message}`).join('; ')}`);
    this.name = 'AmqpConfigError';
  }
}

export type AmqpParseResult =
  | { ok: true; config: AmqpConfig; unknownKeys: string[] }
  | { ok: false; problems: { key: string; message: string }[] };

/** Parses the raw key/values of the amqp block. Pure: no file is read. */
export function parseAmqpConfig(
  values: Record<string, string>,
  defaults: { hostId?: string } = {},
): AmqpParseResult {
  const input = {
    urls: numberedValues(values, 'url'),
    username: values.username,
    password: values.password,
    passwordFile: values.password_file,
    tls: values.tls,
    caFile: values.ca_file,
    cluster: values.cluster,
    hostId: values.host_id ?? defaults.hostId ?? hostname(),
    keyFile: values.key_file ?? '',
    profile: values.profile,
    eventAddress: values.event_address,
    eventSubscribeAddress: values.event_subscribe_address,
    requestAddress: values.request_address,
    replyAddress: values.reply_address,
    heartbeatInterval: values.heartbeat_interval,
    deadAfter: values.dead_after,
    uris: numberedValues(values, 'uri'),
    containerId: values.container_id,
    idleTimeout: values.idle_time_out,
    maxReconnectDelay: values.max_reconnect_delay,
    sendTimeout: values.send_timeout,
    nameMode: values.name_mode,
  };
  const parsed = AmqpConfigSchema.safeParse(input);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((issue) => {
        const field = String(issue.path[0] ?? '');
        const index = issue.path[1];
        const base = FIELD_TO_KEY[field] ?? field;
        const key = typeof index === 'number' && index > 0 ? `${base}${index}` : base;
        return { key: key || '(block)', message: issue.message };
      }),
    };
  }
  return { ok: true, config: parsed.data, unknownKeys: unknownAmqpKeys(values) };
}

/** parseAmqpConfig that throws AmqpConfigError. */
export function parseAmqpConfigOrThrow(
  values: Record<string, string>,
  defaults: { hostId?: string } = {},
): { config: AmqpConfig; unknownKeys: string[] } {
  const result = parseAmqpConfig(values, defaults);
  if (!result.ok) throw new AmqpConfigError(result.problems);
  return { config: result.config, unknownKeys: result.unknownKeys };
}

export interface AmqpSecrets {
  key: ClusterKey;
  password: string | undefined;
  ca: Buffer | undefined;
}

/** Reads the cluster key, the password file (first line) and the CA file. */
export async function loadAmqpSecrets(config: AmqpConfig): Promise<AmqpSecrets> {
  const key = await readClusterKey(config.keyFile);
  let password = config.password;
  if (config.passwordFile !== undefined) {
    password = (await readFile(config.passwordFile, 'utf8')).split(/\r?\n/)[0] ?? '';
  }
  const ca = config.caFile !== undefined ? await readFile(config.caFile) : undefined;
  return { key, password, ca };
}
