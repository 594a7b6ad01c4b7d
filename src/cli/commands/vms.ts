import { Flags } from '@oclif/core';
import { BrokerCommand } from '../observer/command.js';
import { formatAge } from '../observer/format.js';
import { brokerFlags } from '../observer/settings.js';
import { vmViews, type VmView } from '../observer/views.js';

export interface VmsResult {
  cluster: string;
  host: string | null;
  vms: VmView[];
  conflicts: number;
}

export default class Vms extends BrokerCommand {
  static override summary = 'Show the cluster-wide VM ownership table.';
  static override description =
    'Builds the same ownership table the daemons keep from their inventories and lifecycle ' +
    'events, and prints one line per VM: name, UUID, the host(s) running it, every host that ' +
    'has it defined, its state and the last lifecycle event seen during --wait with its age. ' +
    'A VM that two hosts claim as running is marked CONFLICT.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --host hv3',
    "<%= config.bin %> <%= command.id %> --json | jq '.vms[] | select(.conflict)'",
  ];
  static override flags = {
    ...brokerFlags,
    host: Flags.string({
      char: 'H',
      summary: 'Only VMs this host claims (running or defined).',
      helpValue: 'HOST',
    }),
  };

  async run(): Promise<VmsResult> {
    const { flags } = await this.parse(Vms);
    const settings = await this.brokerSettings(flags);
    return this.withObserver(settings, { waitMs: settings.waitMs }, async (observer) => {
      const now = Date.now();
      const table = observer.table();
      if (flags.host !== undefined && !table.knownHosts().includes(flags.host)) {
        this.fail(`no such host: ${flags.host} (not heard on cluster ${settings.amqp.cluster})`);
      }
      const vms = vmViews(table, observer.lastEvents, now, flags.host);
      const conflicts = vms.filter((v) => v.conflict).length;
      if (vms.length === 0) {
        this.log(
          flags.host
            ? `No VM on ${flags.host}.`
            : `No VM known on cluster ${settings.amqp.cluster}.`,
        );
      } else {
        this.printTable(vms, [
          { header: 'NAME', value: (v) => v.name },
          { header: 'UUID', value: (v) => v.uuid },
          {
            header: 'OWNER',
            value: (v) =>
              v.owners.length === 0 ? '-' : v.owners.join(',') + (v.conflict ? ' CONFLICT' : ''),
          },
          {
            header: 'DEFINED ON',
            value: (v) =>
              v.claimants
                .map(
                  (c) =>
                    `${c.host}${c.hostFenced ? '(fenced)' : c.hostLiveness === 'alive' ? '' : `(${c.hostLiveness})`}`,
                )
                .join(','),
          },
          { header: 'STATE', value: (v) => v.state },
          {
            header: 'LAST EVENT',
            value: (v) =>
              v.lastEvent
                ? `${v.lastEvent.event} on ${v.lastEvent.host}, ${formatAge(v.lastEvent.ageMs)} ago`
                : '-',
          },
        ]);
        if (conflicts > 0) {
          this.log(
            `${conflicts} VM${conflicts === 1 ? '' : 's'} claimed as running by several hosts.`,
          );
        }
      }
      return { cluster: settings.amqp.cluster, host: flags.host ?? null, vms, conflicts };
    });
  }
}
