/**
 * What the observer records, shared by the observer, its cache and the views. A leaf module:
 * it imports no other module of the observer, so they cannot form an import cycle.
 */
import type { HostFencedBody, HostStatusBody, Message } from '../../messages/schemas.js';
import type { RejectReason } from '../../messages/sign.js';
import type {
  EvidenceInput,
  HeartbeatInput,
  InventoryInput,
  VmEventInput,
} from '../../routing/table.js';

export interface ObservedHost {
  id: string;
  /** Latest heartbeat or announce body. */
  status: HostStatusBody | undefined;
  statusType: 'heartbeat' | 'announce' | undefined;
  /** Our clock when the latest heartbeat/announce arrived. */
  lastStatusAt: number | undefined;
  /** Verified messages from this host. */
  verified: number;
  /** Messages claiming to come from this host that failed verification, by reason. */
  rejected: Partial<Record<RejectReason, number>>;
  /** Latest fencing evidence about this host. */
  evidence: (HostFencedBody & { publishedBy: string; receivedAt: number }) | undefined;
}

export interface ObservedVmEvent {
  uuid: string;
  name: string;
  host: string;
  event: number;
  detail: number;
  state: number;
  receivedAt: number;
}

export type TableInput =
  | { kind: 'event'; v: VmEventInput; at: number }
  | { kind: 'inventory'; v: InventoryInput; at: number }
  | { kind: 'heartbeat'; v: HeartbeatInput; at: number }
  | { kind: 'evidence'; v: EvidenceInput; at: number };

export type TraceSource = 'fanout' | 'reply' | 'firehose';
export type TraceListener = (message: Message, source: TraceSource, receivedAt: number) => void;
