import { Args, Flags } from '@oclif/core';
import type { FenceAction } from '../../backends/backend.js';
import { expandAddress } from '../../amqp/profiles.js';
import { PermissionMap } from '../../routing/permissions.js';
import { decideRoute, outcomeWithoutExecution, type RouteKind } from '../../routing/route.js';
import { ExitCode } from '../base.js';
import { BrokerCommand } from '../observer/command.js';
import { formatAge, resultName } from '../observer/format.js';
import { brokerFlags } from '../observer/settings.js';

const ACTIONS = ['off', 'on', 'reboot', 'status'] as const;

export interface RouteResult {
  target: string;
  action: FenceAction;
  from: string | null;
  route: RouteKind;
  reason: string;
  uuid: string | null;
  /** Hosts that would execute it (local/remote), or the dead/fenced owners. */
  hosts: string[];
  fenced: string[];
  /** Where the request would be sent (remote). */
  requestAddresses: string[];
  /** The answer given without executing anything (unknown, owner-dead, owner-fenced, denied). */
  answer: { code: number; result: string; reason: string } | null;
  permission: {
    enforcing: boolean;
    source: string | null;
    allowed: boolean | null;
  };
  evidence: Array<{ host: string; by: string; fencedAt: number; evidence: string }>;
  explanation: string[];
}

export default class Route extends BrokerCommand {
  static override summary =
    'Explain which host would execute a fence request, without executing it.';
  static override description =
    "Listens to the cluster, builds the daemons' ownership table and asks the routing code's " +
    'own decision function where a request for VM would go: the owner (and its request queue), ' +
    'nowhere because the VM is unknown, a dead owner (FAIL, with the heartbeat evidence), or a ' +
    'fenced owner (off/reboot succeed without execution). --from names the host whose listener ' +
    "receives the request (its view: 'local' when it owns the VM); --source checks the config's " +
    'groups permission map for that requester. Exits 0 when the request would be executed or ' +
    'answered by fencing evidence, 1 when it would fail (unknown or ambiguous VM, dead owner, ' +
    'denied).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> vm-web1',
    '<%= config.bin %> <%= command.id %> 0c000000-0000-4000-8000-000000000001 --from hv1 --action off',
    '<%= config.bin %> <%= command.id %> vm-web1 --from hv1 --source 192.168.122.10 --json',
  ];
  static override args = {
    vm: Args.string({ description: 'VM name or UUID.', required: true }),
  };
  static override flags = {
    ...brokerFlags,
    from: Flags.string({
      summary: 'Host whose listener receives the request (default: an outside observer).',
      helpValue: 'HOST',
    }),
    action: Flags.string({
      char: 'o',
      summary: 'Fence action.',
      options: [...ACTIONS],
      default: 'reboot',
    }),
    source: Flags.string({
      summary: 'Requester IP (multicast/tcp) or VM UUID (serial) for the groups check.',
      helpValue: 'IP',
    }),
  };

  async run(): Promise<RouteResult> {
    const { args, flags } = await this.parse(Route);
    const settings = await this.brokerSettings(flags);
    const action = flags.action as FenceAction;
    return this.withObserver(settings, { waitMs: settings.waitMs }, async (observer) => {
      const now = Date.now();
      const self = flags.from ?? settings.observerId;
      const table = observer.table(self);
      const explanation: string[] = [];
      if (flags.from !== undefined) {
        const seen = observer.table().livenessOf(flags.from, now);
        if (seen === 'unknown') {
          explanation.push(`${flags.from} was not heard on the broker: its daemon may be down.`);
        } else if (seen === 'dead') {
          explanation.push(`${flags.from} is not heartbeating: it would not receive the request.`);
        }
      }
      const decision = decideRoute(table, args.vm, now, action);
      const fixed = outcomeWithoutExecution(decision, action);
      const permissions = new PermissionMap(settings.groups);
      let allowed: boolean | null = null;
      if (permissions.enforcing) {
        if (flags.source !== undefined) {
          allowed = permissions.allows(flags.source, args.vm);
          if (allowed) explanation.push(`groups allow ${flags.source} to act on ${args.vm}.`);
        } else explanation.push('groups are enforced by the config; give --source to check them.');
      }
      const ageOf = (host: string) => {
        const at = observer.hosts.get(host)?.lastStatusAt;
        return at === undefined
          ? 'no heartbeat heard'
          : `last heartbeat ${formatAge(now - at)} ago`;
      };
      const evidence = decision.fenced.map((host) => {
        const ev = observer.hosts.get(host)?.evidence;
        return {
          host,
          by: ev?.by ?? 'unknown',
          fencedAt: ev?.fencedAt ?? 0,
          evidence: ev?.evidence ?? '',
        };
      });
      const requestAddresses: string[] = [];
      switch (decision.kind) {
        case 'local':
          explanation.push(
            `${self} owns ${args.vm} and executes the request itself (${ageOf(self)}).`,
          );
          break;
        case 'remote':
          for (const host of decision.hosts) {
            requestAddresses.push(
              expandAddress(settings.profile.requestAddress, {
                cluster: settings.amqp.cluster,
                host,
              }),
            );
            explanation.push(
              `${host} ${decision.hosts.length > 1 ? 'claims' : 'owns'} ${args.vm} ` +
                `(${table.livenessOf(host, now)}, ${ageOf(host)}); the request goes to ` +
                `${requestAddresses[requestAddresses.length - 1]}.`,
            );
          }
          if (decision.hosts.length > 1) {
            explanation.push(
              'Several hosts claim it: every one must answer for the request to succeed.',
            );
          }
          break;
        case 'unknown':
          explanation.push(`No host claims ${args.vm}: it is an unknown VM.`);
          break;
        case 'ambiguous':
          explanation.push(`Several VMs are named ${args.vm}: give its UUID.`);
          break;
        case 'migrated-away':
          explanation.push(
            `${decision.hosts.join(',')} saw ${args.vm} migrate to another host, which has not ` +
              'reported it yet: nothing can be promised until it does.',
          );
          break;
        case 'owner-dead':
          for (const host of decision.hosts) {
            explanation.push(
              `${host} claims ${args.vm} but is dead (${ageOf(host)}, dead_after ` +
                `${settings.amqp.deadAfter} ms) and no fencing evidence covers it: nothing can be promised.`,
            );
          }
          break;
        case 'owner-fenced':
          for (const e of evidence) {
            explanation.push(
              `${e.host} owned ${args.vm} and was fenced by ${e.by} at ` +
                `${new Date(e.fencedAt).toISOString()}${e.evidence ? ` (${e.evidence})` : ''}: its VMs count as off.`,
            );
          }
          break;
      }
      let answer: RouteResult['answer'] = fixed
        ? { code: fixed.code, result: resultName(fixed.code), reason: fixed.reason }
        : null;
      if (allowed === false) {
        answer = { code: 3, result: resultName(3), reason: 'permission-denied' };
        explanation.push(
          `groups deny ${flags.source} acting on ${args.vm}: the listener answers 3.`,
        );
      }
      const result: RouteResult = {
        target: args.vm,
        action,
        from: flags.from ?? null,
        route: decision.kind,
        reason: decision.reason,
        uuid: decision.uuid ?? null,
        hosts: decision.hosts,
        fenced: decision.fenced,
        requestAddresses,
        answer,
        permission: {
          enforcing: permissions.enforcing,
          source: flags.source ?? null,
          allowed,
        },
        evidence,
        explanation,
      };
      this.log(
        `${action} ${args.vm}${flags.from ? ` received by ${flags.from}` : ''}: ${decision.kind}` +
          (decision.hosts.length > 0 ? ` → ${decision.hosts.join(',')}` : '') +
          ` (${decision.reason})`,
      );
      if (answer)
        this.log(`answer without execution: ${answer.code} ${answer.result} (${answer.reason})`);
      for (const line of explanation) this.log(`  ${line}`);
      const ok =
        (decision.kind === 'local' ||
          decision.kind === 'remote' ||
          decision.kind === 'owner-fenced') &&
        allowed !== false;
      if (!ok) process.exitCode = ExitCode.FAILURE;
      return result;
    });
  }
}
