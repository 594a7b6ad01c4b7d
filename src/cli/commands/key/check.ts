import { Flags } from '@oclif/core';
import type { RejectReason } from '../../../messages/sign.js';
import { ExitCode } from '../../base.js';
import { keyFingerprint } from '../../fingerprint.js';
import { BrokerCommand } from '../../observer/command.js';
import type { ObservedHost } from '../../observer/observer.js';
import { brokerFlags } from '../../observer/settings.js';

export type KeyVerdict = 'match' | 'mismatch' | 'unknown';

export interface KeyCheckHost {
  host: string;
  verdict: KeyVerdict;
  /** Our fingerprint for a match; null otherwise (another key's fingerprint is never sent). */
  fingerprint: string | null;
  verified: number;
  rejected: Partial<Record<RejectReason, number>>;
  note: string;
}

export interface KeyCheckResult {
  cluster: string;
  keyFile: string;
  fingerprint: string;
  hosts: KeyCheckHost[];
  mismatched: number;
  unknown: number;
}

/** The verdict for one host from what the observer heard (pure). */
export function keyVerdict(o: ObservedHost | undefined): { verdict: KeyVerdict; note: string } {
  if (!o || (o.verified === 0 && Object.keys(o.rejected).length === 0)) {
    return { verdict: 'unknown', note: 'nothing heard from it' };
  }
  const bad = o.rejected['bad-signature'] ?? 0;
  if (bad > 0 && o.verified === 0) {
    return { verdict: 'mismatch', note: `${bad} message(s) failed signature verification` };
  }
  if (bad > 0) {
    return {
      verdict: 'mismatch',
      note: `${bad} bad signature(s) beside ${o.verified} good: two senders with this id, or a key changed`,
    };
  }
  if (o.verified > 0) {
    const skew = o.rejected['out-of-window'] ?? 0;
    return {
      verdict: 'match',
      note: skew > 0 ? `${skew} message(s) outside the time window: check its clock` : '',
    };
  }
  const reasons = Object.entries(o.rejected)
    .map(([r, n]) => `${r} ×${n}`)
    .join(', ');
  return { verdict: 'unknown', note: `only unverifiable messages (${reasons})` };
}

export default class KeyCheck extends BrokerCommand {
  static override summary = 'Compare the cluster key of every host through the broker.';
  static override description =
    'Every message on the bus is signed with the cluster key (HMAC-SHA-256). The check listens ' +
    'for --wait: a host whose messages verify with our key has the same key (match); a host ' +
    "whose messages fail signature verification has another key (mismatch; the sender's id is " +
    'read from the unverified message and trusted for nothing else); a host given with --host ' +
    'but not heard is unknown. Only fingerprints are shown, never the key. Exits 1 when a ' +
    'host mismatches or an expected host is unknown.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --host hv1 --host hv2 --host hv3',
    '<%= config.bin %> <%= command.id %> --key-file /etc/cluster/virtfence-cluster.key --json',
  ];
  static override flags = {
    ...brokerFlags,
    host: Flags.string({
      char: 'H',
      summary: 'A host expected in the cluster (repeatable): reported unknown if not heard.',
      multiple: true,
      helpValue: 'HOST',
    }),
  };

  async run(): Promise<KeyCheckResult> {
    const { flags } = await this.parse(KeyCheck);
    const settings = await this.brokerSettings(flags);
    return this.withObserver(
      settings,
      { waitMs: settings.waitMs, verifyTap: true },
      async (observer) => {
        const fingerprint = keyFingerprint(settings.key);
        const ids = new Set<string>([...observer.hosts.keys(), ...(flags.host ?? [])]);
        ids.delete(settings.observerId);
        const hosts: KeyCheckHost[] = [...ids].sort().map((host) => {
          const o = observer.hosts.get(host);
          const { verdict, note } = keyVerdict(o);
          return {
            host,
            verdict,
            fingerprint: verdict === 'match' ? fingerprint : null,
            verified: o?.verified ?? 0,
            rejected: { ...(o?.rejected ?? {}) },
            note,
          };
        });
        // Hosts known only from others' evidence say nothing about their key.
        const reported = hosts.filter(
          (h) =>
            h.verdict !== 'unknown' ||
            (flags.host ?? []).includes(h.host) ||
            h.note !== 'nothing heard from it',
        );
        this.log(`Our key ${settings.amqp.keyFile}: fingerprint ${fingerprint}`);
        if (reported.length === 0) this.log(`No host heard on cluster ${settings.amqp.cluster}.`);
        else
          this.printTable(reported, [
            { header: 'HOST', value: (h) => h.host },
            { header: 'KEY', value: (h) => h.verdict },
            {
              header: 'FINGERPRINT',
              value: (h) => h.fingerprint ?? (h.verdict === 'mismatch' ? 'differs' : '-'),
            },
            { header: 'NOTE', value: (h) => h.note },
          ]);
        const mismatched = reported.filter((h) => h.verdict === 'mismatch').length;
        const unknown = reported.filter((h) => h.verdict === 'unknown').length;
        // Nobody heard is no proof of anything: fail too.
        if (mismatched > 0 || unknown > 0 || reported.length === 0)
          process.exitCode = ExitCode.FAILURE;
        return {
          cluster: settings.amqp.cluster,
          keyFile: settings.amqp.keyFile,
          fingerprint,
          hosts: reported,
          mismatched,
          unknown,
        };
      },
    );
  }
}
