/** fence_virtd's command line: the C getopt string `Ff:d:cwlhp:` (docs/protocol.md §16). */
import { DEFAULT_CONFIG_FILE } from '../protocol/constants.js';
import { getopt } from '../util/getopt.js';

export interface DaemonOptions {
  foreground: boolean;
  configFile: string;
  configFileGiven: boolean;
  pidFile: string | undefined;
  debug: number | undefined;
  configure: boolean;
  waitForInit: boolean;
  listPlugins: boolean;
  help: boolean;
  /** An invalid option letter (reported, then help as in C). */
  invalid: string | undefined;
}

/** The C getopt string, plus '?' (which C's switch also treats as a request for help). */
const OPTSTRING = 'Ff:d:cwlhp:?';

export function parseDaemonOptions(argv: readonly string[]): DaemonOptions {
  const options: DaemonOptions = {
    foreground: false,
    configFile: DEFAULT_CONFIG_FILE,
    configFileGiven: false,
    pidFile: undefined,
    debug: undefined,
    configure: false,
    waitForInit: false,
    listPlugins: false,
    help: false,
    invalid: undefined,
  };
  getopt(argv, OPTSTRING, {
    option: (letter, value) => {
      if (value !== undefined) applyValue(options, letter, value);
      else applyFlag(options, letter);
    },
    problem: (letter) => {
      options.invalid = letter;
      options.help = true;
    },
  });
  return options;
}

function applyValue(options: DaemonOptions, letter: string, value: string): void {
  if (letter === 'f') {
    options.configFile = value;
    options.configFileGiven = true;
  } else if (letter === 'p') options.pidFile = value;
  else options.debug = Number.parseInt(value, 10) || 0; // atoi
}

function applyFlag(options: DaemonOptions, letter: string): boolean {
  switch (letter) {
    case 'F':
      options.foreground = true;
      return true;
    case 'c':
      options.configure = true;
      return true;
    case 'w':
      options.waitForInit = true;
      return true;
    case 'l':
      options.listPlugins = true;
      return true;
    case 'h':
    case '?':
      options.help = true;
      return true;
    default:
      return false;
  }
}

export function usage(program: string): string {
  const line = (opt: string, text: string): string => `  ${opt.padEnd(17)}${text}`;
  return [
    `Usage: ${program} [options]`,
    line('-F', 'Do not daemonize.'),
    line('-f <file>', 'Use <file> as configuration file.'),
    line('-d <level>', 'Set debugging level to <level>.'),
    line('-c', 'Configuration mode.'),
    line('-l', 'List plugins.'),
    line('-w', 'Wait for initialization.'),
    line('-p <file>', 'Use <file> to record the active process id.'),
    '',
  ].join('\n');
}
