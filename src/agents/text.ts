/** Help, usage, version and FenceAgentAPI metadata text of the agents (docs/protocol.md §18.2, §18.3). */
import { FENCE_RELEASE, PROTOCOL_VERSION } from '../protocol/constants.js';
import {
  OPTIONS,
  optionsInOrder,
  type AgentArgs,
  type OptionSpec,
  type Personality,
} from './options.js';

const NOTE = 'NOTE: reboot-action does not power on nodes that are powered off.';
const LABEL_WIDTH = 20;
const TEXT_WIDTH = 55;

/** Greedy wrap on spaces at `width`; a word longer than a line is cut. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(' ')) {
    while (word.length > width) {
      if (line) lines.push(line);
      lines.push(word.slice(0, width));
      word = word.slice(width);
      line = '';
    }
    if (line === '') line = word;
    else if (line.length + 1 + word.length <= width) line += ' ' + word;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** `  <label padded to 20>  <text padded to 55>`, continuation lines under the text column. */
function optionLines(label: string, help: string): string[] {
  return wrap(help, TEXT_WIDTH).map(
    (part, i) => `  ${(i === 0 ? label : '').padEnd(LABEL_WIDTH)}  ${part.padEnd(TEXT_WIDTH)}`,
  );
}

function commandLineOptions(personality: Personality): string[] {
  return optionsInOrder(personality)
    .filter((o) => !o.hidden && o.help)
    .flatMap((o) =>
      optionLines(`-${o.letter}${o.placeholder ? ' ' + o.placeholder : ''}`, o.help!),
    );
}

function stdinOptions(personality: Personality): string[] {
  return optionsInOrder(personality)
    .filter((o) => !o.hidden && o.name && o.help)
    .flatMap((o) => optionLines(o.name!, o.help!));
}

/** The usage block printed after a command-line error (no stdin part). */
export function usageText(program: string, personality: Personality): string {
  return [
    `usage: ${program} [args]`,
    '',
    NOTE,
    '',
    ...commandLineOptions(personality),
    '',
    '',
  ].join('\n');
}

/** After an error in stdin mode only the list of stdin names is printed. */
export function stdinUsageText(personality: Personality): string {
  return [...stdinOptions(personality), '', ''].join('\n');
}

export function helpText(program: string, personality: Personality): string {
  return (
    usageText(program, personality) +
    [
      'With no command line argument, arguments are read from standard input.',
      'Arguments read from standard input take the form of:',
      '',
      '    arg1=value1',
      '    arg2=value2',
      '',
      ...stdinOptions(personality),
      '',
      '',
    ].join('\n')
  );
}

export function versionText(personality: Personality): string {
  return `${personality} ${PROTOCOL_VERSION}\nfence release ${FENCE_RELEASE}\n`;
}

function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function parameterXml(o: OptionSpec): string[] {
  const content = o.content ?? { type: 'string' as const };
  const required =
    content.type !== 'boolean' && content.default === undefined && o.name !== 'multicast_address';
  const attributes = [
    `name="${o.name}"`,
    'unique="0"',
    `required="${required && !o.always ? 1 : 0}"`,
    ...(o.obsoletes ? [`obsoletes="${o.obsoletes}"`] : []),
    ...(o.deprecated ? ['deprecated="1"'] : []),
  ];
  const defaultAttribute =
    content.default !== undefined ? ` default="${escapeXml(content.default)}"` : '';
  return [
    `\t<parameter ${attributes.join(' ')}>`,
    `\t\t<getopt mixed="${o.letter ? '-' + o.letter : ''}" />`,
    `\t\t<content type="${content.type}"${defaultAttribute} />`,
    `\t\t<shortdesc lang="en">${escapeXml(o.help ?? '')}</shortdesc>`,
    '\t</parameter>',
  ];
}

const ACTIONS = [
  'null',
  'on',
  'off',
  'reboot',
  'metadata',
  'status',
  'monitor',
  'list',
  'list-status',
  'validate-all',
];

/** FenceAgentAPI metadata: the C document's structure, TAB-indented, our own descriptions. */
export function metadataXml(personality: Personality): string {
  const parameters = optionsInOrder(personality).filter((o) => o.name && o.apply);
  const domainSpec = OPTIONS.find((o) => o.name === 'domain')!;
  return [
    '<?xml version="1.0" ?>',
    `<resource-agent name="${personality}" shortdesc="Fence agent for virtual machines">`,
    `<longdesc>${personality} is an I/O Fencing agent for virtual machines: it asks fence_virtd on the host to act on a guest.`,
    '',
    `${NOTE}</longdesc>`,
    '<vendor-url>https://libvirt.org</vendor-url>',
    '<parameters>',
    ...[...parameters, domainSpec].flatMap(parameterXml),
    '</parameters>',
    '<actions>',
    ...ACTIONS.map((name) => `\t<action name="${name}" />`),
    '</actions>',
    '</resource-agent>',
    '',
  ].join('\n');
}

/** The `-d` dump of the parsed arguments (for humans; not a stable format). */
export function debugDump(args: AgentArgs, group: string): string {
  const lines = [
    '-- args --',
    `  args->domain = ${args.domain ?? '(null)'}`,
    `  args->op = ${args.op}`,
    `  args->debug = ${args.debug}`,
    `  args->timeout = ${args.timeout}`,
    `  args->delay = ${args.delay}`,
    `  args->retr_time = ${args.retrans}`,
    `  args->use_uuid = ${args.useUuid ? 1 : 0}`,
    `  args->net.addr = ${group || '(null)'}`,
    `  args->net.ipaddr = ${args.ipaddr ?? '(null)'}`,
    `  args->net.cid = ${args.cid}`,
    `  args->net.key_file = ${args.keyFile}`,
    `  args->net.port = ${args.port}`,
    `  args->net.hash = ${args.hash}`,
    `  args->net.auth = ${args.auth}`,
    `  args->serial.device = ${args.serialDevice ?? '(null)'}`,
    `  args->serial.speed = ${args.serialParams}`,
    `  args->serial.address = ${args.channelAddress}`,
    '-- end args --',
  ];
  return lines.join('\n') + '\n';
}
