import { Flags } from '@oclif/core';
import { runWizard } from '../../../config/wizard.js';
import { DEFAULT_CONFIG_FILE } from '../../../protocol/constants.js';
import { BaseCommand } from '../../base.js';

export default class ConfigInit extends BaseCommand {
  static override enableJsonFlag = false;
  static override summary = 'Create or update fence_virt.conf interactively (like fence_virtd -c).';
  static override description =
    'Asks the same questions as `fence_virtd -c`, shows the resulting configuration and, ' +
    'once confirmed, replaces the file atomically with mode 0600. Exits 1 when not saved.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --file /tmp/fence_virt.conf',
  ];
  static override flags = {
    file: Flags.string({
      char: 'f',
      summary: 'Configuration file to create or update.',
      default: DEFAULT_CONFIG_FILE,
      helpValue: 'FILE',
    }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ConfigInit);
    const code = await runWizard({
      input: process.stdin,
      output: process.stdout,
      configFile: flags.file,
    });
    process.exitCode = code;
  }
}
