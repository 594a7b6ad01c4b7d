/**
 * What the daemon counts: requests, drops, latencies, and the backend's own health (bus, routing
 * table, peers, libvirt). Read by the opt-in Prometheus endpoint (metrics_port) and by the
 * periodic `stats` log line. One registry per daemon; nothing global.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BackendHealth } from '../backends/backend.js';
import type { LogFields, Logger } from '../util/logger.js';

/** Listener log events that mean a packet, connection or answer was dropped (logged directly). */
const DROP_EVENTS = new Set([
  'packet-dropped',
  'request-rejected',
  'connection-refused',
  'connection-failed',
  'callback-failed',
  'response-dropped',
]);

export interface RequestObservation {
  listener: string;
  action: string;
  result: string;
  reason: string;
  /** Host(s) that executed the request, when the backend routed it. */
  executedBy: string | undefined;
  durationMs: number;
}

export interface DaemonMetrics {
  readonly registry: Registry;
  observeRequest(o: RequestObservation): void;
  /** Wraps a logger so listener drop events are counted (before any rate limiting of lines). */
  tapLogger(logger: Logger): Logger;
  /** Totals for the stats log line. */
  summary(): LogFields;
}

export interface MetricsOptions {
  health: () => BackendHealth | undefined;
  /** Add Node's process metrics (CPU, memory, event-loop lag). */
  processMetrics?: boolean;
  /** The bus, routing table and peer metrics exist only for a routed backend (amqp). */
  routed?: boolean;
}

const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

export function createMetrics(options: MetricsOptions): DaemonMetrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'virtfence_' });

  const requests = new Counter({
    name: 'virtfence_requests_total',
    help: 'Requests answered, by listener, action, result and reason',
    labelNames: ['listener', 'action', 'result', 'reason'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'virtfence_fence_duration_seconds',
    help: 'Time from request to answer; route local (this host) or routed (another host executed it), by broker profile',
    labelNames: ['action', 'route', 'profile'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const dropped = new Counter({
    name: 'virtfence_dropped_total',
    help: 'Packets, connections and answers the listeners dropped, by listener, event and reason',
    labelNames: ['listener', 'event', 'reason'],
    registers: [registry],
  });

  // Everything below is read from the backend when scraped.
  let snapshot: BackendHealth | undefined;
  const health = (): BackendHealth | undefined => {
    snapshot = options.health();
    return snapshot;
  };
  new Gauge({
    name: 'virtfence_backend_serving',
    help: '1 while the backend answers requests (amqp: connected and synced)',
    registers: [registry],
    collect() {
      this.set(health()?.serving ? 1 : 0);
    },
  });
  new Gauge({
    name: 'virtfence_libvirt_connected',
    help: '1 while the libvirt connection of a URI is up',
    labelNames: ['uri'],
    registers: [registry],
    collect() {
      this.reset();
      for (const l of health()?.libvirt ?? []) this.set({ uri: l.uri }, l.connected ? 1 : 0);
    },
  });
  if (options.routed) registerRoutedMetrics(registry, health);

  const totals = { requests: 0, failed: 0, dropped: 0, durationMs: 0 };

  const countDrop = (event: string, reason: string, base: LogFields): void => {
    const listener = typeof base.listener === 'string' ? base.listener : 'unknown';
    dropped.inc({ listener, event, reason });
    totals.dropped++;
  };
  // Listeners log drops through a rate-limited log that reports every occurrence to
  // countDrop() and then (sometimes) logs one line: that line must not count again, nor must
  // its interval summary (`suppressed`). Drop events logged directly are counted as lines.
  let justCounted: string | undefined;
  const observeLine = (event: string, fields: LogFields): void => {
    const reason = typeof fields.reason === 'string' ? fields.reason : event;
    const key = `${event}:${reason}`;
    if (justCounted === key) {
      justCounted = undefined;
      return;
    }
    justCounted = undefined;
    if (!DROP_EVENTS.has(event) || fields.suppressed !== undefined) return;
    countDrop(event, reason, fields);
  };

  const tap = (logger: Logger, base: LogFields): Logger => ({
    debug: (e, f) => (observeLine(e, { ...base, ...f }), logger.debug(e, f)),
    info: (e, f) => (observeLine(e, { ...base, ...f }), logger.info(e, f)),
    warn: (e, f) => (observeLine(e, { ...base, ...f }), logger.warn(e, f)),
    error: (e, f) => (observeLine(e, { ...base, ...f }), logger.error(e, f)),
    child: (fields) => tap(logger.child(fields), { ...base, ...fields }),
    countDrop: (event, reason) => {
      countDrop(event, reason, base);
      justCounted = `${event}:${reason}`;
    },
  });

  return {
    registry,
    observeRequest(o) {
      requests.inc({ listener: o.listener, action: o.action, result: o.result, reason: o.reason });
      // Requests executed by another host (amqp) count as routed.
      const bus = (snapshot?.bus ? snapshot : (snapshot = options.health()))?.bus;
      const routed =
        bus !== undefined &&
        o.executedBy !== undefined &&
        o.executedBy !== '' &&
        o.executedBy.split(',').some((h) => h !== bus.hostId);
      const profile = bus?.profile ?? 'none';
      latency.observe(
        { action: o.action, route: routed ? 'routed' : 'local', profile },
        o.durationMs / 1000,
      );
      totals.requests++;
      if (o.result !== 'success' && o.result !== 'off' && o.result !== 'hostlist') totals.failed++;
      totals.durationMs += o.durationMs;
    },
    tapLogger: (logger) => tap(logger, {}),
    summary() {
      const h = health();
      const fields: LogFields = {
        requests: totals.requests,
        failed: totals.failed,
        dropped: totals.dropped,
        mean_ms: totals.requests
          ? Math.round((totals.durationMs / totals.requests) * 100) / 100
          : 0,
        serving: h?.serving ?? true,
        libvirt_connected: h ? h.libvirt.filter((l) => l.connected).length : undefined,
      };
      if (h?.bus) {
        fields.bus_connected = h.bus.connected;
        fields.bus_reconnects = h.bus.reconnects;
        fields.bus_rejected = Object.values(h.bus.rejected).reduce((a, b) => a + b, 0);
      }
      if (h?.routing) {
        fields.hosts_alive = h.routing.hosts.alive;
        fields.hosts_suspect = h.routing.hosts.suspect;
        fields.hosts_dead = h.routing.hosts.dead;
        fields.vms = h.routing.vms;
        fields.claims = h.routing.claims;
      }
      return fields;
    },
  };
}

/** The HTTP endpoint: GET /metrics; anything else 404. */
export async function serveMetrics(
  metrics: DaemonMetrics,
  address: string,
  port: number,
  logger: Logger,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: unknown) => {
        logger.error('metrics-failed', { error: (err as Error).message });
        res.writeHead(500).end();
      },
    );
  });
  server.requestTimeout = 10_000;
  server.maxConnections = 16;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  logger.info('metrics-listening', { address, port: bound });
  return {
    port: bound,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Bus, ownership table and peers (amqp backend), read from its health when scraped. */
function registerRoutedMetrics(registry: Registry, health: () => BackendHealth | undefined): void {
  new Gauge({
    name: 'virtfence_bus_connected',
    help: '1 while connected to the broker (amqp backend)',
    labelNames: ['profile'],
    registers: [registry],
    collect() {
      this.reset();
      const bus = health()?.bus;
      if (bus) this.set({ profile: bus.profile }, bus.connected ? 1 : 0);
    },
  });
  new Counter({
    name: 'virtfence_bus_reconnects_total',
    help: 'Broker reconnections after the first connection',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(health()?.bus?.reconnects ?? 0);
    },
  });
  new Counter({
    name: 'virtfence_bus_rejected_messages_total',
    help: 'Broker messages dropped before delivery, by reason (bad-signature, replay, schema, …)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(health()?.bus?.rejected ?? {}))
        this.inc({ reason }, n);
    },
  });
  new Gauge({
    name: 'virtfence_routing_hosts',
    help: 'Hosts in the ownership table by liveness (this host included)',
    labelNames: ['liveness'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [liveness, n] of Object.entries(health()?.routing?.hosts ?? {}))
        this.set({ liveness }, n);
    },
  });
  new Gauge({
    name: 'virtfence_routing_vms',
    help: 'VMs in the ownership table',
    registers: [registry],
    collect() {
      const r = health()?.routing;
      if (r) this.set(r.vms);
    },
  });
  new Gauge({
    name: 'virtfence_routing_claims',
    help: 'Host claims on VMs in the ownership table (more than VMs while one migrates)',
    registers: [registry],
    collect() {
      const r = health()?.routing;
      if (r) this.set(r.claims);
    },
  });
  new Gauge({
    name: 'virtfence_peer_heartbeat_age_seconds',
    help: 'Seconds since the last heartbeat of each peer host arrived',
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of health()?.routing?.peers ?? [])
        if (p.heartbeatAgeMs !== undefined) this.set({ peer: p.host }, p.heartbeatAgeMs / 1000);
    },
  });
  new Gauge({
    name: 'virtfence_peer_clock_offset_seconds',
    help: "A peer's clock minus ours at its last heartbeat (transit time included)",
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of health()?.routing?.peers ?? [])
        if (p.clockOffsetMs !== undefined) this.set({ peer: p.host }, p.clockOffsetMs / 1000);
    },
  });
}
