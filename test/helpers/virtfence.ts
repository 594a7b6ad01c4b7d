/**
 * `virtfence` commands in this process (@oclif/test runCommand on the built commands in dist/):
 * for commands whose behaviour does not depend on being a separate process. Commands that read
 * stdin interactively or need a process of their own are still spawned.
 */
import { Console } from 'node:console';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from '@oclif/test';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `virtfence ARGS` in `cwd`; the exit code is what the command set or threw. */
export async function virtfenceInProcess(args: string[], cwd: string): Promise<CliResult> {
  const previousDir = process.cwd();
  const previousCode = process.exitCode;
  // oclif prints through console.log; jest's console would decorate every line.
  const jestConsole = globalThis.console;
  globalThis.console = new Console({ stdout: process.stdout, stderr: process.stderr });
  process.chdir(cwd);
  process.exitCode = undefined;
  try {
    const { stdout, stderr, error } = await runCommand(args, { root: ROOT });
    const thrown = (error as { oclif?: { exit?: number } } | undefined)?.oclif?.exit;
    const code = error ? (thrown ?? 1) : Number(process.exitCode ?? 0);
    return { code, stdout, stderr: withoutNodeWarnings(stderr) };
  } finally {
    process.chdir(previousDir);
    process.exitCode = previousCode;
    globalThis.console = jestConsole;
  }
}

/** Node's one-time warning about the VM modules jest runs on is not the command's output. */
function withoutNodeWarnings(stderr: string): string {
  return stderr
    .split(/(?<=\n)/)
    .filter((line) => !/ExperimentalWarning|--trace-warnings/.test(line))
    .join('');
}
