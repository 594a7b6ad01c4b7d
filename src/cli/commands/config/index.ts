import { Help } from '@oclif/core';
import { BaseCommand } from '../../base.js';

/** `virtfence config`: the topic's own entry, listing its commands. */
export default class ConfigTopic extends BaseCommand {
  static override enableJsonFlag = false;
  static override summary = 'Create, check and convert fence_virt.conf.';
  static override examples = [
    '<%= config.bin %> config init --file /etc/fence_virt.conf',
    '<%= config.bin %> config check /etc/fence_virt.conf',
    '<%= config.bin %> config convert /etc/cluster/cluster.conf --output /etc/fence_virt.conf',
  ];

  async run(): Promise<void> {
    await this.parse(ConfigTopic);
    await new Help(this.config).showHelp(['config']);
  }
}
