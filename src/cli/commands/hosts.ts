import { BrokerCommand } from '../observer/command.js';
import { formatAge } from '../observer/format.js';
import { safeUrl } from '../observer/observer.js';
import { brokerFlags } from '../observer/settings.js';
import { hostViews, type HostView } from '../observer/views.js';

export interface HostsResult {
  cluster: string;
  broker: string;
  listenedMs: number;
  hosts: HostView[];
}

export default class Hosts extends BrokerCommand {
  static override summary = 'List every host of the cluster heard on the broker.';
  static override description =
    'Joins the cluster as an observer (it owns no VM and executes nothing), asks every host for ' +
    'its inventory and listens for heartbeats for --wait, then prints each host: alive, ' +
    'suspect (two missed heartbeats) or dead (nothing for dead_after), fenced, the age of its ' +
    'last heartbeat, its VM count, its software version and whether its heartbeats reach the ' +
    'broker. Hosts whose messages fail verification (another cluster key) are flagged.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> -f /etc/fence_virt.conf --wait 3',
    '<%= config.bin %> <%= command.id %> --url amqp://broker:5672 --cluster prod --key-file /etc/cluster/virtfence-cluster.key --json',
  ];
  static override flags = { ...brokerFlags };

  async run(): Promise<HostsResult> {
    const { flags } = await this.parse(Hosts);
    const settings = await this.brokerSettings(flags);
    return this.withObserver(
      settings,
      { waitMs: settings.waitMs, verifyTap: true },
      async (observer) => {
        const now = Date.now();
        const hosts = hostViews(observer.table(), observer.hosts, now, settings.observerId);
        const broker = safeUrl(observer.bus.stats().url ?? settings.amqp.urls[0] ?? '');
        if (hosts.length === 0) {
          this.log(`No host heard on cluster ${settings.amqp.cluster} (${broker}).`);
        } else {
          this.printTable(hosts, [
            { header: 'HOST', value: (h) => h.host },
            { header: 'STATE', value: (h) => (h.fenced ? `${h.liveness},fenced` : h.liveness) },
            { header: 'HEARTBEAT', value: (h) => formatAge(h.lastHeartbeatAgeMs ?? undefined) },
            { header: 'VMS', value: (h) => `${h.vms} (${h.running} running)` },
            { header: 'VERSION', value: (h) => h.software ?? '-' },
            { header: 'BROKER', value: (h) => h.broker },
            {
              header: 'NOTE',
              value: (h) =>
                [
                  h.rejected > 0 ? `${h.rejected} unverifiable messages (key check)` : '',
                  h.evidence ? `fenced by ${h.evidence.by}` : '',
                ]
                  .filter(Boolean)
                  .join('; '),
            },
          ]);
        }
        return { cluster: settings.amqp.cluster, broker, listenedMs: settings.waitMs, hosts };
      },
    );
  }
}
