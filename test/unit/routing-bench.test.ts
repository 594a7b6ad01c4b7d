import { benchRoutingTable } from '../../tools/bench/routing-table.js';

describe('routing table benchmark (small run, figures only checked for consistency)', () => {
  test('loads every VM of every host, resyncs through signed messages, decides routes', () => {
    const r = benchRoutingTable({ hosts: 10, vmsPerHost: 5, churnPerVm: 2, lookups: 100 });
    expect(r.hosts).toBe(10);
    expect(r.vms).toBe(50);
    expect(r.events).toBe(150);
    for (const key of [
      'eventsPerSecond',
      'rssMb',
      'resyncMs',
      'resyncVerifiedMs',
      'decideRouteMicros',
    ] as const) {
      expect(Number.isFinite(r[key])).toBe(true);
    }
  });
});
