/**
 * Benchmark of the ownership table alone: one table fed the events of `hosts` × `vmsPerHost`
 * VMs (default 1,000 × 100), then a full resync (every host's inventory snapshot), both as raw
 * table updates and through the real message path (signed JSON → verify → apply).
 */
import { randomUUID } from 'node:crypto';
import { OwnershipTable } from '../../src/routing/table.js';
import { decideRoute } from '../../src/routing/route.js';
import { LifecycleEventType } from '../../src/libvirt/hypervisor.js';
import { DomainState } from '../../src/protocol/constants.js';
import { MessageFactory, MessageVerifier, encodeMessage } from '../../src/messages/sign.js';

export interface TableBenchOptions {
  hosts?: number;
  vmsPerHost?: number;
  /** Extra state-change events after the initial load, per VM. Default 2. */
  churnPerVm?: number;
  /** Route decisions to time. Default 100,000. */
  lookups?: number;
}

export interface TableBenchResult {
  hosts: number;
  vms: number;
  events: number;
  eventsPerSecond: number;
  /** RSS of the whole process with the table loaded (after GC when --expose-gc). */
  rssMb: number;
  /** Heap used by the table alone (difference before/after, after GC when available). */
  tableHeapMb: number;
  /** Applying every host's inventory snapshot to the loaded table. */
  resyncMs: number;
  /** The same resync through the message path: verify (HMAC + schema) and apply. */
  resyncVerifiedMs: number;
  decideRouteMicros: number;
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

function uuidOf(h: number, v: number): string {
  const hh = h.toString(16).padStart(8, '0');
  const vv = v.toString(16).padStart(12, '0');
  return `${hh}-0000-4000-8000-${vv}`;
}

export function benchRoutingTable(options: TableBenchOptions = {}): TableBenchResult {
  const hosts = options.hosts ?? 1000;
  const perHost = options.vmsPerHost ?? 100;
  const churn = options.churnPerVm ?? 2;
  const lookups = options.lookups ?? 100_000;
  const hostId = (h: number): string => `host-${h}`;

  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const table = new OwnershipTable('host-0', {
    heartbeatIntervalMs: 60_000,
    deadAfterMs: 3_600_000,
  });
  const seq = new Array<number>(hosts).fill(0);
  const epoch = Date.now();
  let events = 0;
  const t0 = process.hrtime.bigint();
  for (let round = 0; round <= churn; round++) {
    for (let h = 0; h < hosts; h++) {
      const host = hostId(h);
      for (let v = 0; v < perHost; v++) {
        const running = round % 2 === 0;
        table.applyVmEvent(
          {
            host,
            epoch,
            seq: ++seq[h]!,
            uuid: uuidOf(h, v),
            name: `vm-${h}-${v}`,
            event: running ? LifecycleEventType.STARTED : LifecycleEventType.SUSPENDED,
            detail: 0,
            state: running ? DomainState.RUNNING : DomainState.PAUSED,
          },
          0,
        );
        events++;
      }
      if (round === 0)
        table.applyHeartbeat({ host, epoch, seq: 1, sentAt: Date.now() }, Date.now());
    }
  }
  const loadSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  gc();
  const rssMb = process.memoryUsage().rss / 2 ** 20;
  const tableHeapMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;

  // Full resync: every host's snapshot (raw).
  const inventories = Array.from({ length: hosts }, (_, h) => ({
    host: hostId(h),
    epoch,
    seq: 0,
    vms: Array.from({ length: perHost }, (_, v) => ({
      uuid: uuidOf(h, v),
      name: `vm-${h}-${v}`,
      state: DomainState.RUNNING,
    })),
  }));
  const t1 = process.hrtime.bigint();
  for (let h = 0; h < hosts; h++) {
    const inv = inventories[h]!;
    inv.seq = ++seq[h]!;
    table.applyInventory(inv, 0);
  }
  const resyncMs = Number(process.hrtime.bigint() - t1) / 1e6;

  // The same through signed messages: build them first (senders' cost), time verify + apply.
  const key = Buffer.from(randomUUID());
  const verifier = new MessageVerifier(key, 'bench', {
    windowMs: 3_600_000,
    replayCapacity: hosts * 2,
  });
  const wire: string[] = [];
  for (let h = 0; h < hosts; h++) {
    const factory = new MessageFactory({ cluster: 'bench', hostId: hostId(h), key, epoch });
    const inv = inventories[h]!;
    inv.seq = ++seq[h]!;
    wire.push(encodeMessage(factory.create('inventory', { ...inv })));
  }
  const t2 = process.hrtime.bigint();
  for (const raw of wire) {
    const r = verifier.verify(raw);
    if (!r.ok || r.message.type !== 'inventory')
      throw new Error(`bench inventory rejected: ${r.ok ? r.message.type : r.reason}`);
    table.applyInventory(r.message.body, 0);
  }
  const resyncVerifiedMs = Number(process.hrtime.bigint() - t2) / 1e6;

  const now = Date.now();
  const t3 = process.hrtime.bigint();
  let remote = 0;
  for (let i = 0; i < lookups; i++) {
    const h = i % hosts;
    const d = decideRoute(
      table,
      i % 2 ? uuidOf(h, i % perHost) : `vm-${h}-${i % perHost}`,
      now,
      'off',
    );
    if (d.kind === 'remote') remote++;
  }
  const decideRouteMicros = Number(process.hrtime.bigint() - t3) / 1e3 / lookups;
  if (remote === 0 && hosts > 1) throw new Error('bench: no remote routes decided');

  return {
    hosts,
    vms: table.stats().vms,
    events,
    eventsPerSecond: Math.round(events / loadSeconds),
    rssMb: Math.round(rssMb * 10) / 10,
    tableHeapMb: Math.round(tableHeapMb * 10) / 10,
    resyncMs: Math.round(resyncMs * 10) / 10,
    resyncVerifiedMs: Math.round(resyncVerifiedMs * 10) / 10,
    decideRouteMicros: Math.round(decideRouteMicros * 100) / 100,
  };
}
