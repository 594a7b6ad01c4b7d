/**
 * The `backends { amqp { … } }` block of fence_virt.conf: raw key/values in, typed config out.
 *
 * Numbered lists follow the C `uri, uri1, uri2, …` rule: the plain key first, then 1, 2, …
 * until the first missing index.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { readClusterKey, type ClusterKey } from '../messages/sign.js';
import { blockKeys, issueKey, knownKeyPatterns, readValues, typed } from '../config/block.js';
import { AMQP_DEFAULTS, amqpBackend } from '../config/plugins/backends.js';
import type { BlockConfig } from '../config/types.js';
import { profileProblems } from './profiles.js';

export { AMQP_DEFAULTS };
export { numberedValues } from '../config/block.js';

/** The block's declaration (src/config/plugins/backends.ts): one zod field per key. */
const AMQP_BLOCK = amqpBackend.block;

/** Every key the block understands (numbered url/uri keys aside). */
export const AMQP_KEYS = blockKeys(AMQP_BLOCK);

/** dead_after must exceed heartbeat_interval; password and password_file exclude each other;
 *  the profile's own rules. */
export const AmqpConfigSchema = AMQP_BLOCK.raw
  .refine((c) => c.dead_after > c.heartbeat_interval, {
    message: 'dead_after must be longer than heartbeat_interval',
    path: ['dead_after'],
  })
  .refine((c) => !(c.password !== undefined && c.password_file !== undefined), {
    message: 'give password or password_file, not both',
    path: ['password_file'],
  })
  // Each profile's rules (e.g. activemq needs a username): the daemon and `config check` alike.
  .superRefine((c, ctx) => {
    const problems = profileProblems({
      profile: c.profile,
      urls: c.url,
      username: c.username,
      eventAddress: c.event_address,
      eventSubscribeAddress: c.event_subscribe_address,
      requestAddress: c.request_address,
      replyAddress: c.reply_address,
    });
    for (const p of problems) ctx.addIssue({ code: 'custom', message: p.message, path: [p.key] });
  });

export type AmqpConfig = BlockConfig<typeof AMQP_BLOCK>;

/** Keys of the block that this parser does not know (typos deserve a warning). */
export function unknownAmqpKeys(values: Record<string, string>): string[] {
  const known = knownKeyPatterns(AMQP_BLOCK);
  return Object.keys(values).filter(
    (k) => !known.some((p) => (typeof p === 'string' ? p === k : p.test(k))),
  );
}

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
  const input = readValues(AMQP_BLOCK, {
    ...values,
    host_id: values.host_id ?? defaults.hostId ?? hostname(),
  });
  const parsed = AmqpConfigSchema.safeParse(input);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((issue) => ({
        key: issueKey(issue.path) || '(block)',
        message: issue.message,
      })),
    };
  }
  const config: AmqpConfig = typed(AMQP_BLOCK, parsed.data);
  return { ok: true, config, unknownKeys: unknownAmqpKeys(values) };
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
