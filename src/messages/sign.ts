/**
 * Message authenticity (docs/routing.md §9): HMAC-SHA-256 with the cluster key over the canonical JSON encoding
 * (canonical.ts) of the whole envelope except `sig`, as lowercase hex in `sig`.
 *
 * Verification order (the first failure is the reason): too-large, too-deep (both on the raw
 * text, before any parse or recursive walk), invalid-json, unsupported-version, schema,
 * wrong-cluster, bad-signature, out-of-window, replay. Only messages with a valid signature
 * enter the replay cache, so forged traffic cannot evict or poison it. verifyMessage never
 * throws: anything unexpected is `malformed`, so one message can only ever cost itself.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { KEY_MAX } from '../protocol/constants.js';
import { readKeyBytes, readKeyBytesAsync } from '../protocol/key-file.js';
import { canonicalJson } from './canonical.js';
import {
  MESSAGE_VERSION,
  MessageSchema,
  type BodyOf,
  type Message,
  type MessageOf,
  type MessageType,
  type UnsignedMessage,
} from './schemas.js';

/** Same cap as fence_xvm keys (docs/protocol.md §2.1): the same key file means the same key bytes. */
export const CLUSTER_KEY_MAX = KEY_MAX;
export const DEFAULT_WINDOW_MS = 30_000;
export const DEFAULT_REPLAY_CAPACITY = 100_000;
/**
 * Largest message accepted, in bytes (an inventory of about 30,000 VMs). Checked before parsing.
 */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Deepest nesting of objects and arrays accepted (ours nest 4 deep). Checked before parsing. */
export const MAX_MESSAGE_DEPTH = 16;

export type ClusterKey = Buffer;

function checkKey(key: Uint8Array): void {
  if (key.length === 0) throw new Error('cluster key is empty');
}

/** Raw bytes of a key file (every byte, trailing newline included), at most 4096. */
export async function readClusterKey(path: string): Promise<ClusterKey> {
  const key = await readKeyBytesAsync(path, CLUSTER_KEY_MAX);
  checkKey(key);
  return Buffer.from(key);
}

export function readClusterKeySync(path: string): ClusterKey {
  const key = readKeyBytes(path, CLUSTER_KEY_MAX);
  checkKey(key);
  return Buffer.from(key);
}

/** The bytes the signature covers: canonical JSON of the envelope without `sig`. */
export function signingInput(envelope: Record<string, unknown>): Buffer {
  const { sig: _sig, ...rest } = envelope;
  return Buffer.from(canonicalJson(rest), 'utf8');
}

function hmac(key: Uint8Array, data: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** Signs an envelope (any `sig` it has is ignored) and returns it with `sig`. */
export function signMessage<M extends UnsignedMessage>(
  envelope: M,
  key: Uint8Array,
): M & { sig: string } {
  checkKey(key);
  const sig = hmac(key, signingInput(envelope)).toString('hex');
  return { ...envelope, sig };
}

// ---------------------------------------------------------------------------------------
// Replay cache

/**
 * Ids of accepted messages, kept until their timestamp leaves the acceptance window. Bounded:
 * when full, expired entries go first; if it is still full the oldest entry is evicted and
 * its timestamp raises a floor below which every message counts as a replay. That keeps the
 * guarantee (no replay is ever accepted) at the cost of rejecting old-but-fresh messages
 * under a flood.
 */
export class ReplayCache {
  private readonly entries = new Map<string, number>();
  private floor = -Infinity;
  private evictions = 0;

  constructor(readonly capacity: number = DEFAULT_REPLAY_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be ≥ 1');
  }

  get size(): number {
    return this.entries.size;
  }

  get evicted(): number {
    return this.evictions;
  }

  /** True if `key` was seen (or is below the floor); otherwise records it and returns false. */
  checkAndAdd(key: string, ts: number, now: number, windowMs: number): boolean {
    if (this.entries.has(key) || ts <= this.floor) return true;
    if (this.entries.size >= this.capacity) this.prune(now, windowMs);
    while (this.entries.size >= this.capacity) {
      const oldest = this.entries.entries().next().value;
      if (!oldest) break;
      this.entries.delete(oldest[0]);
      this.floor = Math.max(this.floor, oldest[1]);
      this.evictions++;
    }
    this.entries.set(key, ts);
    return false;
  }

  /** Drops entries whose timestamp can no longer pass the window check. */
  prune(now: number, windowMs: number): void {
    for (const [key, ts] of this.entries) {
      if (ts < now - windowMs) this.entries.delete(key);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Verification

export const REJECT_REASONS = [
  'too-large',
  'too-deep',
  'malformed',
  'invalid-json',
  'unsupported-version',
  'schema',
  'wrong-cluster',
  'bad-signature',
  'out-of-window',
  'replay',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export type VerifyCounters = Record<RejectReason | 'accepted', number>;

export function createVerifyCounters(): VerifyCounters {
  const counters = { accepted: 0 } as VerifyCounters;
  for (const reason of REJECT_REASONS) counters[reason] = 0;
  return counters;
}

export type VerifyResult =
  | { ok: true; message: Message }
  | {
      ok: false;
      reason: RejectReason;
      /** Human-readable detail (never key material). */
      detail: string;
      /** For `schema`: the path of the first failing field. */
      path?: (string | number)[];
      /** Sender and id when they could be read (for logs; not authenticated). */
      from?: string;
      id?: string;
    };

export interface VerifyOptions {
  /** Our cluster name; messages of another cluster are `wrong-cluster`. */
  cluster: string;
  now?: number;
  windowMs?: number;
  /** Without a cache there is no replay check. */
  replayCache?: ReplayCache;
  /** Incremented once per call, by outcome. */
  counters?: VerifyCounters;
}

/** Cross-field rules a schema cannot express: the body speaks for the envelope's sender. */
function consistency(message: Message): { path: (string | number)[]; detail: string } | undefined {
  const sameHost = (field: string, value: string) =>
    value === message.from
      ? undefined
      : { path: ['body', field], detail: `${field} differs from envelope from` };
  switch (message.type) {
    case 'heartbeat':
    case 'announce':
    case 'vm-event':
    case 'inventory':
      if (message.body.epoch !== message.epoch) {
        return { path: ['body', 'epoch'], detail: 'epoch differs from envelope epoch' };
      }
      return sameHost('host', message.body.host);
    case 'fence-request':
    case 'fence-trace':
      return sameHost('originHost', message.body.originHost);
    case 'fence-reply':
      return sameHost('executingHost', message.body.executingHost);
    default:
      return undefined;
  }
}

function peek(obj: Record<string, unknown>): { from?: string; id?: string } {
  const out: { from?: string; id?: string } = {};
  if (typeof obj.from === 'string') out.from = obj.from.slice(0, 128);
  if (typeof obj.id === 'string') out.id = obj.id.slice(0, 128);
  return out;
}

/**
 * Deepest nesting of `[`/`{` in JSON text, outside strings; stops counting past `limit`.
 * Linear, no recursion: safe on any input.
 */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** Parses, validates and authenticates one raw message. Never throws. */
export function verifyMessage(
  raw: string | Uint8Array,
  key: Uint8Array,
  options: VerifyOptions,
): VerifyResult {
  let result: VerifyResult;
  try {
    result = verifyInner(raw, key, options);
  } catch (err) {
    result = {
      ok: false,
      reason: 'malformed',
      detail: `unexpected ${err instanceof Error ? err.name : 'error'}`,
    };
  }
  if (options.counters) {
    if (result.ok) options.counters.accepted++;
    else options.counters[result.reason]++;
  }
  return result;
}

function verifyInner(
  raw: string | Uint8Array,
  key: Uint8Array,
  options: VerifyOptions,
): VerifyResult {
  const bytes = typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.length;
  if (bytes > MAX_MESSAGE_BYTES) {
    return { ok: false, reason: 'too-large', detail: `${bytes} bytes > ${MAX_MESSAGE_BYTES}` };
  }
  const text = typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8');
  if (jsonDepth(text, MAX_MESSAGE_DEPTH) > MAX_MESSAGE_DEPTH) {
    return { ok: false, reason: 'too-deep', detail: `nested deeper than ${MAX_MESSAGE_DEPTH}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'invalid-json', detail: 'not JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { ok: false, reason: 'schema', detail: 'not a JSON object', path: [] };
  }
  const obj = parsed as Record<string, unknown>;
  const who = peek(obj);
  if ('v' in obj && obj.v !== MESSAGE_VERSION) {
    return {
      ok: false,
      reason: 'unsupported-version',
      detail: `version ${JSON.stringify(obj.v)?.slice(0, 32)}`,
      ...who,
    };
  }
  const schema = MessageSchema.safeParse(obj);
  if (!schema.success) {
    const issue = schema.error.issues[0];
    const path = (issue?.path ?? []).map((p) => (typeof p === 'number' ? p : String(p)));
    return {
      ok: false,
      reason: 'schema',
      detail: `${path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
      path,
      ...who,
    };
  }
  const message = schema.data;
  const inconsistent = consistency(message);
  if (inconsistent) {
    return {
      ok: false,
      reason: 'schema',
      detail: inconsistent.detail,
      path: inconsistent.path,
      ...who,
    };
  }
  if (message.cluster !== options.cluster) {
    return { ok: false, reason: 'wrong-cluster', detail: `cluster ${message.cluster}`, ...who };
  }
  if (key.length === 0) return { ok: false, reason: 'bad-signature', detail: 'no key', ...who };
  const expected = hmac(key, signingInput(obj));
  const given = Buffer.from(message.sig, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, reason: 'bad-signature', detail: 'signature mismatch', ...who };
  }
  const now = options.now ?? Date.now();
  const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
  if (Math.abs(now - message.ts) > windowMs) {
    return {
      ok: false,
      reason: 'out-of-window',
      detail: `ts off by ${message.ts - now} ms (window ±${windowMs} ms)`,
      ...who,
    };
  }
  if (
    options.replayCache?.checkAndAdd(
      `${message.from}\u0000${message.id}`,
      message.ts,
      now,
      windowMs,
    )
  ) {
    return { ok: false, reason: 'replay', detail: 'message id seen before', ...who };
  }
  return { ok: true, message };
}

/** A verifier bound to a key and cluster, with its own replay cache and counters. */
export class MessageVerifier {
  readonly counters = createVerifyCounters();
  readonly replayCache: ReplayCache;
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(
    private readonly key: Uint8Array,
    private readonly cluster: string,
    options: { windowMs?: number; replayCapacity?: number; now?: () => number } = {},
  ) {
    checkKey(key);
    this.windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    this.replayCache = new ReplayCache(options.replayCapacity ?? DEFAULT_REPLAY_CAPACITY);
    this.now = options.now ?? Date.now;
  }

  verify(raw: string | Uint8Array): VerifyResult {
    return verifyMessage(raw, this.key, {
      cluster: this.cluster,
      now: this.now(),
      windowMs: this.windowMs,
      replayCache: this.replayCache,
      counters: this.counters,
    });
  }
}

// ---------------------------------------------------------------------------------------
// Building messages

export interface MessageFactoryOptions {
  cluster: string;
  hostId: string;
  key: Uint8Array;
  /** Boot epoch; default: now. */
  epoch?: number;
  now?: () => number;
  /** Check every built message against its schema (default true): a message every receiver
   *  would drop as `schema` fails at the sender instead. */
  validate?: boolean;
}

/** A message the factory refused to build: it would not pass the receivers' schema check. */
export class MessageBuildError extends Error {
  constructor(
    readonly type: string,
    readonly path: (string | number)[],
    detail: string,
  ) {
    super(`invalid ${type} message at ${path.join('.') || '(root)'}: ${detail}`);
    this.name = 'MessageBuildError';
  }
}

/** Builds signed envelopes for one sender: fills v, cluster, from, epoch, seq, ts, id, sig. */
export class MessageFactory {
  readonly cluster: string;
  readonly hostId: string;
  readonly epoch: number;
  private seqValue = 0;
  private readonly key: Uint8Array;
  private readonly now: () => number;
  private readonly validate: boolean;

  constructor(options: MessageFactoryOptions) {
    checkKey(options.key);
    this.validate = options.validate ?? true;
    this.cluster = options.cluster;
    this.hostId = options.hostId;
    this.key = options.key;
    this.now = options.now ?? Date.now;
    this.epoch = options.epoch ?? this.now();
  }

  /** The sequence number the last created message carried (0 before the first). */
  get seq(): number {
    return this.seqValue;
  }

  create<T extends MessageType>(type: T, body: BodyOf<T>): MessageOf<T> {
    this.seqValue++;
    const unsigned = {
      v: MESSAGE_VERSION,
      type,
      cluster: this.cluster,
      from: this.hostId,
      epoch: this.epoch,
      seq: this.seqValue,
      ts: this.now(),
      id: randomUUID(),
      body,
    } as unknown as UnsignedMessage;
    const signed = signMessage(unsigned, this.key) as unknown as MessageOf<T>;
    if (this.validate) {
      const parsed = MessageSchema.safeParse(signed);
      const problem = parsed.success ? consistency(parsed.data) : undefined;
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const path = (issue?.path ?? []).map((p) => (typeof p === 'number' ? p : String(p)));
        this.seqValue--;
        throw new MessageBuildError(type, path, issue?.message ?? 'invalid');
      }
      if (problem) {
        this.seqValue--;
        throw new MessageBuildError(type, problem.path, problem.detail);
      }
    }
    return signed;
  }
}

/** The JSON text sent on the wire. */
export function encodeMessage(message: Message): string {
  return JSON.stringify(message);
}
