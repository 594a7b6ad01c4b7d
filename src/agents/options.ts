/**
 * Options of fence_xvm / fence_virt (docs/protocol.md §18.2): one table for both personalities, a getopt-style
 * command-line parser, the FenceAgentAPI stdin parser and the final validation. Pure: no I/O except
 * the `stat` of an explicit key file, which is injected.
 */
import {
  DEFAULT_CHANNEL_ADDRESS,
  DEFAULT_IPV4_GROUP,
  DEFAULT_IPV6_GROUP,
  DEFAULT_KEY_FILE,
  DEFAULT_PORT,
  DOMAIN_NAME_MAX,
  HashType,
  Op,
  type HashCode,
} from '../protocol/constants.js';
import { getopt, getoptMessage } from '../util/getopt.js';

export type Personality = 'fence_xvm' | 'fence_virt';

export const GETOPT: Record<Personality, string> = {
  fence_xvm: 'di:a:p:r:C:c:k:M:n:H:uo:t:?hVw:',
  fence_virt: 'dD:P:A:p:M:n:H:o:t:?hVT:S::C:c:k:w:',
};

/** Personality from the name the program was invoked under, as the C binary does. */
export function personalityOf(programPath: string): Personality {
  const base = programPath.slice(programPath.lastIndexOf('/') + 1);
  return base === 'fence_xvm' ? 'fence_xvm' : 'fence_virt';
}

export interface AgentArgs {
  op: number;
  domain: string | undefined;
  debug: number;
  timeout: number;
  delay: number;
  retrans: number;
  useUuid: boolean;
  family: 'auto' | 'ipv4' | 'ipv6';
  multicastAddress: string | undefined;
  port: number;
  hash: HashCode;
  auth: HashCode;
  keyFile: string;
  /** True when -k / key_file named the key file (the C default is not checked). */
  keyFileGiven: boolean;
  ipaddr: string | undefined;
  cid: number;
  serialDevice: string | undefined;
  serialParams: string;
  channelAddress: string;
}

export function defaultArgs(): AgentArgs {
  return {
    op: Op.REBOOT,
    domain: undefined,
    debug: 0,
    timeout: 30,
    delay: 0,
    retrans: 20,
    useUuid: false,
    family: 'auto',
    multicastAddress: undefined,
    port: DEFAULT_PORT,
    hash: HashType.sha256,
    auth: HashType.sha256,
    keyFile: DEFAULT_KEY_FILE,
    keyFileGiven: false,
    ipaddr: undefined,
    cid: 0,
    serialDevice: undefined,
    serialParams: '115200,8N1',
    channelAddress: DEFAULT_CHANNEL_ADDRESS,
  };
}

/** Metadata content of one parameter (docs/protocol.md §18.3). */
export interface ContentSpec {
  type: 'boolean' | 'string' | 'integer';
  default?: string;
}

export interface OptionSpec {
  letter?: string;
  /** FenceAgentAPI stdin name; absent for -h, -?, -V. */
  name?: string;
  /** Placeholder shown in the usage text, for options that take a value. */
  placeholder?: string;
  help?: string;
  content?: ContentSpec;
  /** Hidden in the usage text (the deprecated `port`). */
  hidden?: boolean;
  /** Accepted on stdin by both personalities, whatever the getopt string. */
  always?: boolean;
  deprecated?: boolean;
  obsoletes?: string;
  /** How a value (or its absence, for a bare stdin name) changes the arguments. */
  apply?: (state: ParseState, value: string | undefined, fromStdin: boolean) => void;
}

export interface ParseState {
  args: AgentArgs;
  /** Messages for stdout, in the order C prints them. */
  messages: string[];
  error: boolean;
  help: boolean;
  version: boolean;
  statKeyFile: (path: string) => string | undefined;
}

const TARGET_HELP = 'Virtual machine to act on (its name, or its UUID)';
const HASHES = 'none, sha1, sha256 (default), sha512';

/** The option table, in no particular order: getopt strings decide order and availability. */
export const OPTIONS: readonly OptionSpec[] = [
  { name: 'agent', always: true },
  { name: 'self', always: true },
  { name: 'nodename', always: true },
  {
    letter: 'd',
    name: 'debug',
    help: 'Debug level: set it (stdin) or raise it by one (command line)',
    content: { type: 'boolean' },
    apply: applyDebug,
  },
  {
    letter: 'i',
    name: 'ip_family',
    placeholder: '<family>',
    help: 'Address family of the multicast group: auto (default), ipv4 or ipv6',
    content: { type: 'string', default: 'auto' },
    apply: valued(applyFamily),
  },
  {
    letter: 'a',
    name: 'multicast_address',
    placeholder: '<address>',
    help: `Multicast group to send to (default ${DEFAULT_IPV4_GROUP}, or ${DEFAULT_IPV6_GROUP} for IPv6)`,
    content: { type: 'string' },
    apply: valued((s, v) => (s.args.multicastAddress = v)),
  },
  {
    letter: 'T',
    name: 'ipaddr',
    placeholder: '<address>',
    help: 'Host address for TCP mode, given as an IP literal (default 127.0.0.1 / ::1)',
    content: { type: 'string', default: '127.0.0.1' },
    apply: valued((s, v) => (s.args.ipaddr = v)),
  },
  {
    letter: 'S',
    name: 'vsock',
    placeholder: '<cid>',
    help: 'vsock mode: context id of the host to reach (default 2)',
    content: { type: 'integer', default: '2' },
    apply: applyCid,
  },
  {
    letter: 'A',
    name: 'channel_address',
    placeholder: '<address>',
    help: `Host address of the VMChannel TCP relay (default ${DEFAULT_CHANNEL_ADDRESS})`,
    content: { type: 'string', default: DEFAULT_CHANNEL_ADDRESS },
    apply: valued((s, v) => (s.args.channelAddress = v)),
  },
  {
    letter: 'p',
    name: 'ipport',
    placeholder: '<port>',
    help: `Port used by every transport: multicast, TCP, VMChannel, vsock (default ${DEFAULT_PORT})`,
    content: { type: 'string', default: String(DEFAULT_PORT) },
    apply: valued(applyPort),
  },
  { letter: 'I', name: 'interface', placeholder: '<interface>', help: 'Network interface' },
  {
    letter: 'r',
    name: 'retrans',
    placeholder: '<retrans>',
    help: 'Time between multicast retransmissions, in tenths of a second (default 20)',
    content: { type: 'string', default: '20' },
    apply: valued(numeric('Invalid retransmit time', 1, (s, n) => (s.args.retrans = n))),
  },
  {
    letter: 'C',
    name: 'auth',
    placeholder: '<auth>',
    help: `Challenge-response algorithm: ${HASHES}`,
    content: { type: 'string', default: 'sha256' },
    apply: valued((s, v) => applyHash(s, v, 'auth')),
  },
  {
    letter: 'c',
    name: 'hash',
    placeholder: '<hash>',
    help: `Request signature algorithm: ${HASHES}`,
    content: { type: 'string', default: 'sha256' },
    apply: valued((s, v) => applyHash(s, v, 'hash')),
  },
  {
    letter: 'k',
    name: 'key_file',
    placeholder: '<file>',
    help: `File holding the shared key (default ${DEFAULT_KEY_FILE})`,
    content: { type: 'string', default: DEFAULT_KEY_FILE },
    apply: valued(applyKeyFile),
  },
  {
    letter: 'D',
    name: 'serial_device',
    placeholder: '<device>',
    help: 'Serial device leading to the host (without it: VMChannel over TCP)',
    content: { type: 'string', default: '/dev/ttyS1' },
    apply: valued((s, v) => (s.args.serialDevice = v)),
  },
  {
    letter: 'P',
    name: 'serial_params',
    placeholder: '<param>',
    help: 'Serial line settings: speed[,data bits parity stop bits] (default 115200,8N1)',
    content: { type: 'string', default: '115200,8N1' },
    apply: valued((s, v) => (s.args.serialParams = v)),
  },
  { name: 'option', always: true, apply: valued(applyOperation) },
  {
    letter: 'o',
    name: 'action',
    placeholder: '<operation>',
    help: 'Action to run: null, on, off, reboot (default), status, list, list-status, monitor, validate-all, metadata',
    content: { type: 'string', default: 'reboot' },
    apply: valued(applyOperation),
  },
  {
    letter: 'n',
    name: 'plug',
    placeholder: '<domain>',
    help: TARGET_HELP,
    content: { type: 'string' },
    obsoletes: 'port',
    apply: valued(applyDomain),
  },
  {
    letter: 'H',
    name: 'port',
    placeholder: '<domain>',
    help: TARGET_HELP,
    content: { type: 'string' },
    hidden: true,
    deprecated: true,
    apply: valued(applyDomain),
  },
  {
    name: 'domain',
    always: true,
    help: TARGET_HELP,
    content: { type: 'string' },
    deprecated: true,
    apply: valued(applyDomain),
  },
  {
    letter: 'u',
    name: 'use_uuid',
    help: 'Mark the target as a UUID rather than a name (for old fence_xvmd hosts)',
    content: { type: 'string', default: '0' },
    apply: (s, v) => (s.args.useUuid = v === undefined || atoi(v) !== 0),
  },
  {
    letter: 't',
    name: 'timeout',
    placeholder: '<timeout>',
    help: 'Seconds to wait for the answer (default 30)',
    content: { type: 'string', default: '30' },
    apply: valued(numeric('Invalid timeout', 1, (s, n) => (s.args.timeout = n))),
  },
  { letter: '?', help: 'Show this help (alternative letter)' },
  { letter: 'h', help: 'Show this help' },
  { letter: 'V', help: 'Print the version and exit' },
  {
    letter: 'w',
    name: 'delay',
    placeholder: '<delay>',
    help: 'Seconds to wait before fencing; status, monitor and list never wait (default 0)',
    content: { type: 'string', default: '0' },
    apply: valued(numeric('Invalid delay', 0, (s, n) => (s.args.delay = n))),
  },
];

/** The table entries of a personality in getopt-string order (help, metadata and stdin use it). */
export function optionsInOrder(personality: Personality): OptionSpec[] {
  const letters = GETOPT[personality].replace(/:/g, '');
  const seen = new Set<string>();
  const ordered: OptionSpec[] = [];
  for (const letter of letters) {
    const spec = OPTIONS.find((o) => o.letter === letter);
    if (!spec || seen.has(letter)) continue;
    seen.add(letter);
    ordered.push(spec);
  }
  return ordered;
}

export const OPERATIONS: Record<string, number> = {
  null: Op.NULL,
  on: Op.ON,
  off: Op.OFF,
  reboot: Op.REBOOT,
  status: Op.STATUS,
  monitor: Op.DEVSTATUS,
  list: Op.HOSTLIST,
  'list-status': Op.HOSTLIST,
  metadata: Op.METADATA,
  'validate-all': Op.VALIDATEALL,
};

function valued(
  apply: (state: ParseState, value: string) => void,
): (state: ParseState, value: string | undefined) => void {
  // A bare stdin name without '=' carries no value and changes nothing.
  return (state, value) => {
    if (value !== undefined) apply(state, value);
  };
}

function fail(state: ParseState, message: string): void {
  state.messages.push(message);
  state.error = true;
}

/** C strtol with base 0 over the whole string (leading blanks and a sign allowed), else NaN. */
export function parseCInteger(text: string): number {
  const match = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (!match) return NaN;
  const digits = match[2]!;
  const magnitude = /^0[xX]/.test(digits)
    ? parseInt(digits.slice(2), 16)
    : digits.length > 1 && digits.startsWith('0')
      ? parseInt(digits.slice(1), 8)
      : parseInt(digits, 10);
  return match[1] === '-' ? -magnitude : magnitude;
}

/** C atoi: leading blanks, optional sign, decimal digits; anything else stops it. */
export function atoi(text: string): number {
  const match = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(text);
  return match ? parseInt(match[1]!, 10) : 0;
}

const INT_MAX = 2 ** 31 - 1;

function numeric(
  label: string,
  min: number,
  set: (state: ParseState, n: number) => void,
): (state: ParseState, value: string) => void {
  return (state, value) => {
    const n = parseCInteger(value);
    if (Number.isNaN(n) || n < min || n > INT_MAX) fail(state, `${label}: '${value}'`);
    else set(state, n);
  };
}

function applyDebug(state: ParseState, value: string | undefined, fromStdin: boolean): void {
  if (fromStdin && value !== undefined) {
    const level = atoi(value);
    state.args.debug = level < 0 ? 1 : level;
  } else {
    state.args.debug += 1;
  }
}

function applyFamily(state: ParseState, value: string): void {
  const family = value.toLowerCase();
  if (family === 'ipv4' || family === 'ipv6' || family === 'auto') state.args.family = family;
  else fail(state, `Unsupported family: '${value}'`);
}

function applyCid(state: ParseState, value: string | undefined): void {
  if (value === undefined) {
    state.args.cid = 2;
    return;
  }
  const cid = parseCInteger(value);
  if (Number.isNaN(cid) || cid < 2 || cid >= 0xffffffff) fail(state, `Invalid CID: '${value}'`);
  else state.args.cid = cid;
}

function applyPort(state: ParseState, value: string): void {
  const port = parseCInteger(value);
  if (Number.isNaN(port) || port < 1 || port > 65535) fail(state, `Invalid port: '${value}'`);
  else state.args.port = port;
}

function applyHash(state: ParseState, value: string, which: 'hash' | 'auth'): void {
  const key = value.toLowerCase();
  if (!(key in HashType)) {
    fail(
      state,
      which === 'hash' ? `Unsupported hash: ${value}` : `Unsupported auth type: ${value}`,
    );
    return;
  }
  state.args[which] = HashType[key as keyof typeof HashType];
}

function applyKeyFile(state: ParseState, value: string): void {
  const problem = state.statKeyFile(value);
  if (problem !== undefined) {
    fail(state, `Invalid key file: '${value}' (${problem})`);
    return;
  }
  state.args.keyFile = value;
  state.args.keyFileGiven = true;
}

function applyOperation(state: ParseState, value: string): void {
  const op = OPERATIONS[value.toLowerCase()];
  if (op === undefined) fail(state, `Unsupported operation: ${value}`);
  else state.args.op = op;
}

function applyDomain(state: ParseState, value: string): void {
  if (state.args.domain !== undefined) {
    fail(state, 'Domain/UUID may not be specified more than once');
    return;
  }
  state.args.domain = value;
  if (value.length === 0) fail(state, 'Invalid domain name');
  else if (Buffer.byteLength(value) >= DOMAIN_NAME_MAX) {
    fail(state, `Invalid domain name: '${value}' (File name too long)`);
  }
}

export function newParseState(statKeyFile: (path: string) => string | undefined): ParseState {
  return {
    args: defaultArgs(),
    messages: [],
    error: false,
    help: false,
    version: false,
    statKeyFile,
  };
}

/** Diagnostics getopt itself prints (on stderr). */
export interface GetoptResult {
  stderr: string[];
}

/**
 * The agent's command line through getopt (src/util/getopt.ts). An unknown letter or a missing
 * value makes getopt answer '?', which asks for the help text, as in C.
 */
export function parseCommandLine(
  state: ParseState,
  personality: Personality,
  argv: readonly string[],
  program: string,
): GetoptResult {
  const stderr: string[] = [];
  getopt(argv, GETOPT[personality], {
    option: (letter, value) => applyLetter(state, letter, value),
    problem: (letter, problem) => {
      stderr.push(getoptMessage(program, letter, problem));
      state.help = true;
    },
  });
  return { stderr };
}

function applyLetter(state: ParseState, letter: string, value: string | undefined): void {
  if (letter === 'h' || letter === '?') {
    state.help = true;
    return;
  }
  if (letter === 'V') {
    state.version = true;
    return;
  }
  const spec = OPTIONS.find((o) => o.letter === letter);
  // A letter in the getopt string without a table entry (-M) is an error without a message.
  if (!spec?.apply) {
    state.error = true;
    return;
  }
  spec.apply(state, value, false);
}

/**
 * FenceAgentAPI stdin: `name=value` lines. C reads them with a 256-byte fgets, skips lines that
 * start with '#', strips leading blanks, ends the value at the first blank, splits at the first '='
 * and matches names case-insensitively. Unknown names are reported on stderr and skipped.
 */
export function parseStdin(
  state: ParseState,
  personality: Personality,
  text: string,
): { stderr: string[] } {
  const stderr: string[] = [];
  const letters = GETOPT[personality];
  for (const line of fgetsChunks(text)) {
    if (line.startsWith('#')) continue;
    const stripped = line.replace(/^[ \t]+/, '');
    const token = stripped.split(/[ \t\r\n]/, 1)[0] ?? '';
    if (token === '') continue;
    const eq = token.indexOf('=');
    const name = eq === -1 ? token : token.slice(0, eq);
    const value = eq === -1 ? undefined : token.slice(eq + 1);
    const spec = OPTIONS.find((o) => o.name === name.toLowerCase());
    const known =
      spec && (spec.always || (spec.letter !== undefined && letters.includes(spec.letter)));
    if (!spec || !known) {
      stderr.push(`Parse error: Ignoring unknown option '${name}'`);
      continue;
    }
    spec.apply?.(state, value, true);
  }
  return { stderr };
}

/** The pieces fgets(buf, 256) returns: lines, with lines of 255+ bytes cut into several reads. */
function fgetsChunks(text: string): string[] {
  const chunks: string[] = [];
  for (const line of text.split(/(?<=\n)/)) {
    for (let i = 0; i < line.length; i += 255) chunks.push(line.slice(i, i + 255));
  }
  return chunks;
}

export interface Finalised {
  /** The multicast group and its family (fence_xvm only). */
  group: string;
  ipv6: boolean;
}

/** Step 4 and 5 of docs/protocol.md §18.2: pick the group and family, require a domain where the action needs one. */
export function finalise(state: ParseState, personality: Personality): Finalised {
  const { args } = state;
  let ipv6 = false;
  let group = args.multicastAddress ?? '';
  if (personality === 'fence_xvm') {
    if (args.family === 'auto') {
      // Only an absent address takes the default; an empty one is an error, as in C.
      if (args.multicastAddress === undefined) ipv6 = false;
      else if (group.includes('.')) ipv6 = false;
      else if (group.includes(':')) ipv6 = true;
      else fail(state, 'Could not determine address family');
    } else {
      ipv6 = args.family === 'ipv6';
    }
    if (group === '') group = ipv6 ? DEFAULT_IPV6_GROUP : DEFAULT_IPV4_GROUP;
  }
  const needsDomain = ![Op.DEVSTATUS, Op.HOSTLIST, Op.METADATA].includes(args.op as 5 | 6 | 7);
  if (needsDomain && args.domain === undefined) fail(state, 'No domain specified!');
  return { group, ipv6 };
}
