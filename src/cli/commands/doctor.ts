import { existsSync } from 'node:fs';
import { Args, Flags } from '@oclif/core';
import { blockValues } from '../../config/lookup.js';
import type { DaemonConfig } from '../../config/types.js';
import {
  DEFAULT_IPV4_GROUP,
  DEFAULT_IPV6_GROUP,
  DEFAULT_KEY_FILE,
  DEFAULT_PORT,
  parseHashName,
} from '../../protocol/constants.js';
import { BaseCommand, ExitCode, configFileFlag } from '../base.js';
import {
  checkBroker,
  checkDaemon,
  checkDrops,
  checkFirewall,
  checkKeyFile,
  checkLibvirt,
  checkMembership,
  checkQueriers,
  checkRoute,
  findDaemons,
  probe,
  scrapeDrops,
  type Finding,
} from '../doctor.js';
import { keyFingerprint } from '../fingerprint.js';
import { readFileSync } from 'node:fs';

const MARK: Record<Finding['status'], string> = {
  ok: 'ok  ',
  warn: 'WARN',
  fail: 'FAIL',
  skip: 'skip',
};

export interface DoctorResult {
  role: 'host' | 'guest';
  ok: boolean;
  findings: Finding[];
}

export default class Doctor extends BaseCommand {
  static override summary =
    'Find out why fencing requests time out ("Timed out waiting for response").';
  static override description =
    'host (on a hypervisor, from /etc/fence_virt.conf): the daemon process and its ports, the ' +
    "multicast group's route and membership, IGMP snooping without a querier on bridges, " +
    'firewall rules (nftables, iptables) dropping the UDP request or the TCP callback, the listener ' +
    "keys' fingerprints and the daemon's bad-digest drops (metrics_port), libvirt, and for the " +
    'amqp backend the broker (reachable, credentials) and clock skew from heartbeats. guest (in ' +
    'a VM): key fingerprint, route, firewall, then a real request as fence_xvm sends it. Keys ' +
    'are only ever shown as fingerprints. Exit 1 when a check fails.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> host',
    '<%= config.bin %> <%= command.id %> guest -k /etc/cluster/fence_xvm.key',
    '<%= config.bin %> <%= command.id %> host --peer-fingerprint 3f1a0c9e5b7d2468 --json',
  ];
  static override args = {
    role: Args.string({
      description: 'host or guest (default: host when the configuration file exists)',
      options: ['host', 'guest'],
    }),
  };
  static override flags = {
    config: configFileFlag,
    'key-file': Flags.string({
      char: 'k',
      summary: 'Guest: the key fence_xvm uses.',
      default: DEFAULT_KEY_FILE,
    }),
    address: Flags.string({
      char: 'a',
      summary: 'Guest: multicast group (default 225.0.0.12, ff05::3:1 with -6).',
    }),
    port: Flags.integer({
      char: 'p',
      summary: 'Guest: port (default 1229).',
      default: DEFAULT_PORT,
    }),
    hash: Flags.string({ char: 'c', summary: 'Guest: packet hash.', default: 'sha256' }),
    auth: Flags.string({
      char: 'C',
      summary: 'Guest: challenge-response algorithm.',
      default: 'sha256',
    }),
    timeout: Flags.integer({
      char: 't',
      summary: 'Guest: seconds to wait for the probe’s answer.',
      default: 3,
    }),
    'peer-fingerprint': Flags.string({
      summary:
        'The fingerprint the other side printed (virtfence doctor on it): compared with ours.',
    }),
  };

  async run(): Promise<DoctorResult> {
    const { args, flags } = await this.parse(Doctor);
    const role = (args.role ?? (existsSync(flags.config) ? 'host' : 'guest')) as 'host' | 'guest';
    const findings: Finding[] = [];
    const report = (f: Finding | Finding[]): void => {
      for (const one of Array.isArray(f) ? f : [f]) {
        findings.push(one);
        this.log(`${MARK[one.status]} ${one.check}: ${one.summary}`);
        if (one.fix && (one.status === 'fail' || one.status === 'warn'))
          this.log(`     → ${one.fix}`);
      }
    };
    if (role === 'host') await this.host(flags, report);
    else await this.guest(flags, report);
    const ok = !findings.some((f) => f.status === 'fail');
    this.log(ok ? 'No cause of a timeout found.' : 'See the FAIL lines above.');
    if (!ok) process.exitCode = ExitCode.FAILURE;
    return { role, ok, findings };
  }

  private async guest(
    flags: {
      'key-file': string;
      address?: string;
      port: number;
      hash: string;
      auth: string;
      timeout: number;
      'peer-fingerprint'?: string;
    },
    report: (f: Finding | Finding[]) => void,
  ): Promise<void> {
    const group = flags.address ?? DEFAULT_IPV4_GROUP;
    const hash = parseHashName(flags.hash);
    const auth = parseHashName(flags.auth);
    if (hash === undefined || auth === undefined)
      this.fail('hash and auth: none, sha1, sha256 or sha512', ExitCode.USAGE);
    const keyFinding = checkKeyFile(flags['key-file'], 'key file', flags['peer-fingerprint']);
    report(keyFinding);
    report(await checkRoute(group));
    report(await checkFirewall('guest', flags.port, flags.port));
    if (keyFinding.status === 'fail' && (hash !== 0 || auth !== 0)) {
      report({ check: 'probe', status: 'skip', summary: 'no key to sign a request with' });
      return;
    }
    report(
      await probe({
        group,
        port: flags.port,
        keyFile: flags['key-file'],
        hash: flags.hash,
        auth: flags.auth,
        timeoutSec: flags.timeout,
      }),
    );
  }

  private async host(
    flags: { config: string; 'peer-fingerprint'?: string },
    report: (f: Finding | Finding[]) => void,
  ): Promise<void> {
    let config: DaemonConfig;
    try {
      config = this.loadConfig(flags.config).config;
      report({ check: 'config', status: 'ok', summary: `${flags.config} is valid` });
    } catch (err) {
      report({
        check: 'config',
        status: 'fail',
        summary: (err as Error).message,
        fix: `virtfence config check ${flags.config}`,
      });
      return;
    }
    const fv = config.fenceVirtd;
    const mc = fv.listeners.includes('multicast') ? config.listeners.multicast : undefined;
    const tcp = fv.listeners.includes('tcp') ? config.listeners.tcp : undefined;
    const daemons = findDaemons();
    report(checkDaemon({ udp: mc ? [mc.port] : [], tcp: tcp ? [tcp.port] : [] }, daemons));
    let fingerprint: string | undefined;
    for (const [name, listener] of [
      ['multicast', mc],
      ['tcp', tcp],
    ] as const) {
      if (!listener) continue;
      const f = checkKeyFile(listener.keyFile, `${name} listener key`, flags['peer-fingerprint']);
      report(f);
      try {
        fingerprint ??= keyFingerprint(readFileSync(listener.keyFile).subarray(0, 4096));
      } catch {
        // reported above
      }
    }
    if (mc) {
      const group = mc.address || (mc.family === 'ipv6' ? DEFAULT_IPV6_GROUP : DEFAULT_IPV4_GROUP);
      report(await checkRoute(group));
      report(checkMembership(group, mc.interface, daemons.length > 0));
      report(await checkFirewall('host', mc.port, mc.port));
    } else if (tcp) {
      report(await checkFirewall('host', tcp.port, tcp.port));
    }
    report(await checkQueriers(mc?.interface));
    if (fv.metrics)
      report(checkDrops(await scrapeDrops(fv.metrics.address, fv.metrics.port), fingerprint));
    else report(checkDrops(undefined, fingerprint));
    if (fv.backend === 'libvirt') report(await checkLibvirt(config.backends.libvirt.uris));
    if (fv.backend === 'amqp') {
      const block = blockValues(config.tree, 'backends/amqp');
      const uris = Object.entries(block)
        .filter(([k]) => /^uri\d*$/.test(k))
        .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
        .map(([, v]) => v);
      report(await checkLibvirt(uris.length > 0 ? uris : ['qemu:///system']));
      report(await checkBroker({ block }));
    }
  }
}
