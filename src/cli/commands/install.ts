import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base.js';
import { InstallError, install, type Role, type Step } from '../installer.js';

export default class Install extends BaseCommand {
  static override summary =
    'Install our fence_virtd (host) or fence_xvm/fence_virt (guest) into /usr/sbin.';
  static override description =
    'Diverts the C programs the Debian way (dpkg-divert --local --rename: fence_virt → ' +
    'fence_virt.distrib; on Debian fence_xvm is a symlink to fence_virt, diverted as such), then ' +
    'writes launchers in /usr/sbin that run this installation with an absolute Node path, so ' +
    "Pacemaker's fencer (which runs agents only from /usr/sbin, with a minimal PATH) runs ours. " +
    'host also installs /etc/systemd/system/fence_virtd.service (Type=notify, hardened), ' +
    '/etc/virtfence/fence_virt.conf.sample (and /etc/fence_virt.conf when there is none) and ' +
    '/etc/logrotate.d/virtfence. `virtfence uninstall` puts the C programs back.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> host',
    '<%= config.bin %> <%= command.id %> guest --node /usr/bin/node',
    '<%= config.bin %> <%= command.id %> guest --dry-run',
  ];
  static override args = {
    role: Args.string({ description: 'host or guest', options: ['host', 'guest'], required: true }),
  };
  static override flags = {
    node: Flags.string({
      summary: 'Node.js binary the launchers run (default: the one running this command).',
      helpValue: 'PATH',
    }),
    'dry-run': Flags.boolean({ summary: 'Print what would be done, change nothing.' }),
  };

  async run(): Promise<{ role: Role; dryRun: boolean; steps: Step[] }> {
    const { args, flags } = await this.parse(Install);
    const role = args.role as Role;
    let steps: Step[];
    try {
      steps = install({
        role,
        dryRun: flags['dry-run'],
        ...(flags.node !== undefined ? { node: flags.node } : {}),
      });
    } catch (err) {
      if (err instanceof InstallError) this.fail(err.message);
      this.fail(`${(err as Error).message}`);
    }
    for (const s of steps)
      this.log(`${s.action.padEnd(7)} ${s.path}${s.detail ? '  (' + s.detail + ')' : ''}`);
    if (!flags['dry-run']) {
      this.log(
        role === 'host'
          ? 'Installed. Check the configuration (virtfence config check), then: systemctl enable --now fence_virtd'
          : 'Installed. Check with: fence_xvm -o list (or virtfence doctor)',
      );
    }
    return { role, dryRun: flags['dry-run'], steps };
  }
}
