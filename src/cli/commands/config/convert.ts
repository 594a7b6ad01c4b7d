import { existsSync, readFileSync } from 'node:fs';
import { Args, Flags } from '@oclif/core';
import { writeFileAtomically } from '../../../config/atomic-write.js';
import { convertConfig, type ConversionEntry } from '../../../config/convert.js';
import { DEFAULT_CONFIG_FILE } from '../../../protocol/constants.js';
import { BaseCommand } from '../../base.js';

export interface ConfigConvertResult {
  source: string;
  format: 'cluster.conf' | 'fence_virt.conf';
  output: string | undefined;
  kept: ConversionEntry[];
  mapped: ConversionEntry[];
  added: ConversionEntry[];
  dropped: ConversionEntry[];
  /** The converted configuration (also written to --output when given). */
  config: string;
}

function describe(entry: ConversionEntry): string {
  const value = entry.value === undefined ? '' : ` = "${entry.value}"`;
  const route = entry.from && entry.to ? `${entry.from} -> ${entry.to}` : (entry.to ?? entry.from);
  return `${route}${value}${entry.reason ? ` (${entry.reason})` : ''}`;
}

export default class ConfigConvert extends BaseCommand {
  static override summary = 'Convert a cluster.conf <fence_xvmd/> or an old fence_virt.conf.';
  static override description =
    'Reads a cluster.conf holding a <fence_xvmd .../> element (key_file, multicast_address, ' +
    'port, family, auth, hash, multicast_interface, debug) or an existing fence_virt.conf, ' +
    'and writes a normalised fence_virt.conf: no duplicates, no unknown keys, legacy keys ' +
    'moved. It reports what was kept, mapped, added and dropped. Without --output the ' +
    'configuration goes to stdout and the report to stderr.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> /etc/cluster/cluster.conf --output /etc/fence_virt.conf',
    '<%= config.bin %> <%= command.id %> /etc/fence_virt.conf > fence_virt.conf.new',
    '<%= config.bin %> <%= command.id %> old.conf --json',
  ];
  static override args = {
    source: Args.string({
      description: 'cluster.conf or fence_virt.conf to convert.',
      default: DEFAULT_CONFIG_FILE,
    }),
  };
  static override flags = {
    output: Flags.string({
      char: 'o',
      summary: 'Write the result to FILE (mode 0600).',
      helpValue: 'FILE',
    }),
    force: Flags.boolean({ summary: 'Replace --output if it exists.' }),
  };

  async run(): Promise<ConfigConvertResult> {
    const { args, flags } = await this.parse(ConfigConvert);
    let text: string;
    try {
      text = readFileSync(args.source, 'utf8');
    } catch (error) {
      this.fail(`cannot read ${args.source}: ${(error as Error).message}`);
    }
    let conversion;
    try {
      conversion = convertConfig(text, args.source);
    } catch (error) {
      this.fail(`cannot convert ${args.source}: ${(error as Error).message}`);
    }
    if (flags.output) {
      if (existsSync(flags.output) && !flags.force) {
        this.fail(`${flags.output} already exists; use --force to replace it`);
      }
      writeFileAtomically(flags.output, conversion.text);
    }
    this.report(conversion, args.source, flags.output);
    return {
      source: args.source,
      format: conversion.source,
      output: flags.output,
      kept: conversion.kept,
      mapped: conversion.mapped,
      added: conversion.added,
      dropped: conversion.dropped,
      config: conversion.text,
    };
  }

  private report(
    conversion: { source: string; text: string } & Record<
      'kept' | 'mapped' | 'added' | 'dropped',
      ConversionEntry[]
    >,
    file: string,
    output: string | undefined,
  ): void {
    if (this.jsonEnabled()) return;
    // The report goes where it does not mix with the configuration text.
    const say = output
      ? (line: string) => this.log(line)
      : (line: string) => this.logToStderr(line);
    if (!output) process.stdout.write(conversion.text);
    say(`Converted ${file} (${conversion.source})${output ? ` into ${output}` : ''}:`);
    for (const section of ['kept', 'mapped', 'added', 'dropped'] as const) {
      const entries = conversion[section];
      say(`  ${section} (${entries.length})${entries.length ? ':' : ''}`);
      for (const entry of entries) say(`    ${describe(entry)}`);
    }
  }
}
