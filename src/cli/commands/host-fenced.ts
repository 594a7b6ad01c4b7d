import { Args, Flags } from '@oclif/core';
import { IdentifierSchema } from '../../messages/schemas.js';
import { BrokerCommand } from '../observer/command.js';
import { brokerFlags } from '../observer/settings.js';

export interface HostFencedResult {
  host: string;
  by: string;
  fencedAt: number;
  evidence: string;
  messageId: string;
  /** The host's boot epoch, when it was heard during --wait. */
  epoch: number | null;
}

export default class HostFenced extends BrokerCommand {
  static override summary = 'Publish signed evidence that a physical host was fenced.';
  static override description =
    "For a host cluster's fencing hook or an operator: once a hypervisor host is known to be " +
    "powered off, publish it so every daemon counts that host's VMs as off (off/reboot then " +
    'succeed without execution, status says OFF) until the host heartbeats again. Needs the ' +
    'cluster key. Only publish after the host is really off: a running host with evidence ' +
    'against it could run VMs that are reported off.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> hv3 --by stonith-ipmi --evidence "ipmitool power off: ok"',
    '<%= config.bin %> <%= command.id %> hv3 --by operator --json',
  ];
  static override args = {
    host: Args.string({ description: 'Host id of the fenced host.', required: true }),
  };
  static override flags = {
    ...brokerFlags,
    by: Flags.string({
      summary: 'Who fenced it (fencing device, cluster node, operator).',
      default: 'virtfence-cli',
      helpValue: 'WHO',
    }),
    evidence: Flags.string({
      summary: 'Free text: how it was fenced.',
      default: '',
      helpValue: 'TEXT',
    }),
  };

  async run(): Promise<HostFencedResult> {
    const { args, flags } = await this.parse(HostFenced);
    if (!IdentifierSchema.safeParse(args.host).success) this.fail(`not a host id: ${args.host}`);
    if (flags.by.length === 0 || flags.by.length > 256) this.fail('--by: 1 to 256 characters');
    if (flags.evidence.length > 4096) this.fail('--evidence: at most 4096 characters');
    const settings = await this.brokerSettings(flags);
    // A short listen first, so the host's boot epoch (if it still talks) goes with the evidence.
    const waitMs = flags.wait ?? 0;
    return this.withObserver(settings, { waitMs, resync: false }, async (observer) => {
      const fencedAt = Date.now();
      const epoch = observer.hosts.get(args.host)?.status?.epoch ?? null;
      const message = await observer.publishHostFenced({
        host: args.host,
        fencedAt,
        by: flags.by,
        evidence: flags.evidence,
        ...(epoch !== null ? { epoch } : {}),
      });
      this.log(
        `Published: ${args.host} fenced by ${flags.by} at ${new Date(fencedAt).toISOString()}` +
          ` (cluster ${settings.amqp.cluster}).`,
      );
      return {
        host: args.host,
        by: flags.by,
        fencedAt,
        evidence: flags.evidence,
        messageId: message.id,
        epoch,
      };
    });
  }
}
