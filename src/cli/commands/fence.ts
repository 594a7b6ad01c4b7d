import { Args, Flags } from '@oclif/core';
import type { FenceAction } from '../../backends/backend.js';
import { BrokerCommand } from '../observer/command.js';
import { resultName, stateName } from '../observer/format.js';
import type { HostReplyRecord } from '../observer/observer.js';
import { brokerFlags, parseSeconds } from '../observer/settings.js';

const ACTIONS = ['off', 'on', 'reboot', 'status'] as const;

export interface FenceCommandResult {
  target: string;
  action: FenceAction;
  requestId: string;
  route: string;
  hosts: string[];
  sent: boolean;
  code: number;
  result: string;
  reason: string;
  executedBy: string | null;
  replies: Array<{ host: string; reply: HostReplyRecord | null }>;
}

/**
 * Exit codes like the fence agents: 0 success (status: ON), 2 status OFF, 1 failure,
 * 3 permission denied.
 */
export default class Fence extends BrokerCommand {
  static override summary = 'Fence a VM through the broker, as a daemon would.';
  static override description =
    'Listens to the cluster, decides the route with the routing code, and sends a signed fence ' +
    "request to the owner's request queue (to every claimant if several) with the CLI's own " +
    "reply queue, waits for the replies until --timeout and combines them with the daemons' " +
    'safety rules. Needs the cluster key. A VM no host claims, or whose owner is dead, is ' +
    'answered without sending anything. Exit codes like fence_xvm: 0 success (status: on), ' +
    '2 off, 1 failure, 3 permission denied.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> vm-web1 -o off',
    '<%= config.bin %> <%= command.id %> 0c000000-0000-4000-8000-000000000001 -o status',
    '<%= config.bin %> <%= command.id %> vm-web1 -o reboot --timeout 30 --json',
  ];
  static override args = {
    vm: Args.string({ description: 'VM name or UUID.', required: true }),
  };
  static override flags = {
    ...brokerFlags,
    action: Flags.string({
      char: 'o',
      summary: 'Fence action.',
      options: [...ACTIONS],
      default: 'reboot',
    }),
    timeout: Flags.custom<number>({
      summary: 'How long to wait for the executing host(s) to reply (default 20).',
      helpValue: 'SECONDS',
      parse: async (input) => parseSeconds(input, '--timeout'),
    })(),
  };

  async run(): Promise<FenceCommandResult> {
    const { args, flags } = await this.parse(Fence);
    const settings = await this.brokerSettings(flags);
    const action = flags.action as FenceAction;
    const timeoutMs = flags.timeout ?? 20_000;
    const options = { waitMs: settings.waitMs, replyQueue: true };
    return this.withObserver(settings, options, async (observer) => {
      const r = await observer.fence(args.vm, action, timeoutMs);
      const result: FenceCommandResult = {
        target: args.vm,
        action,
        requestId: r.requestId,
        route: r.decision.kind,
        hosts: r.decision.hosts,
        sent: r.sent,
        code: r.outcome.code,
        result: resultName(r.outcome.code),
        reason: r.outcome.reason,
        executedBy: r.outcome.executedBy ?? null,
        replies: r.replies.map((x) => ({ host: x.host, reply: x.reply ?? null })),
      };
      for (const x of r.replies) {
        this.progress(
          x.reply
            ? `${x.host}: ${x.reply.code} ${resultName(x.reply.code)} (${x.reply.reason}), ` +
                `vm ${stateName(x.reply.vmState)}, ${x.reply.latencyMs} ms`
            : `${x.host}: no reply within ${(timeoutMs / 1000).toFixed(1)} s`,
        );
      }
      if (action === 'status' && (r.outcome.code === 0 || r.outcome.code === 2)) {
        this.log(`Status: ${r.outcome.code === 0 ? 'ON' : 'OFF'}`);
      } else {
        this.log(
          `${action} ${args.vm}: ${resultName(r.outcome.code)} (${r.outcome.reason})` +
            (r.outcome.executedBy ? ` by ${r.outcome.executedBy}` : '') +
            (r.sent ? ` [request ${r.requestId}]` : ' [nothing sent]'),
        );
      }
      process.exitCode = r.outcome.code;
      return result;
    });
  }
}
