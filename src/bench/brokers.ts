/**
 * Routed fencing through every broker, in one run: for each broker the tests run (RabbitMQ,
 * ActiveMQ Artemis, ActiveMQ Classic, Qpid Broker-J) three in-process hosts route status and
 * off/on from host 1 to a VM on host 3; the figures are what routing adds over the same
 * request executed at host 3 (p50 / p99), and the ratio to RabbitMQ's added p50.
 * Brokers that persist messages are also measured with durable sends, which prices them.
 *
 * Goal on every broker: p50 ≤ 3 ms and p99 ≤ 10 ms added.
 */
import { resolveProfile } from '../amqp/profiles.js';
import {
  BROKER_KINDS,
  brokerAvailable,
  startBroker,
  type BrokerKind,
  type BrokerUser,
} from '../harness/brokers.js';
import { routedPart, type LatencyFigures } from './routing.js';

export interface BrokerBenchRow {
  kind: BrokerKind;
  durable: boolean;
  statusAdded: { p50: number; p99: number };
  powerAdded: { p50: number; p99: number };
  routedStatus: LatencyFigures;
  routedPower: LatencyFigures;
}

const round = (x: number) => Math.round(x * 100) / 100;

export async function runBrokerBench(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<BrokerBenchRow[]> {
  const { log } = options;
  const iterations = options.quick ? 100 : 400;
  log('\n## Routed fencing per broker (amqp backend, 3 in-process hosts)');
  const cluster = `benchb${process.pid}`;
  const user: BrokerUser = { user: 'bench', password: 'bench-secret', cluster };
  const rows: BrokerBenchRow[] = [];
  for (const [i, kind] of BROKER_KINDS.entries()) {
    if (!brokerAvailable(kind)) {
      log(`${kind}: not run (not installed; scripts/brokers.sh fetches the JVM brokers)`);
      continue;
    }
    const started = Date.now();
    const broker = await startBroker(kind, { port: 5740 + i, users: [user] });
    log(`${kind}: ready ${Date.now() - started} ms after start`);
    try {
      const base = resolveProfile(broker.profile);
      // Durable sends are off in every profile; measured anyway where the broker persists.
      const variants = kind === 'qpid-broker-j' ? [false] : [false, true];
      for (const durable of variants) {
        const credentials =
          kind === 'rabbitmq' ? {} : { username: user.user, password: user.password };
        const { routed, local } = await routedPart(
          {
            url: broker.url,
            label: `${kind}${durable ? ' (durable sends)' : ''}`,
            profile: { ...base, durableSends: durable },
            cluster: kind === 'rabbitmq' ? `bench${process.pid}` : cluster,
            ...credentials,
          },
          iterations,
          log,
        );
        if (!routed || !local) continue;
        rows.push({
          kind,
          durable,
          statusAdded: {
            p50: round(routed.status.p50 - local.status.p50),
            p99: round(routed.status.p99 - local.status.p99),
          },
          powerAdded: {
            p50: round(routed.power.p50 - local.power.p50),
            p99: round(routed.power.p99 - local.power.p99),
          },
          routedStatus: routed.status,
          routedPower: routed.power,
        });
      }
    } finally {
      await broker.dispose();
    }
  }
  const rabbit = rows.find((r) => r.kind === 'rabbitmq' && !r.durable);
  log('');
  log(
    '| broker | sends | status added p50 / p99 | off/on added p50 / p99 | status p50 vs RabbitMQ | off/on p50 vs RabbitMQ | goal (≤ 3 / ≤ 10 ms) |',
  );
  log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const ratio = (x: number, y: number | undefined) =>
      y === undefined || y <= 0 ? '-' : (x / y).toFixed(2);
    const met =
      r.statusAdded.p50 <= 3 &&
      r.powerAdded.p50 <= 3 &&
      r.statusAdded.p99 <= 10 &&
      r.powerAdded.p99 <= 10;
    log(
      `| ${r.kind} | ${r.durable ? 'durable' : 'not durable'} | ${r.statusAdded.p50} / ${r.statusAdded.p99} ms | ` +
        `${r.powerAdded.p50} / ${r.powerAdded.p99} ms | ${ratio(r.statusAdded.p50, rabbit?.statusAdded.p50)} | ` +
        `${ratio(r.powerAdded.p50, rabbit?.powerAdded.p50)} | ${met ? 'met' : 'MISSED'} |`,
    );
  }
  return rows;
}
