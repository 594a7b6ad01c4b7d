/** Trace records: what `virtfence trace` prints for each message it hears. Pure. */
import type { Message, MessageType } from '../../messages/schemas.js';
import { replyKey } from '../../messages/reply.js';
import type { TraceSource } from './types.js';
import { eventName, resultName, stateName } from './format.js';

export interface TraceRecord {
  at: string;
  type: MessageType;
  source: TraceSource;
  from: string;
  to: string | null;
  requestId: string | null;
  action: string | null;
  target: string | null;
  vm: string | null;
  uuid: string | null;
  host: string | null;
  event: string | null;
  state: string | null;
  code: number | null;
  result: string | null;
  reason: string | null;
  /** Request seen → reply seen, our clock (fence-reply only, when the request was seen). */
  latencyMs: number | null;
  /** Executing host: received → finished (its clock). */
  executionMs: number | null;
  detail: string;
}

export interface TraceFilter {
  vm?: string | undefined;
  host?: string | undefined;
  types: ReadonlySet<MessageType>;
}

/** Turns messages into records and pairs replies with requests. */
export class TraceBook {
  private readonly requests = new Map<string, { at: number; target: string }>();
  /** requestIds whose request matched the --vm filter (so their replies match too). */
  private readonly wanted = new Set<string>();

  constructor(
    private readonly filter: TraceFilter,
    /** Resolves a VM name or UUID to [name, uuid] if known. */
    private readonly resolve: (target: string) => { name: string; uuid: string } | undefined,
  ) {}

  record(message: Message, source: TraceSource, at: number): TraceRecord | undefined {
    const r: TraceRecord = {
      at: new Date(at).toISOString(),
      type: message.type,
      source,
      from: message.from,
      to: null,
      requestId: null,
      action: null,
      target: null,
      vm: null,
      uuid: null,
      host: null,
      event: null,
      state: null,
      code: null,
      result: null,
      reason: null,
      latencyMs: null,
      executionMs: null,
      detail: '',
    };
    switch (message.type) {
      case 'vm-event': {
        const b = message.body;
        Object.assign(r, {
          vm: b.name,
          uuid: b.uuid.toLowerCase(),
          host: b.host,
          event: eventName(b.event),
          state: stateName(b.state),
        });
        r.detail = `${b.name} ${eventName(b.event)} on ${b.host} → ${stateName(b.state)}`;
        break;
      }
      case 'fence-request': {
        const b = message.body;
        this.requests.set(replyKey(b.requestId, b.toHost), { at, target: b.target });
        const known = this.resolve(b.target);
        Object.assign(r, {
          to: b.toHost,
          requestId: b.requestId,
          action: b.action,
          target: b.target,
          vm: known?.name ?? (b.targetKind === 'name' ? b.target : null),
          uuid: known?.uuid ?? (b.targetKind === 'uuid' ? b.target.toLowerCase() : null),
        });
        r.detail = `${b.action} ${b.target} (${b.listener} from ${b.requester || '-'})`;
        break;
      }
      case 'fence-reply': {
        const b = message.body;
        const req = this.requests.get(replyKey(b.requestId, message.from));
        Object.assign(r, {
          requestId: b.requestId,
          host: b.executingHost,
          code: b.code,
          result: resultName(b.code),
          reason: b.reason,
          state: stateName(b.vmState),
          latencyMs: req ? at - req.at : null,
          executionMs: b.timings.finished - b.timings.received,
          target: req?.target ?? null,
        });
        r.detail =
          `${b.code} ${resultName(b.code)} (${b.reason}) from ${b.executingHost}, vm ${stateName(b.vmState)}` +
          (r.latencyMs !== null ? `, ${r.latencyMs} ms after the request` : '') +
          `, executed in ${r.executionMs} ms`;
        break;
      }
      case 'fence-trace': {
        const b = message.body;
        const known = this.resolve(b.target);
        const executed = b.executedBy.join(',');
        Object.assign(r, {
          to: executed || null,
          requestId: b.requestId,
          action: b.action,
          target: b.target,
          vm: known?.name ?? null,
          uuid: known?.uuid ?? null,
          host: b.originHost,
          code: b.code,
          result: resultName(b.code),
          reason: b.reason,
          latencyMs: b.answered - b.received,
        });
        r.detail =
          `${b.action} ${b.target} (${b.listener} from ${b.requester || '-'}): ` +
          `${b.code} ${resultName(b.code)} (${b.reason}), ` +
          (executed ? `executed on ${executed}` : `answered by ${b.originHost}`) +
          `, ${r.latencyMs} ms${b.shared ? ', shared an execution' : ''}`;
        break;
      }
      case 'host-fenced': {
        const b = message.body;
        r.host = b.host;
        r.detail = `${b.host} fenced by ${b.by}${b.evidence ? `: ${b.evidence}` : ''}`;
        break;
      }
      case 'inventory': {
        const b = message.body;
        r.host = b.host;
        r.detail = `${b.host}: ${b.vms.length} VM(s)${b.inReplyTo ? ' (resync answer)' : ''}`;
        break;
      }
      case 'heartbeat':
      case 'announce': {
        const b = message.body;
        r.host = b.host;
        r.detail = `${b.host}: ${b.vmCount} VM(s), ${b.software.name} ${b.software.version}`;
        break;
      }
      case 'resync-request':
        r.to = message.body.target ?? null;
        r.detail = `${message.body.target ?? 'every host'}: ${message.body.reason}`;
        break;
    }
    return this.matches(r) ? r : undefined;
  }

  private matches(r: TraceRecord): boolean {
    const f = this.filter;
    if (!f.types.has(r.type)) return false;
    if (f.host !== undefined) {
      const hosts = [r.from, r.to, r.host];
      if (!hosts.includes(f.host)) return false;
    }
    if (f.vm !== undefined) {
      const want = this.resolve(f.vm);
      const names = new Set([f.vm, f.vm.toLowerCase(), want?.name, want?.uuid]);
      if (r.type === 'fence-reply') return r.requestId !== null && this.wanted.has(r.requestId);
      const hit =
        (r.vm !== null && names.has(r.vm)) ||
        (r.uuid !== null && names.has(r.uuid)) ||
        (r.target !== null && (names.has(r.target) || names.has(r.target.toLowerCase())));
      if (hit && r.requestId !== null) this.wanted.add(r.requestId);
      return hit;
    }
    return true;
  }
}

/** One line for people. */
export function formatTraceLine(r: TraceRecord): string {
  const time = r.at.slice(11, 23);
  const route = r.to ? `${r.from} → ${r.to}` : r.from;
  const id = r.requestId ? `  id=${r.requestId}` : '';
  return `${time}  ${r.type.padEnd(14)} ${route.padEnd(24)} ${r.detail}${id}`;
}
