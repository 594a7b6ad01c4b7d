/**
 * Entry of fence_xvm / fence_virt: one program whose personality comes from the name it runs under
 * (docs/protocol.md §18.1). Kept small on purpose: Pacemaker starts it for every monitor, so text, transports and
 * everything else are imported only when needed.
 */
import fs from 'node:fs';
import { HashType, Op } from '../protocol/constants.js';
import { readKeyBytes } from '../protocol/key-file.js';
import { errorText, processIO, sleep, type AgentIO } from './io.js';
import {
  finalise,
  newParseState,
  parseCommandLine,
  parseStdin,
  personalityOf,
  type AgentArgs,
  type Finalised,
  type Personality,
} from './options.js';
import { outcomeOf, type TransportResult } from './outcome.js';
import { errText } from '../util/errors.js';

export interface AgentEnvironment {
  /** argv[0] as C sees it: the program path (personality and usage text). */
  program: string;
  argv: readonly string[];
  io: AgentIO;
  readStdin: () => Promise<string>;
}

function statKeyFile(path: string): string | undefined {
  try {
    fs.statSync(path);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT'
      ? 'No such file or directory'
      : (err as Error).message;
  }
}

/** Parse, validate, run the action; resolves with the exit code. */
export async function runAgent(env: AgentEnvironment): Promise<number> {
  const { io, program } = env;
  const personality = personalityOf(program);
  const state = newParseState(statKeyFile);
  const stdinMode = env.argv.length === 0;
  const parsed = stdinMode
    ? parseStdin(state, personality, await env.readStdin())
    : parseCommandLine(state, personality, env.argv, program);
  parsed.stderr.forEach((line) => io.err(line));
  const parseMessages = state.messages.splice(0);
  parseMessages.forEach((line) => io.out(line));

  if (state.help || state.version) {
    const text = await import('./text.js');
    process.stdout.write(
      state.help ? text.helpText(program, personality) : text.versionText(personality),
    );
    return 0;
  }
  const target = finalise(state, personality);
  if (state.args.debug > 0) {
    const { debugDump } = await import('./text.js');
    process.stdout.write(debugDump(state.args, target.group));
  }
  state.messages.forEach((line) => io.out(line));
  const { op } = state.args;
  if (state.error) {
    if (op !== Op.VALIDATEALL) {
      const text = await import('./text.js');
      process.stdout.write(
        stdinMode ? text.stdinUsageText(personality) : text.usageText(program, personality),
      );
    }
    return 1;
  }
  if (op === Op.VALIDATEALL) return 0;
  if (op === Op.METADATA) {
    const { metadataXml } = await import('./text.js');
    process.stdout.write(metadataXml(personality));
    return 0;
  }
  if (state.args.delay > 0 && ![Op.STATUS, Op.DEVSTATUS, Op.HOSTLIST].includes(op as 4 | 5 | 6)) {
    await sleep(state.args.delay * 1000);
  }
  const result = await transport(personality, state.args, target, io);
  const outcome = outcomeOf(op, result);
  outcome.stdout.forEach((line) => io.out(line));
  return outcome.exitCode;
}

/**
 * The key, or undefined after saying why not. C silently drops to no authentication when the key
 * file cannot be read; we refuse unless hash and auth were both set to none (a deliberate change).
 */
export function loadKey(args: AgentArgs, io: AgentIO): Buffer | undefined {
  if (args.hash === HashType.none && args.auth === HashType.none) return Buffer.alloc(0);
  try {
    return readKeyBytes(args.keyFile);
  } catch (err) {
    const reason = errorText(err);
    io.out(
      `Could not read ${args.keyFile} (${reason}); not running without authentication unless asked to: use -c none -C none (hash=none auth=none)`,
    );
    return undefined;
  }
}

async function transport(
  personality: Personality,
  args: AgentArgs,
  target: Finalised,
  io: AgentIO,
): Promise<TransportResult> {
  const domain = args.domain ?? '';
  const common = { op: args.op, domain, timeoutSec: args.timeout };
  if (personality === 'fence_xvm') {
    const key = loadKey(args, io);
    if (!key) return { code: 1 };
    const { fenceByMulticast } = await import('./multicast.js');
    return fenceByMulticast(
      {
        ...common,
        useUuid: args.useUuid,
        group: target.group,
        ipv6: target.ipv6,
        port: args.port,
        hash: args.hash,
        auth: args.auth,
        key,
        retransTenths: args.retrans,
      },
      io,
    );
  }
  if (args.cid >= 2) {
    const key = loadKey(args, io);
    if (!key) return { code: 1 };
    const { fenceByVsock } = await import('./vsock.js');
    const auth = { hash: args.hash, auth: args.auth, key };
    return fenceByVsock({ ...common, ...auth, cid: args.cid, port: args.port }, io);
  }
  if (args.ipaddr !== undefined) {
    const key = loadKey(args, io);
    if (!key) return { code: 1 };
    const { fenceByTcp } = await import('./tcp.js');
    const auth = { hash: args.hash, auth: args.auth, key };
    return fenceByTcp({ ...common, ...auth, host: args.ipaddr, port: args.port }, io);
  }
  const serial = await import('./serial.js');
  if (args.serialDevice !== undefined) {
    return serial.fenceBySerialDevice(
      { ...common, device: args.serialDevice, params: args.serialParams },
      io,
    );
  }
  return serial.fenceByVmchannel({ ...common, address: args.channelAddress, port: args.port }, io);
}

function readAllStdin(): Promise<string> {
  try {
    return Promise.resolve(fs.readFileSync(0, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return Promise.resolve('');
  }
  // A non-blocking stdin: read it as a stream instead.
  return new Promise((resolve) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk: string) => (text += chunk));
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', () => resolve(text));
  });
}

/** Run as a process: argv[1] is the bin script, whose name picks the personality. */
export function main(): void {
  const program = process.argv[1] ?? 'fence_virt';
  runAgent({ program, argv: process.argv.slice(2), io: processIO(), readStdin: readAllStdin }).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stdout.write(`${errText(err)}\n`);
      process.exit(1);
    },
  );
}
