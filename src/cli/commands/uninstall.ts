import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base.js';
import { InstallError, uninstall, type Role, type Step } from '../installer.js';

export default class Uninstall extends BaseCommand {
  static override summary =
    'Remove what `virtfence install` put in place and restore the C programs.';
  static override description =
    'Removes our launchers, the unit, the sample configuration and the logrotate file that ' +
    'install recorded, and renames the diverted C programs back (dpkg-divert --rename --remove). ' +
    '/etc/fence_virt.conf is left alone.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> guest',
  ];
  static override args = {
    role: Args.string({
      description: 'host or guest (default: both, as installed)',
      options: ['host', 'guest'],
    }),
  };
  static override flags = {
    'dry-run': Flags.boolean({ summary: 'Print what would be done, change nothing.' }),
  };

  async run(): Promise<{ dryRun: boolean; steps: Step[] }> {
    const { args, flags } = await this.parse(Uninstall);
    let steps: Step[];
    try {
      steps = uninstall({
        dryRun: flags['dry-run'],
        ...(args.role !== undefined ? { role: args.role as Role } : {}),
      });
    } catch (err) {
      if (err instanceof InstallError) this.fail(err.message);
      this.fail(`${(err as Error).message}`);
    }
    if (steps.length === 0) this.log('Nothing installed.');
    for (const s of steps)
      this.log(`${s.action.padEnd(7)} ${s.path}${s.detail ? '  (' + s.detail + ')' : ''}`);
    return { dryRun: flags['dry-run'], steps };
  }
}
