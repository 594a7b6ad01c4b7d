/**
 * The interactive configuration dialog of `fence_virtd -c` (docs/protocol.md §17): same prompts, defaults,
 * validation messages, order and saved file as the C suite; explanatory paragraphs are our own.
 *
 * Deliberate differences (documented in the README):
 * - the serial listener's `Libvirt URI` answer is saved (C drops it);
 * - the tcp listener's address prompt proposes 127.0.0.1 (C shows the multicast default);
 * - the module list shows our built-in modules; `listener` may name several, comma-separated;
 * - the amqp backend has its own questions;
 * - numeric answers are saved in decimal (C keeps " 0x10" as typed);
 * - a default that fails validation with no input left aborts instead of looping forever.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIPv4, isIPv6 } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { DEFAULT_IPV4_GROUP, DEFAULT_KEY_FILE, DEFAULT_PORT } from '../protocol/constants.js';
import { PROFILE_NAMES } from './plugins/backends.js';
import { writeFileAtomically } from './atomic-write.js';
import { dumpConfig } from './dump.js';
import { emptyConfig, setConfigValue } from './edit.js';
import { LineReader } from './line-reader.js';
import { lookupValue } from './lookup.js';
import {
  BUILTIN_BACKENDS,
  BUILTIN_LISTENERS,
  DEFAULT_MODULE_PATH,
  isBuiltinBackend,
  isBuiltinListener,
} from './modules.js';
import { parseConfig } from './parser.js';
import type { ConfigBlock } from './tree.js';
import * as text from './wizard-text.js';

export interface WizardOptions {
  input: Readable;
  output: Writable;
  configFile: string;
}

export const AMQP_PROFILES = PROFILE_NAMES;
export const DEFAULT_AMQP_URL = 'amqp://localhost:5672';
export const DEFAULT_AMQP_CLUSTER = 'default';
export const DEFAULT_CLUSTER_KEY_FILE = '/etc/cluster/fence_virt_cluster.key';
export const DEFAULT_AMQP_PROFILE = 'rabbitmq4';
const DEFAULT_LIBVIRT_URI = 'qemu:///system';
const DEFAULT_TCP_ADDRESS = '127.0.0.1';

/** Input ended while the only possible answer (the default) is invalid. */
class InputEnded extends Error {}

/** The prompt primitives of docs/protocol.md §17. */
class Dialog {
  constructor(
    private readonly reader: LineReader,
    private readonly output: Writable,
  ) {}

  print(message: string): void {
    this.output.write(message);
  }

  /** `<prompt> [<default>]: `; empty input or end of input gives the default. */
  async ask(prompt: string, fallback: string): Promise<string> {
    this.print(`${prompt} [${fallback}]: `);
    const line = await this.reader.readLine();
    return line === undefined || line.length === 0 ? fallback : line.slice(0, 4095);
  }

  /** `<prompt> [Y/n]? ` or `[y/N]? `; the first character decides. */
  async yesNo(prompt: string, fallback: boolean): Promise<boolean> {
    this.print(`${prompt} [${fallback ? 'Y/n' : 'y/N'}]? `);
    const first = (await this.reader.readLine())?.[0]?.toLowerCase();
    if (first === 'y') return true;
    if (first === 'n') return false;
    return fallback;
  }

  /** Called before asking again after an invalid answer. */
  retry(prompt: string): void {
    if (this.reader.exhausted) throw new InputEnded(prompt);
  }
}

/** C's strtol(…, 0) with a full-string check: decimal, 0x hex or 0 octal, leading blanks. */
export function parseCInteger(answer: string): number | undefined {
  const match = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(answer);
  if (!match) return undefined;
  const digits = match[2] as string;
  const value = /^0[xX]/.test(digits)
    ? parseInt(digits.slice(2), 16)
    : digits.length > 1 && digits.startsWith('0')
      ? parseInt(digits, 8)
      : parseInt(digits, 10);
  return match[1] === '-' ? -value : value;
}

class Wizard {
  constructor(
    private readonly dialog: Dialog,
    private readonly tree: ConfigBlock,
  ) {}

  private current(path: string, fallback: string): string {
    return lookupValue(this.tree, path) ?? fallback;
  }

  private set(path: string, value: string | undefined): void {
    setConfigValue(this.tree, path, value);
  }

  async modulePath(): Promise<void> {
    const path = await this.dialog.ask(
      'Module search path',
      this.current('fence_virtd/@module_path', DEFAULT_MODULE_PATH),
    );
    this.set('fence_virtd/@module_path', path);
    const line = (m: { name: string; version: string }): string => `    ${m.name} ${m.version}\n`;
    this.dialog.print(
      '\nAvailable backends:\n' +
        BUILTIN_BACKENDS.map(line).join('') +
        'Available listeners:\n' +
        BUILTIN_LISTENERS.map(line).join(''),
    );
  }

  /** Asks for a module name until it is known or the user insists. */
  private async moduleName(
    prompt: string,
    kind: 'listener' | 'backend',
    fallback: string,
    isKnown: (name: string) => boolean,
  ): Promise<string> {
    for (;;) {
      const answer = await this.dialog.ask(prompt, fallback);
      const names = answer.split(',').map((n) => n.trim());
      if (names.every((n) => n.length > 0 && isKnown(n))) return answer;
      this.dialog.print(`No ${kind} module named ${answer} found!\n`);
      if (await this.dialog.yesNo('Use this value anyway', false)) return answer;
      this.dialog.retry(prompt);
    }
  }

  async listener(): Promise<void> {
    this.dialog.print(`\n${text.LISTENER_INTRO}\n`);
    const answer = await this.moduleName(
      'Listener module',
      'listener',
      this.current('fence_virtd/@listener', 'multicast'),
      isBuiltinListener,
    );
    this.set('fence_virtd/@listener', answer);
    for (const name of answer.split(',').map((n) => n.trim())) {
      await this.configureListener(name);
    }
  }

  private async configureListener(name: string): Promise<void> {
    switch (name.toLowerCase()) {
      case 'multicast':
        return this.multicast();
      case 'tcp':
        return this.tcp();
      case 'serial':
        return this.serial();
      case 'vsock':
        return this.vsock();
      default:
        this.dialog.print(`Unable to configure unknown listner module '${name}'\n`);
    }
  }

  private async multicast(): Promise<void> {
    const base = 'listeners/multicast';
    this.dialog.print(`\n${text.MULTICAST_INTRO}\n${text.MULTICAST_ADDRESS}\n`);
    await this.address(base, 'Multicast IP Address', DEFAULT_IPV4_GROUP);
    await this.port(base, 'Multicast IP Port');
    this.dialog.print(`\n${text.INTERFACE}\n`);
    const iface = await this.dialog.ask('Interface', this.current(`${base}/@interface`, 'none'));
    this.set(`${base}/@interface`, iface === 'none' ? undefined : iface);
    await this.keyFile(base, 'Key File', DEFAULT_KEY_FILE, text.KEY_FILE);
  }

  private async tcp(): Promise<void> {
    const base = 'listeners/tcp';
    this.dialog.print(`\n${text.TCP_INTRO}\n${text.TCP_ADDRESS}\n`);
    await this.address(base, 'TCP Listen IP Address', DEFAULT_TCP_ADDRESS);
    await this.port(base, 'TCP Listen Port');
    await this.keyFile(base, 'Key File', DEFAULT_KEY_FILE, text.KEY_FILE);
  }

  private async vsock(): Promise<void> {
    const base = 'listeners/vsock';
    this.dialog.print(`\n${text.VSOCK_INTRO}\n`);
    await this.port(base, 'Vsock Listen Port');
    await this.keyFile(base, 'Key File', DEFAULT_KEY_FILE, text.KEY_FILE);
  }

  private async serial(): Promise<void> {
    const base = 'listeners/serial';
    this.dialog.print(`\n${text.SERIAL_INTRO}\n${text.SERIAL_GUESTS}\n`);
    const uri = await this.dialog.ask(
      'Libvirt URI',
      this.current(`${base}/@uri`, DEFAULT_LIBVIRT_URI),
    );
    this.set(`${base}/@uri`, uri);
    this.dialog.print(`\n${text.SOCKET_DIRECTORY}\n`);
    const path = await this.dialog.ask('Socket directory', this.current(`${base}/@path`, 'none'));
    this.set(`${base}/@path`, path === 'none' ? undefined : path);
    this.dialog.print(`\n${text.SERIAL_MODE}\n`);
    const mode = await this.checked(
      'Mode (serial or vmchannel)',
      this.current(`${base}/@mode`, 'serial'),
      (m) => m === 'serial' || m === 'vmchannel',
      (m) => `Invalid mode: ${m}`,
    );
    this.set(`${base}/@mode`, mode);
  }

  /** Asks until `valid`, or until the user keeps an invalid answer (`Use anyway [Y/n]?`). */
  private async checked(
    prompt: string,
    fallback: string,
    valid: (answer: string) => boolean,
    complaint: (answer: string) => string,
  ): Promise<string> {
    for (;;) {
      const answer = await this.dialog.ask(prompt, fallback);
      if (valid(answer)) return answer;
      this.dialog.print(`${complaint(answer)}\n`);
      if (await this.dialog.yesNo('Use anyway', true)) return answer;
      this.dialog.retry(prompt);
    }
  }

  private async address(base: string, prompt: string, fallback: string): Promise<void> {
    for (;;) {
      const answer = await this.dialog.ask(prompt, this.current(`${base}/@address`, fallback));
      const family = isIPv4(answer) ? 'ipv4' : isIPv6(answer) ? 'ipv6' : undefined;
      if (family) {
        this.dialog.print(`\nUsing ${family} as family.\n\n`);
        this.set(`${base}/@family`, family);
        this.set(`${base}/@address`, answer);
        return;
      }
      this.dialog.print(`'${answer}' is not a valid IP address!\n`);
      this.dialog.retry(prompt);
    }
  }

  private async port(base: string, prompt: string): Promise<void> {
    const fallback = this.current(`${base}/@port`, String(DEFAULT_PORT));
    for (;;) {
      const port = parseCInteger(await this.dialog.ask(prompt, fallback));
      if (port !== undefined && port >= 1 && port <= 65535) {
        this.set(`${base}/@port`, String(port));
        return;
      }
      // Sic: C names the default, not the rejected answer.
      this.dialog.print(`Port value '${fallback}' is out of range\n`);
      this.dialog.retry(prompt);
    }
  }

  private async keyFile(
    path: string,
    prompt: string,
    fallback: string,
    paragraph: string,
  ): Promise<void> {
    this.dialog.print(`\n${paragraph}\n`);
    const key = await this.checked(
      prompt,
      this.current(`${path}/@key_file`, fallback),
      (k) => k === 'none' || k.startsWith('/'),
      (k) => `Invalid key file: ${k}`,
    );
    this.set(`${path}/@key_file`, key === 'none' ? undefined : key);
  }

  async backend(): Promise<void> {
    this.dialog.print(`\n${text.BACKEND_INTRO}\n`);
    const name = await this.moduleName(
      'Backend module',
      'backend',
      this.current('fence_virtd/@backend', 'libvirt'),
      isBuiltinBackend,
    );
    this.set('fence_virtd/@backend', name);
    switch (name.toLowerCase()) {
      case 'libvirt':
        return this.libvirt();
      case 'cpg':
        return this.cpg();
      case 'amqp':
        return this.amqp();
    }
  }

  private async libvirt(): Promise<void> {
    this.dialog.print(`\n${text.LIBVIRT}\n`);
    const uri = 'backends/libvirt/@uri';
    this.set(uri, await this.dialog.ask('Libvirt URI', this.current(uri, DEFAULT_LIBVIRT_URI)));
  }

  private async cpg(): Promise<void> {
    this.dialog.print(`\n${text.CPG_INTRO}\n`);
    const uri = 'backends/cpg/@uri';
    this.set(uri, await this.dialog.ask('Libvirt URI', this.current(uri, DEFAULT_LIBVIRT_URI)));
    this.dialog.print(`\n${text.CPG_NAME_MODE}\n`);
    const prompt = 'VM naming/tracking mode (name or uuid)';
    const fallback = this.current('backends/cpg/@name_mode', 'uuid');
    for (;;) {
      const mode = await this.dialog.ask(prompt, fallback);
      if (mode === 'uuid') return this.set('backends/cpg/@name_mode', mode);
      if (mode === 'name') {
        this.dialog.print(
          'This can be dangerous if you do not take care toensure that\n' +
            'virtual machine names are unique cluster-wide.\n',
        );
        if (await this.dialog.yesNo('Use name mode anyway', true)) {
          return this.set('backends/cpg/@name_mode', mode);
        }
      }
      this.dialog.retry(prompt);
    }
  }

  private async amqp(): Promise<void> {
    const base = 'backends/amqp';
    this.dialog.print(`\n${text.AMQP_INTRO}\n`);
    const url = await this.checked(
      'Broker URL',
      this.current(`${base}/@url`, DEFAULT_AMQP_URL),
      isBrokerUrl,
      (u) => `Invalid broker URL: ${u}`,
    );
    this.set(`${base}/@url`, url);
    const cluster = this.current(`${base}/@cluster`, DEFAULT_AMQP_CLUSTER);
    this.set(`${base}/@cluster`, await this.dialog.ask('Cluster name', cluster));
    const host = this.current(`${base}/@host_id`, hostname());
    this.set(`${base}/@host_id`, await this.dialog.ask('Host ID', host));
    await this.keyFile(base, 'Cluster Key File', DEFAULT_CLUSTER_KEY_FILE, text.CLUSTER_KEY_FILE);
    const profile = await this.checked(
      `Broker profile (${AMQP_PROFILES.slice(0, -1).join(', ')} or ${AMQP_PROFILES[AMQP_PROFILES.length - 1]})`,
      this.current(`${base}/@profile`, DEFAULT_AMQP_PROFILE),
      (p) => (AMQP_PROFILES as readonly string[]).includes(p),
      (p) => `Invalid profile: ${p}`,
    );
    this.set(`${base}/@profile`, profile);
  }
}

function isBrokerUrl(answer: string): boolean {
  try {
    const url = new URL(answer);
    return (url.protocol === 'amqp:' || url.protocol === 'amqps:') && url.hostname.length > 0;
  } catch {
    return false;
  }
}

function readTree(configFile: string): ConfigBlock | undefined {
  try {
    return parseConfig(readFileSync(configFile, 'utf8'), configFile);
  } catch {
    return undefined;
  }
}

async function converse(dialog: Dialog, configFile: string): Promise<number> {
  let tree = readTree(configFile);
  if (!tree) {
    dialog.print(`Parsing of ${configFile} failed.\n`);
    if (!(await dialog.yesNo('Start from scratch', false))) return 1;
    tree = emptyConfig();
  }
  const wizard = new Wizard(dialog, tree);
  await wizard.modulePath();
  await wizard.listener();
  await wizard.backend();
  dialog.print('\nConfiguration complete.\n\n=== Begin Configuration ===\n');
  dialog.print(dumpConfig(tree));
  dialog.print('=== End Configuration ===\n');
  const question = `Replace ${configFile} with the above`.slice(0, 79);
  if (!(await dialog.yesNo(question, false))) return 1;
  try {
    writeFileAtomically(configFile, dumpConfig(tree));
  } catch (error) {
    dialog.print(`Unable to write ${configFile}: ${(error as Error).message}\n`);
    return 1;
  }
  return 0;
}

/** Runs the dialog; resolves to the exit code (0 written, 1 declined or failed). */
export async function runWizard(options: WizardOptions): Promise<number> {
  const reader = new LineReader(options.input);
  const dialog = new Dialog(reader, options.output);
  try {
    return await converse(dialog, options.configFile);
  } catch (error) {
    if (!(error instanceof InputEnded)) throw error;
    dialog.print(`\nInput ended without a valid answer for "${error.message}".\n`);
    return 1;
  } finally {
    reader.close();
  }
}
