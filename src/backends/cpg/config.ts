/**
 * The `backends { cpg { … } }` block: raw key/values in, typed config out. The keys are declared
 * once in src/config/plugins/backends.ts (C's `uri`, `uri1`, …, `name_mode`, and ours); the
 * legacy `fence_virtd/name_mode` is read when the block has none, as C does. Pure: no file is
 * read here.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { blockKeys, keyProblems, readValues, typed, unknownKeys } from '../../config/block.js';
import { CPG_DEFAULTS, cpgBackend } from '../../config/plugins/backends.js';
import type { BlockConfig } from '../../config/types.js';

export { CPG_DEFAULTS };

const CPG_BLOCK = cpgBackend.block;

/** Every key the block understands (numbered uri keys aside). */
export const CPG_KEYS = blockKeys(CPG_BLOCK);

/** Corosync's own key: root-only, identical on every node of the cluster. */
export const COROSYNC_AUTHKEY = '/etc/corosync/authkey';

export const CpgConfigSchema = CPG_BLOCK.raw.refine((c) => c.dead_after > c.heartbeat_interval, {
  message: 'dead_after must be longer than heartbeat_interval',
  path: ['dead_after'],
});

export type CpgConfig = BlockConfig<typeof CPG_BLOCK>;

export class CpgConfigError extends Error {
  constructor(readonly problems: { key: string; message: string }[]) {
    super(`backends/cpg: ${problems.map((p) => `${p.key}: ${p.message}`).join('; ')}`);
    this.name = 'CpgConfigError';
  }
}

export type CpgParseResult =
  | { ok: true; config: CpgConfig; unknownKeys: string[] }
  | { ok: false; problems: { key: string; message: string }[] };

/**
 * `values`: the raw cpg block. `legacyNameMode`: `fence_virtd/name_mode`, which C reads when the
 * block has none.
 */
export function parseCpgConfig(
  values: Record<string, string>,
  options: { legacyNameMode?: string; hostId?: string } = {},
): CpgParseResult {
  const nameMode = values.name_mode ?? options.legacyNameMode;
  const input = readValues(CPG_BLOCK, {
    ...values,
    ...(nameMode !== undefined ? { name_mode: nameMode } : {}),
    host_id: values.host_id ?? options.hostId ?? hostname(),
  });
  const parsed = CpgConfigSchema.safeParse(input);
  if (!parsed.success) {
    return { ok: false, problems: keyProblems(parsed.error.issues) };
  }
  return {
    ok: true,
    config: typed(CPG_BLOCK, parsed.data),
    unknownKeys: unknownKeys(CPG_BLOCK, values),
  };
}

export function parseCpgConfigOrThrow(
  values: Record<string, string>,
  options: { legacyNameMode?: string; hostId?: string } = {},
): { config: CpgConfig; unknownKeys: string[] } {
  const r = parseCpgConfig(values, options);
  if (!r.ok) throw new CpgConfigError(r.problems);
  return { config: r.config, unknownKeys: r.unknownKeys };
}

/**
 * Where the message-signing key comes from: `key_file` if set (must be readable), else
 * corosync's authkey when it exists, else none (messages then rest on corosync alone).
 */
export function clusterKeySource(
  config: CpgConfig,
  exists: (path: string) => boolean = existsSync,
): { path: string; explicit: boolean } | undefined {
  if (config.keyFile !== undefined) return { path: config.keyFile, explicit: true };
  if (exists(COROSYNC_AUTHKEY)) return { path: COROSYNC_AUTHKEY, explicit: false };
  return undefined;
}
