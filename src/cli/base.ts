/**
 * Shared behaviour of every `virtfence` command:
 * - `--json`: `run()` returns the result object and oclif prints it as JSON; people get text;
 * - `printTable()` for lists meant for people;
 * - errors are ONE line on stderr (`virtfence <command>: <message>`) with a non-zero exit
 *   code, or `{"error": {"message", "exitCode"}}` on stdout with `--json`;
 * - `loadConfig()` reads fence_virt.conf for commands that need it (e.g. broker commands).
 */
import { Command, Errors, Flags } from '@oclif/core';
import { loadConfigFile, type LoadedConfig } from '../config/load.js';
import { ConfigSyntaxError } from '../config/parser.js';
import { ConfigError } from '../config/schema.js';
import { DEFAULT_CONFIG_FILE } from '../protocol/constants.js';
import { errText } from '../util/errors.js';

/**
 * Exit codes shared by all commands. oclif's own usage errors (unknown flag, unexpected or
 * missing argument, invalid flag value) carry USAGE through the `exitCodes` setting in
 * package.json.
 */
export const ExitCode = {
  OK: 0,
  /** The operation failed or found problems. */
  FAILURE: 1,
  /** Wrong usage: unknown flag, missing argument. */
  USAGE: 2,
} as const;

/** `--config FILE`, for commands that read fence_virt.conf. */
export const configFileFlag = Flags.string({
  char: 'f',
  summary: 'fence_virt.conf to read.',
  default: DEFAULT_CONFIG_FILE,
  helpValue: 'FILE',
});

export interface TableColumn<Row> {
  header: string;
  value: (row: Row) => string;
}

/** Left-aligned columns separated by two spaces, with a header row. */
export function formatTable<Row>(
  rows: readonly Row[],
  columns: readonly TableColumn<Row>[],
): string {
  const cells = [columns.map((c) => c.header), ...rows.map((r) => columns.map((c) => c.value(r)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => (line[i] ?? '').length)));
  return cells
    .map((line) =>
      line
        .map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** A failure with its exit code; the message is shown as is, on one line. */
export class CommandFailure extends Errors.CLIError {
  constructor(message: string, exitCode: number = ExitCode.FAILURE) {
    super(message, { exit: exitCode });
  }
}

function exitCodeOf(error: unknown): number {
  if (error instanceof Errors.CLIError) return error.oclif.exit ?? ExitCode.FAILURE;
  const code = (error as { exitCode?: unknown; oclif?: { exit?: unknown } }).oclif?.exit;
  return typeof code === 'number' ? code : ExitCode.FAILURE;
}

export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true;

  /** Prints a table for people (nothing in --json mode). */
  protected printTable<Row>(rows: readonly Row[], columns: readonly TableColumn<Row>[]): void {
    this.log(formatTable(rows, columns));
  }

  /** Throws a one-line failure with an exit code. */
  protected fail(message: string, exitCode: number = ExitCode.FAILURE): never {
    throw new CommandFailure(message, exitCode);
  }

  /** Loads fence_virt.conf; problems become one-line failures naming file and line. */
  protected loadConfig(file: string): LoadedConfig {
    try {
      return loadConfigFile(file);
    } catch (error) {
      if (error instanceof ConfigSyntaxError || error instanceof ConfigError) {
        this.fail(`${error.message} (run 'virtfence config check ${file}' for details)`);
      }
      this.fail(errText(error));
    }
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<void> {
    this.parsed = true; // a parse failure is reported here; no "did not parse" warning
    const exitCode = exitCodeOf(error);
    if (exitCode === 0) return; // this.exit(0)
    process.exitCode = exitCode;
    const message = oneLine(error.message);
    if (this.jsonEnabled()) {
      this.logJson({ error: { message, exitCode } });
    } else {
      const hint = exitCode === ExitCode.USAGE ? ` (see 'virtfence ${this.id ?? ''} --help')` : '';
      process.stderr.write(
        `virtfence${this.id ? ' ' + this.id.replace(/:/g, ' ') : ''}: ${message}${hint}\n`,
      );
    }
  }
}

function oneLine(message: string): string {
  return message
    .replace(/\n\s*See more help with --help\s*$/i, '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .join('; ');
}
