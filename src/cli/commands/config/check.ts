import { readFileSync } from 'node:fs';
import { Args } from '@oclif/core';
import { checkConfigText, formatIssue, statProbe, type CheckIssue } from '../../../config/check.js';
import { DEFAULT_CONFIG_FILE } from '../../../protocol/constants.js';
import { BaseCommand, ExitCode } from '../../base.js';

export interface ConfigCheckResult {
  file: string;
  valid: boolean;
  errors: number;
  warnings: number;
  issues: CheckIssue[];
  listeners?: string[];
  backend?: string;
}

export default class ConfigCheck extends BaseCommand {
  static override summary = 'Validate a fence_virt.conf and explain every problem.';
  static override description =
    'Reports syntax errors with line and column, invalid values with their key and line, ' +
    'unknown listeners or backends and missing key files as errors (the daemon would not ' +
    'start), and unknown or duplicated keys, top-level keys and loose file modes as warnings. ' +
    'Exits 1 when there is at least one error.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> /etc/fence_virt.conf --json',
  ];
  static override args = {
    file: Args.string({
      description: 'Configuration file to check.',
      default: DEFAULT_CONFIG_FILE,
    }),
  };

  async run(): Promise<ConfigCheckResult> {
    const { args } = await this.parse(ConfigCheck);
    let text: string;
    try {
      text = readFileSync(args.file, 'utf8');
    } catch (error) {
      this.fail(`cannot read ${args.file}: ${(error as Error).message}`);
    }
    const check = checkConfigText(text, args.file, statProbe);
    const errors = check.issues.filter((i) => i.severity === 'error').length;
    const warnings = check.issues.length - errors;
    for (const issue of check.issues) this.log(formatIssue(args.file, issue));
    const summary = check.config
      ? `listeners: ${check.config.fenceVirtd.listeners.join(', ')}; backend: ${check.config.fenceVirtd.backend}`
      : undefined;
    const counts = `${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`;
    this.log(
      `${args.file}: ${check.valid ? 'valid' : 'invalid'} (${counts})${summary ? '; ' + summary : ''}`,
    );
    if (!check.valid) process.exitCode = ExitCode.FAILURE;
    return {
      file: args.file,
      valid: check.valid,
      errors,
      warnings,
      issues: check.issues,
      ...(check.config
        ? { listeners: check.config.fenceVirtd.listeners, backend: check.config.fenceVirtd.backend }
        : {}),
    };
  }
}
