/**
 * The messages that cross the AMQP broker between virtfence hosts: the single source of truth.
 *
 * Every message is an envelope `{v, type, cluster, from, epoch, seq, ts, id, body, sig}`;
 * `type` selects the body schema. `schemas/*.json` are generated from these definitions
 * (`npm run schemas`); a unit test fails when a committed file is stale.
 *
 * Unknown object keys are tolerated and stripped on parse (a newer v1 sender may add optional
 * fields); a breaking change bumps `v`. The signature covers the raw object, unknown keys
 * included (see sign.ts).
 */
import { z } from 'zod';
import { FENCE_ACTIONS } from '../core/fence.js';

/** The envelope format version this code speaks. */
export const MESSAGE_VERSION = 1 as const;

/** Host ids and cluster names end up in broker address names: keep them address-safe. */
export const IdentifierSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_", "-" (first: letter or digit)');

export const HostIdSchema = IdentifierSchema.describe('Host id (fence_virtd host_id)');
export const ClusterNameSchema = IdentifierSchema.describe('Cluster name');

export const UuidSchema = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/)
  .describe('UUID, 8-4-4-4-12 hex');

/** Milliseconds since the Unix epoch. */
export const TimestampSchema = z.number().int().nonnegative().describe('ms since the Unix epoch');
const Count = z.number().int().nonnegative();
/** libvirt virDomainState (0 nostate … 7 pmsuspended); later libvirt values are accepted. */
export const DomainStateSchema = z
  .number()
  .int()
  .min(0)
  .max(255)
  .describe('libvirt virDomainState');
export const VmNameSchema = z.string().min(1).max(1024);

export const FenceActionSchema = z.enum(FENCE_ACTIONS);
/** Result codes of the fence-virt protocol: 0 success/on, 1 fail, 2 off/unknown, 3 denied. */
export const ResultCodeSchema = z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]);

// ---------------------------------------------------------------------------------------
// Bodies

/** Periodic liveness beacon and the one-off announcement a host sends when it (re)starts. */
export const HostStatusBodySchema = z
  .object({
    host: HostIdSchema,
    /** Boot epoch of the sending daemon (ms when it started); changes on every restart. */
    epoch: TimestampSchema,
    /** The sender's envelope sequence at the time of sending. */
    seq: Count,
    software: z.object({ name: z.string().min(1).max(64), version: z.string().min(1).max(64) }),
    /** Version of this message protocol (MESSAGE_VERSION). */
    protocolVersion: z.number().int().positive(),
    vmCount: Count,
    /** Local listener names (multicast, tcp, serial, vsock). */
    listeners: z.array(z.string().min(1).max(64)).max(16),
    /** Heartbeat period the sender uses, so receivers can judge liveness. */
    intervalMs: z.number().int().positive().optional(),
    /** Sequence of the host's latest VM event or inventory, for gap detection. */
    inventorySeq: Count.optional(),
  })
  .describe('Host heartbeat / announce');

/** One libvirt lifecycle event of one VM. */
export const VmEventBodySchema = z
  .object({
    uuid: UuidSchema,
    name: VmNameSchema,
    state: DomainStateSchema,
    /** virDomainEventType (0 defined … 8 crashed); -1 when synthesised from a state poll. */
    event: z.number().int().min(-1).max(255),
    /** Event detail code (meaning depends on `event`). */
    detail: z.number().int().min(-1).max(255),
    host: HostIdSchema,
    epoch: TimestampSchema,
    /** Per-host inventory sequence: increases with every event and snapshot. */
    seq: Count,
  })
  .describe('VM lifecycle event');

export const InventoryVmSchema = z.object({
  uuid: UuidSchema,
  name: VmNameSchema,
  state: DomainStateSchema,
});

/** All VMs of a host at (epoch, seq). Replaces everything previously known about that host. */
export const InventoryBodySchema = z
  .object({
    host: HostIdSchema,
    epoch: TimestampSchema,
    seq: Count,
    vms: z.array(InventoryVmSchema).max(100000),
    /** The resync request this snapshot answers, if any. */
    inReplyTo: z.string().min(1).max(128).optional(),
    /**
     * Other hosts the sender has heard from (alive or not), so a daemon that (re)starts while
     * a host is silent still learns that it exists and may run VMs.
     */
    peers: z.array(HostIdSchema).max(1024).optional(),
  })
  .describe('Inventory snapshot');

/** Ask hosts (all, or one) to publish an inventory snapshot. */
export const ResyncRequestBodySchema = z
  .object({
    /** Host whose inventory is wanted; absent: every host. */
    target: HostIdSchema.optional(),
    reason: z.string().max(256),
  })
  .describe('Resync request');

export const FenceRequestBodySchema = z
  .object({
    requestId: z.string().min(1).max(128),
    /** Host whose listener received the request. */
    originHost: HostIdSchema,
    /** Listener that received it: multicast, tcp, serial, vsock. */
    listener: z.string().min(1).max(64),
    /** Requester identity the listener authenticated: IP, VM UUID or vsock CID. */
    requester: z.string().max(256),
    /** VM name or UUID, as the requester gave it. */
    target: z.string().min(1).max(1024),
    targetKind: z.enum(['name', 'uuid']),
    action: FenceActionSchema,
    /** ms since the epoch after which an answer is useless and must not be acted upon. */
    deadline: TimestampSchema,
    /** Host this request is addressed to (the owner, or a claimant). */
    toHost: HostIdSchema,
    /** The fence-virt request sequence number, for duplicate suppression. */
    fenceSeqno: z.number().int().nonnegative().max(0xffffffff).optional(),
    /**
     * The boot epoch of `toHost` the sender knew: a daemon of another epoch (restarted, its
     * record of executed requests gone) refuses it instead of executing a stale copy again.
     */
    toEpoch: TimestampSchema.optional(),
  })
  .describe('Fence request');

export const FenceReplyBodySchema = z
  .object({
    requestId: z.string().min(1).max(128),
    code: ResultCodeSchema,
    /** Machine-readable reason (e.g. "done", "not-owner", "deadline", "libvirt-error"). */
    reason: z.string().min(1).max(256),
    executingHost: HostIdSchema,
    /** VM state after the action, when known. */
    vmState: DomainStateSchema.nullable(),
    timings: z.object({
      received: TimestampSchema,
      started: TimestampSchema.optional(),
      finished: TimestampSchema,
    }),
  })
  .describe('Fence reply');

/** Evidence that a host was fenced, so its VMs may be treated as off. */
export const HostFencedBodySchema = z
  .object({
    host: HostIdSchema,
    /** The fenced host's last known boot epoch, if known. */
    epoch: TimestampSchema.optional(),
    fencedAt: TimestampSchema,
    /** Who fenced it (host id, operator, stonith device). */
    by: z.string().min(1).max(256),
    evidence: z.string().max(4096),
  })
  .describe('Host fenced evidence');

/**
 * What the origin host answered for one fence request, published on the cluster address so an
 * observer (`virtfence trace`) sees fence traffic on any broker. Informational: never acted upon.
 */
export const FenceTraceBodySchema = z
  .object({
    requestId: z.string().min(1).max(128),
    /** Host whose listener received the request and answered it. */
    originHost: HostIdSchema,
    listener: z.string().min(1).max(64),
    requester: z.string().max(256),
    action: FenceActionSchema,
    target: z.string().min(1).max(1024),
    /** Hosts that executed it (empty when answered without execution). */
    executedBy: z.array(HostIdSchema).max(64),
    code: ResultCodeSchema,
    reason: z.string().min(1).max(256),
    /** True when this caller shared an execution already under way or cached. */
    shared: z.boolean(),
    received: TimestampSchema,
    answered: TimestampSchema,
  })
  .describe('Fence trace');

// ---------------------------------------------------------------------------------------
// Envelope

export const SignatureSchema = z
  .string()
  .regex(/^[0-9a-f]{64}$/)
  .describe('HMAC-SHA-256, lowercase hex');

const envelopeFields = {
  v: z.literal(MESSAGE_VERSION),
  cluster: ClusterNameSchema,
  from: HostIdSchema,
  /** Boot epoch of the sender (ms when its daemon started). */
  epoch: TimestampSchema,
  /** Per-sender monotonic sequence within an epoch. */
  seq: Count,
  /** Send time, ms since the epoch. */
  ts: TimestampSchema,
  /** Unique message id (replay protection). */
  id: z.string().min(8).max(128),
  sig: SignatureSchema,
};

function envelope<T extends string, B extends z.ZodType>(type: T, body: B) {
  return z.object({ ...envelopeFields, type: z.literal(type), body });
}

export const MessageSchemas = {
  heartbeat: envelope('heartbeat', HostStatusBodySchema),
  announce: envelope('announce', HostStatusBodySchema),
  'vm-event': envelope('vm-event', VmEventBodySchema),
  inventory: envelope('inventory', InventoryBodySchema),
  'resync-request': envelope('resync-request', ResyncRequestBodySchema),
  'fence-request': envelope('fence-request', FenceRequestBodySchema),
  'fence-reply': envelope('fence-reply', FenceReplyBodySchema),
  'host-fenced': envelope('host-fenced', HostFencedBodySchema),
  'fence-trace': envelope('fence-trace', FenceTraceBodySchema),
} as const;

export type MessageType = keyof typeof MessageSchemas;
export const MESSAGE_TYPES = Object.keys(MessageSchemas) as MessageType[];

export const MessageSchema = z.discriminatedUnion('type', [
  MessageSchemas.heartbeat,
  MessageSchemas.announce,
  MessageSchemas['vm-event'],
  MessageSchemas.inventory,
  MessageSchemas['resync-request'],
  MessageSchemas['fence-request'],
  MessageSchemas['fence-reply'],
  MessageSchemas['host-fenced'],
  MessageSchemas['fence-trace'],
]);

export type Message = z.infer<typeof MessageSchema>;
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;
export type BodyOf<T extends MessageType> = MessageOf<T>['body'];
/** A message before signing. */
export type UnsignedMessage = DistributiveOmit<Message, 'sig'>;
export type UnsignedMessageOf<T extends MessageType> = Omit<MessageOf<T>, 'sig'>;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export type HostStatusBody = z.infer<typeof HostStatusBodySchema>;
export type VmEventBody = z.infer<typeof VmEventBodySchema>;
export type InventoryVm = z.infer<typeof InventoryVmSchema>;
export type InventoryBody = z.infer<typeof InventoryBodySchema>;
export type ResyncRequestBody = z.infer<typeof ResyncRequestBodySchema>;
export type FenceRequestBody = z.infer<typeof FenceRequestBodySchema>;
export type FenceReplyBody = z.infer<typeof FenceReplyBodySchema>;
export type HostFencedBody = z.infer<typeof HostFencedBodySchema>;
export type FenceTraceBody = z.infer<typeof FenceTraceBodySchema>;
export type FenceActionName = z.infer<typeof FenceActionSchema>;
export type ResultCode = z.infer<typeof ResultCodeSchema>;

export type HeartbeatMessage = MessageOf<'heartbeat'>;
export type AnnounceMessage = MessageOf<'announce'>;
export type VmEventMessage = MessageOf<'vm-event'>;
export type InventoryMessage = MessageOf<'inventory'>;
export type ResyncRequestMessage = MessageOf<'resync-request'>;
export type FenceRequestMessage = MessageOf<'fence-request'>;
export type FenceReplyMessage = MessageOf<'fence-reply'>;
export type HostFencedMessage = MessageOf<'host-fenced'>;
export type FenceTraceMessage = MessageOf<'fence-trace'>;
