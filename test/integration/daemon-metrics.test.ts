/**
 * The Prometheus endpoint scraped by a real Prometheus server (Debian's `prometheus`, a config
 * written here, its HTTP API queried) while requests flow through two hosts of a broker-routed
 * cluster: requests by listener/action/result/reason, dropped packets by reason, local and
 * routed latency histograms by broker profile, bus state, rejected bus messages, routing table,
 * heartbeat ages and libvirt state all equal what the test sent. Also the `stats` log line.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import { jest } from '@jest/globals';
import { SimCluster, eventually } from '../helpers/cluster.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { openNotifySocket, type NotifySocket } from '../helpers/notify-socket.js';
import { tempDir, type TempDir } from '../helpers/daemon.js';

jest.setTimeout(120_000);

const VM = {
  a1: { name: 'vm-a1', uuid: '3a000000-0000-4000-8000-000000000001', running: true },
  a2: { name: 'vm-a2', uuid: '3a000000-0000-4000-8000-000000000002', running: false },
  b1: { name: 'vm-b1', uuid: '3b000000-0000-4000-8000-000000000001', running: true },
};
const METRICS_PORT = [19101, 19102];

describe('metrics: a real Prometheus scrapes both daemons while requests flow', () => {
  const cluster = new SimCluster({
    amqpPort: 5730,
    epmdPort: 4392,
    basePort: 12610,
    heartbeatMs: 200,
    deadAfterMs: 1500,
    hosts: [
      { id: 'h1', vms: [VM.a1, VM.a2] },
      { id: 'h2', vms: [VM.b1] },
    ],
    daemonKeysFor: (i) => `\tmetrics_port = "${METRICS_PORT[i]}";\n\tstats_interval = "1";`,
    // Host 1 also tells a datagram socket (as systemd would) when it is ready.
    envFor: (i) => (i === 0 ? { NOTIFY_SOCKET: `${dir.path}/notify.sock` } : {}),
  });
  let prom: PrometheusServer;
  let dir: TempDir;
  let notify: NotifySocket;

  beforeAll(async () => {
    dir = tempDir('virtfence-prom-');
    notify = await openNotifySocket(`${dir.path}/notify.sock`);
    await cluster.start();
    await cluster.waitListed('h1', ['vm-a1', 'vm-a2', 'vm-b1']);
    prom = await startPrometheus({
      dir: dir.path,
      port: 19090,
      targets: { h1: `127.0.0.1:${METRICS_PORT[0]}`, h2: `127.0.0.1:${METRICS_PORT[1]}` },
    });
  });
  afterAll(async () => {
    await prom?.stop();
    await cluster.dispose();
    notify?.close();
    dir?.remove();
  });

  it('amqp backend: READY=1 only after the broker connection and the table sync', async () => {
    const ready = await notify.waitFor((d) => d.text.startsWith('READY=1'));
    expect(ready.text).toBe('READY=1\nSTATUS=Serving: listeners multicast, backend amqp');
    const before = notify.received.slice(0, notify.received.indexOf(ready)).map((d) => d.text);
    expect(before).toContain('STATUS=Starting listener multicast');
    expect(before).toContain('STATUS=Waiting for the cluster table to sync');
    expect(before.indexOf('STATUS=Starting listener multicast')).toBeLessThan(
      before.indexOf('STATUS=Waiting for the cluster table to sync'),
    );
  });

  /** The value of one series, once Prometheus has scraped it with at least `min`. */
  async function value(expr: string, expected: number, timeoutMs = 15_000): Promise<number> {
    let last: number | undefined;
    await eventually(
      async () => {
        const r = await prom.query(expr);
        last = r.length === 1 ? r[0]!.value : r.length === 0 ? undefined : NaN;
        return last === expected;
      },
      timeoutMs,
      expr,
    ).catch(() => undefined);
    if (last !== expected) {
      const name = /virtfence_[a-z_]+/.exec(expr)?.[0] ?? 'up';
      const all = (await prom.query(name)).map((e) => `${JSON.stringify(e.labels)} ${e.value}`);
      throw new Error(`${expr}: Prometheus has ${last}, expected ${expected}\n${all.join('\n')}`);
    }
    return last;
  }

  it('counts what was sent, exactly', async () => {
    // waitListed sent some lists already: the endpoint's own count is the baseline.
    const before = await fetch(`http://127.0.0.1:${METRICS_PORT[0]}/metrics`).then((r) => r.text());
    const listsBefore = Number(
      /virtfence_requests_total\{[^}]*action="hostlist"[^}]*\} (\d+)/.exec(before)?.[1] ?? 0,
    );
    expect(listsBefore).toBeGreaterThanOrEqual(1);
    // Through h1's multicast listener (the real C fence_xvm): 3 status of vm-a1 (local),
    // 2 status of vm-b1 (routed to h2), 1 status of vm-a2 (off, local), 1 list.
    const runs: Array<[string[], number]> = [
      [['-o', 'status', '-H', 'vm-a1'], 0],
      [['-o', 'status', '-H', 'vm-a1'], 0],
      [['-o', 'status', '-H', 'vm-a1'], 0],
      [['-o', 'status', '-H', 'vm-b1'], 0],
      [['-o', 'status', '-H', 'vm-b1'], 0],
      [['-o', 'status', '-H', 'vm-a2'], 2],
      [['-o', 'list'], 0],
    ];
    for (const [args, code] of runs) expect((await cluster.xvm('h1', args)).code).toBe(code);
    // 3 short datagrams and one request signed with another key: dropped by reason.
    const udp = dgram.createSocket('udp4');
    for (let i = 0; i < 3; i++)
      await new Promise<void>((resolve) =>
        udp.send(Buffer.from('short'), cluster.host('h1').port, '127.0.0.1', () => resolve()),
      );
    udp.close();
    const wrongKey = dir.file('wrong.key', 'not the key of this cluster');
    const wrong = await cluster.xvm('h1', ['-o', 'status', '-H', 'vm-a1', '-k', wrongKey], {
      timeout: 1,
    });
    expect(wrong.code).toBe(1);
    // Two broker messages signed with another cluster key reach both hosts and are rejected.
    const mallory = await cluster.memberBus('mallory', Buffer.from('not-the-cluster-key'));
    for (let i = 0; i < 2; i++)
      await mallory.publish(mallory.create('resync-request', { reason: 'forged' }));

    await value(
      'virtfence_requests_total{job="h1",listener="multicast",action="status",result="success",reason="ok"}',
      5,
    );
    await value(
      'virtfence_requests_total{job="h1",listener="multicast",action="status",result="off",reason="ok"}',
      1,
    );
    await value(
      'virtfence_requests_total{job="h1",listener="multicast",action="hostlist",result="hostlist",reason="ok"}',
      listsBefore + 1,
    );
    await value('sum(virtfence_requests_total{job="h1"})', 6 + listsBefore + 1);
    // h2 was scraped but answered only routed requests (over the bus), none through a listener.
    await value('up{job="h2"}', 1);
    expect(await prom.query('virtfence_requests_total{job="h2"}')).toEqual([]);
    await value(
      'virtfence_dropped_total{job="h1",listener="multicast",event="packet-dropped",reason="short-packet"}',
      3,
    );
    const badDigest = await prom.query(
      'virtfence_dropped_total{job="h1",listener="multicast",reason="bad-digest"}',
    );
    expect(badDigest.length).toBe(1);
    expect(badDigest[0]!.value).toBeGreaterThanOrEqual(1);

    // Latency histograms: local vs routed, by broker profile.
    await value(
      'sum(virtfence_fence_duration_seconds_count{job="h1",route="routed",profile="rabbitmq3"})',
      2,
    );
    await value(
      'sum(virtfence_fence_duration_seconds_count{job="h1",route="local",profile="rabbitmq3",action="status"})',
      4,
    );
    const routedSum = await prom.query(
      'sum(virtfence_fence_duration_seconds_sum{job="h1",route="routed"})',
    );
    expect(routedSum[0]!.value).toBeGreaterThan(0);
    expect(routedSum[0]!.value).toBeLessThan(2 * 10); // two answers, each well within 10 s

    // Bus and routing state.
    await value('virtfence_bus_connected{job="h1",profile="rabbitmq3"}', 1);
    await value('virtfence_bus_reconnects_total{job="h1"}', 0);
    await value('virtfence_bus_rejected_messages_total{job="h1",reason="bad-signature"}', 2);
    await value('virtfence_bus_rejected_messages_total{job="h2",reason="bad-signature"}', 2);
    await value('virtfence_routing_hosts{job="h1",liveness="alive"}', 2);
    await value('virtfence_routing_hosts{job="h1",liveness="dead"}', 0);
    await value('virtfence_routing_vms{job="h2"}', 3);
    await value('virtfence_routing_claims{job="h2"}', 3);
    await value('virtfence_backend_serving{job="h1"}', 1);
    await value('count(virtfence_libvirt_connected{job="h1"} == 1)', 1);
    const age = await prom.query('virtfence_peer_heartbeat_age_seconds{job="h1",peer="h2"}');
    expect(age.length).toBe(1);
    expect(age[0]!.value).toBeGreaterThanOrEqual(0);
    expect(age[0]!.value).toBeLessThan(1.5);
    const offset = await prom.query('virtfence_peer_clock_offset_seconds{job="h1",peer="h2"}');
    expect(Math.abs(offset[0]!.value)).toBeLessThan(0.5); // one machine, one clock

    // The stats line, for hosts without Prometheus.
    const d = cluster.host('h1').daemon!;
    // A line logged after the drops (one per second): the same totals as the scrape.
    const stats = await d.waitForLog(
      (e) => e.event === 'stats' && Number(e.dropped) >= 4 && e.bus_rejected === 2,
      5_000,
    );
    expect(stats).toMatchObject({
      requests: 6 + listsBefore + 1,
      bus_connected: true,
      hosts_alive: 2,
      vms: 3,
    });
  });

  it('is off without metrics_port, and only on loopback without metrics_address', async () => {
    const text = fs.readFileSync(cluster.host('h1').configFile, 'utf8');
    expect(text).not.toContain('metrics_address');
    const d = cluster.host('h1').daemon!;
    const listening = await d.waitForLog((e) => e.event === 'metrics-listening');
    expect(listening).toMatchObject({ address: '127.0.0.1', port: METRICS_PORT[0] });
    const r = await fetch(`http://127.0.0.1:${METRICS_PORT[0]}/other`);
    expect(r.status).toBe(404);
  });
});
