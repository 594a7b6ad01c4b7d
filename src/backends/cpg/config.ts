/**
 * The `backends { cpg { … } }` block: the C plugin's keys (`uri`, `uri1`, …, `name_mode`, and
 * the legacy `fence_virtd/name_mode`) read as C reads them, plus ours for the routing layer.
 * Pure: no file is read here.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { IdentifierSchema } from '../../messages/schemas.js';
import { numberedValues } from '../../amqp/config.js';

/** Every key the block understands (numbered uri keys aside): one list for parser and check. */
export const CPG_KEYS = [
  'uri',
  'name_mode',
  'group',
  'host_id',
  'key_file',
  'heartbeat_interval',
  'dead_after',
  'fence_history',
] as const;

/** Our CPG group. Not C's `fence-agents`: the two speak different formats (README). */
export const CPG_DEFAULT_GROUP = 'virtfence';
/** Corosync's own key: root-only, identical on every node of the cluster. */
export const COROSYNC_AUTHKEY = '/etc/corosync/authkey';

export const CPG_DEFAULTS = {
  group: CPG_DEFAULT_GROUP,
  heartbeatInterval: 1000,
  deadAfter: 5000,
  nameMode: 'name' as const,
  fenceHistory: 'none' as const,
};

const ms = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'milliseconds, a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

export const CpgConfigSchema = z
  .object({
    uris: z
      .array(z.string().min(1))
      .min(1, "uri is required (this host's libvirt URI, e.g. qemu:///system)"),
    // C compares with strcasecmp and treats anything but "uuid" as name mode.
    nameMode: z
      .string()
      .optional()
      .transform((v) => (v !== undefined && v.toLowerCase() === 'uuid' ? 'uuid' : 'name')),
    group: z
      .string()
      .min(1)
      .max(127, 'at most 127 bytes (CPG group names)')
      .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-"')
      .default(CPG_DEFAULTS.group),
    hostId: IdentifierSchema,
    keyFile: z.string().min(1).optional(),
    heartbeatInterval: ms(50, 600_000).default(CPG_DEFAULTS.heartbeatInterval),
    deadAfter: ms(100, 3_600_000).default(CPG_DEFAULTS.deadAfter),
    fenceHistory: z.enum(['none', 'pacemaker']).default(CPG_DEFAULTS.fenceHistory),
  })
  .refine((c) => c.deadAfter > c.heartbeatInterval, {
    message: 'dead_after must be longer than heartbeat_interval',
    path: ['deadAfter'],
  });

export type CpgConfig = z.output<typeof CpgConfigSchema>;

const FIELD_TO_KEY: Record<string, string> = {
  uris: 'uri',
  nameMode: 'name_mode',
  hostId: 'host_id',
  keyFile: 'key_file',
  heartbeatInterval: 'heartbeat_interval',
  deadAfter: 'dead_after',
  fenceHistory: 'fence_history',
};

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
  const parsed = CpgConfigSchema.safeParse({
    uris: numberedValues(values, 'uri'),
    nameMode: values.name_mode ?? options.legacyNameMode,
    group: values.group,
    hostId: values.host_id ?? options.hostId ?? hostname(),
    keyFile: values.key_file,
    heartbeatInterval: values.heartbeat_interval,
    deadAfter: values.dead_after,
    fenceHistory: values.fence_history,
  });
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((issue) => {
        const field = String(issue.path[0] ?? '');
        return { key: FIELD_TO_KEY[field] ?? (field || '(block)'), message: issue.message };
      }),
    };
  }
  const known = new Set<string>(CPG_KEYS);
  const unknownKeys = Object.keys(values).filter((k) => !known.has(k) && !/^uri\d+$/.test(k));
  return { ok: true, config: parsed.data, unknownKeys };
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
