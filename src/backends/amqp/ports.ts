/**
 * What the routed backend needs from its two collaborators, kept narrow so the real ClusterBus
 * (src/amqp) and LibvirtBackend (src/backends/libvirt) plug in through small adapters.
 */
import type { Backend, FenceOutcome, RequestContext } from '../backend.js';
import type { DomainInfo } from '../../libvirt/hypervisor.js';
import type { BodyOf, Message, MessageType } from '../../messages/schemas.js';

/** Answers one delivered request (fence replies). */
export type ReplyFn = <T extends MessageType>(type: T, body: BodyOf<T>) => Promise<void>;

/** The cluster message bus (verified messages only). */
export interface BusPort {
  /** Fan-out to every host of the cluster (heartbeats, VM events, inventories, evidence). */
  publish<T extends MessageType>(type: T, body: BodyOf<T>): Promise<void>;
  /** To one host's request queue (fence requests and replies). Rejects if not accepted. */
  sendToHost<T extends MessageType>(host: string, type: T, body: BodyOf<T>): Promise<void>;
  /**
   * Verified messages (our own fan-out echoes included; the backend skips them). `reply`
   * answers a request on the channel it came in on. Returns an unsubscribe function.
   */
  onMessage(handler: (message: Message, reply: ReplyFn) => void): () => void;
  onConnectionChange(handler: (up: boolean) => void): () => void;
  /**
   * Optional: a host whose signed messages are refused for their timestamp (its clock is
   * off by more than the window). It exists, so what it runs is unknown, not absent.
   */
  onOutOfWindow?(handler: (from: string) => void): () => void;
  isConnected(): boolean;
  /** The epoch stamped on this host's envelopes (body epochs must match it). */
  readonly epoch: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Optional, for buses with a group membership (CPG): hosts that left it. The routed backend
   * counts them dead at once instead of waiting `dead_after` for missing heartbeats.
   */
  onMembership?(handler: (change: MembershipChange) => void): () => void;
}

/** Hosts that left (or joined) a bus's membership; `reasons` by host, for logs. */
export interface MembershipChange {
  left: string[];
  joined: string[];
  reasons?: Record<string, string>;
}

/** A local domain change as the libvirt backend reports it (src/backends/libvirt/slot.ts). */
export interface DomainChange {
  uuid: string;
  name: string;
  /** virDomainEventType, real or synthesised from a list difference. */
  event: number;
  detail: number;
  /** State after the change (SHUTOFF when gone). */
  state: number;
  /** false when the domain no longer exists on this host. */
  present: boolean;
}

/** The local executor: the libvirt backend on this host's own URIs (LibvirtBackend fits). */
export interface LocalPort extends Backend {
  /** Every domain of every local URI (cached). */
  domains(): DomainInfo[] | Promise<DomainInfo[]>;
  /** The cached local domain a fence target names (UUID case-insensitively, else exact name). */
  findLocal(target: string): DomainInfo | undefined | Promise<DomainInfo | undefined>;
  onDomainChange(listener: (change: DomainChange) => void): () => void;
  /** Status from a fresh libvirt lookup, never from the cache: confirms the result of an action. */
  liveStatus(target: string, ctx: RequestContext): Promise<FenceOutcome>;
}
