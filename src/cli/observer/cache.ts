/**
 * What the CLI heard last time, kept between runs. A one-shot observer only learns what hosts
 * say while it listens: a host whose daemon died says nothing, so without memory its VMs would
 * look unknown instead of "owned by a dead host". The daemons keep that in memory; the CLI
 * keeps the compacted inputs of its ownership table (last inventory per host and the events
 * after it, last heartbeat, last fencing evidence) with the times they arrived, and replays
 * them before listening. Only verified messages ever enter it. Nothing secret is stored.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import {
  HostFencedBodySchema,
  HostStatusBodySchema,
  InventoryBodySchema,
  VmEventBodySchema,
} from '../../messages/schemas.js';
import { comparePosition } from '../../routing/table.js';
import type { ObservedHost, ObservedVmEvent, TableInput } from './types.js';

export const CACHE_VERSION = 1;
/** Events kept per host after its last inventory. */
const MAX_EVENTS_PER_HOST = 2000;

const TimeSchema = z.number().int().nonnegative();

const CacheSchema = z.object({
  version: z.literal(CACHE_VERSION),
  cluster: z.string(),
  savedAt: TimeSchema,
  inputs: z.array(
    z.discriminatedUnion('kind', [
      z.object({ kind: z.literal('event'), v: VmEventBodySchema, at: TimeSchema }),
      z.object({
        kind: z.literal('inventory'),
        v: InventoryBodySchema.pick({ host: true, epoch: true, seq: true, vms: true }),
        at: TimeSchema,
      }),
      z.object({
        kind: z.literal('heartbeat'),
        v: z.object({ host: z.string(), epoch: TimeSchema, seq: TimeSchema, sentAt: TimeSchema }),
        at: TimeSchema,
      }),
      z.object({
        kind: z.literal('evidence'),
        v: HostFencedBodySchema.pick({ host: true, fencedAt: true, by: true, epoch: true }),
        at: TimeSchema,
      }),
    ]),
  ),
  hosts: z.array(
    z.object({
      id: z.string(),
      status: HostStatusBodySchema.optional(),
      statusType: z.enum(['heartbeat', 'announce']).optional(),
      lastStatusAt: TimeSchema.optional(),
      evidence: HostFencedBodySchema.extend({
        publishedBy: z.string(),
        receivedAt: TimeSchema,
      }).optional(),
    }),
  ),
  events: z.array(
    z.object({
      uuid: z.string(),
      name: z.string(),
      host: z.string(),
      event: z.number().int(),
      detail: z.number().int(),
      state: z.number().int(),
      receivedAt: TimeSchema,
    }),
  ),
});

export interface CacheContent {
  inputs: TableInput[];
  hosts: ObservedHost[];
  events: ObservedVmEvent[];
}

/** `$XDG_CACHE_HOME/virtfence/observed-<cluster>.json` (default ~/.cache). */
export function defaultCacheFile(cluster: string): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'virtfence', `observed-${cluster}.json`);
}

/** The smallest input list that rebuilds the same table. */
export function compactInputs(inputs: readonly TableInput[]): TableInput[] {
  const lastHeartbeat = new Map<string, TableInput>();
  const lastEvidence = new Map<string, TableInput>();
  const lastInventory = new Map<string, Extract<TableInput, { kind: 'inventory' }>>();
  for (const input of inputs) {
    const host = input.v.host;
    if (input.kind === 'heartbeat') lastHeartbeat.set(host, input);
    else if (input.kind === 'evidence') {
      const prev = lastEvidence.get(host);
      if (!prev || (prev.v as { fencedAt: number }).fencedAt < input.v.fencedAt)
        lastEvidence.set(host, input);
    } else if (input.kind === 'inventory') {
      const prev = lastInventory.get(host);
      if (!prev || comparePosition(input.v, prev.v) > 0) lastInventory.set(host, input);
    }
  }
  const events = new Map<string, TableInput[]>();
  for (const input of inputs) {
    if (input.kind !== 'event') continue;
    const inv = lastInventory.get(input.v.host);
    if (inv && comparePosition(input.v, inv.v) <= 0) continue;
    const list = events.get(input.v.host) ?? [];
    list.push(input);
    events.set(input.v.host, list);
  }
  return [
    ...lastHeartbeat.values(),
    ...lastInventory.values(),
    ...[...events.values()].flatMap((l) => l.slice(-MAX_EVENTS_PER_HOST)),
    ...lastEvidence.values(),
  ];
}

/** Reads a cache; a missing, unreadable or foreign file is an empty cache. */
export function readCache(file: string, cluster: string): CacheContent | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  const parsed = CacheSchema.safeParse(raw);
  if (!parsed.success || parsed.data.cluster !== cluster) return undefined;
  const d = parsed.data;
  return {
    inputs: d.inputs,
    hosts: d.hosts.map((h) => ({
      id: h.id,
      status: h.status,
      statusType: h.statusType,
      lastStatusAt: h.lastStatusAt,
      verified: 0,
      rejected: {},
      evidence: h.evidence,
    })),
    events: d.events,
  };
}

export function writeCache(
  file: string,
  cluster: string,
  content: CacheContent,
  now: number,
): void {
  const data = {
    version: CACHE_VERSION,
    cluster,
    savedAt: now,
    inputs: compactInputs(content.inputs),
    hosts: content.hosts.map((h) => ({
      id: h.id,
      ...(h.status ? { status: h.status } : {}),
      ...(h.statusType ? { statusType: h.statusType } : {}),
      ...(h.lastStatusAt !== undefined ? { lastStatusAt: h.lastStatusAt } : {}),
      ...(h.evidence ? { evidence: h.evidence } : {}),
    })),
    events: content.events,
  };
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(data), { mode: 0o600 });
  renameSync(tmp, file);
}

/** Cached knowledge older than this is dropped (a host silent for a day is history). */
export const CACHE_MAX_AGE_MS = 24 * 3600 * 1000;

/** Drops hosts (and their inputs and events) last heard before `now - maxAge`. */
export function pruneCache(
  content: CacheContent,
  now: number,
  maxAgeMs: number = CACHE_MAX_AGE_MS,
): CacheContent {
  const cutoff = now - maxAgeMs;
  const lastHeard = new Map<string, number>();
  for (const input of content.inputs) {
    const host = input.v.host;
    lastHeard.set(host, Math.max(lastHeard.get(host) ?? 0, input.at));
  }
  const keep = (host: string) => (lastHeard.get(host) ?? 0) >= cutoff;
  return {
    inputs: content.inputs.filter((i) => keep(i.v.host)),
    hosts: content.hosts.filter((h) => keep(h.id)),
    events: content.events.filter((e) => keep(e.host) && e.receivedAt >= cutoff),
  };
}
