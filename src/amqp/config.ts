/**
 * The `backends { amqp { … } }` block of fence_virt.conf: raw key/values in, typed config out.
 *
 * Numbered lists follow the C `uri, uri1, uri2, …` rule: the plain key first, then 1, 2, …
 * until the first missing index.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { readClusterKey, type ClusterKey } from '../messages/sign.js';
import { blockKeys, keyProblems, readValues, typed, unknownKeys } from '../config/block.js';
import { AMQP_DEFAULTS, AmqpBlockSchema, amqpBackend } from '../config/plugins/backends.js';
import type { BlockConfig } from '../config/types.js';

export { AMQP_DEFAULTS };
export { numberedValues } from '../config/block.js';

/** The block's declaration (src/config/plugins/backends.ts): one zod field per key. */
const AMQP_BLOCK = amqpBackend.block;

/** Every key the block understands (numbered url/uri keys aside). */
export const AMQP_KEYS = blockKeys(AMQP_BLOCK);

/** The block's schema with its cross-key and per-profile rules (declared with the block). */
export const AmqpConfigSchema = AmqpBlockSchema;

export type AmqpConfig = BlockConfig<typeof AMQP_BLOCK>;

/** Keys of the block that this parser does not know (typos deserve a warning). */
export function unknownAmqpKeys(values: Record<string, string>): string[] {
  return unknownKeys(AMQP_BLOCK, values);
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
    return { ok: false, problems: keyProblems(parsed.error.issues) };
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
