/**
 * fence_virt's default transports (docs/protocol.md §10): the 74-byte serial request over a serial device (`-D`) or
 * over TCP to the VMChannel address. No key: identity comes from the channel itself. The answer is
 * found by scanning for the "abba" magic with a correct matcher (a documented fix of C's).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import tty from 'node:tty';
import { ByteReader, writeAll } from '../net/byte-reader.js';
import { Response } from '../protocol/constants.js';
import { MagicScanner, encodeSerialRequest } from '../protocol/serial.js';
import { errorText, microsecondSeqno, sleep, type AgentIO } from './io.js';
import type { TransportResult } from './outcome.js';
import { connectWithTimeout } from './tcp.js';
import { readHostList, type ExactReader } from '../net/result-reader.js';

const CONNECT_TIMEOUT_MS = 3000;
const NO_ANSWER: TransportResult = { code: -1 };

export interface SerialOptions {
  op: number;
  domain: string;
  timeoutSec: number;
}

export interface SerialLine {
  speed: number;
  dataBits: number;
  parity: 'none' | 'even' | 'odd';
  stopBits: number;
}

const SPEEDS = [2400, 9600, 19200, 38400, 57600, 115200];

/** `<speed>[,<DPS>]`: speed from a fixed list (empty = 9600), DPS = data bits, parity, stop bits. */
export function parseSerialParams(text: string): SerialLine | { error: true; badChar?: string } {
  const [speedText = '', dps] = text.split(',', 2);
  const speed = speedText === '' ? 9600 : Number(speedText);
  if (!SPEEDS.includes(speed) || !/^\d*$/.test(speedText)) return { error: true };
  const line: SerialLine = { speed, dataBits: 8, parity: 'none', stopBits: 1 };
  if (dps === undefined) return line;
  if (dps.length !== 3) return { error: true };
  for (const c of dps) {
    if ('5678'.includes(c)) line.dataBits = Number(c);
    else if ('nN'.includes(c)) line.parity = 'none';
    else if ('eE'.includes(c)) line.parity = 'even';
    else if ('oO'.includes(c)) line.parity = 'odd';
    else if ('12'.includes(c)) line.stopBits = Number(c);
    else return { error: true, badChar: c };
  }
  return line;
}

/** Raw termios as C sets it (speed, CLOCAL, CRTSCTS, CREAD, data bits, parity, stop; no flags). */
export function sttyArguments(device: string, line: SerialLine): string[] {
  return [
    '-F',
    device,
    String(line.speed),
    'raw',
    '-echo',
    '-echoe',
    '-echok',
    '-iexten',
    `cs${line.dataBits}`,
    line.parity === 'none' ? '-parenb' : 'parenb',
    line.parity === 'odd' ? 'parodd' : '-parodd',
    line.stopBits === 2 ? 'cstopb' : '-cstopb',
    'crtscts',
    'clocal',
    'cread',
  ];
}

/** Scan for the magic, then the code byte and, for 0xFD, the host list; -1 without an answer. */
async function readSerialAnswer(reader: ExactReader, deadline: number): Promise<TransportResult> {
  const scanner = new MagicScanner();
  for (;;) {
    let chunk: Buffer;
    try {
      chunk = await reader.readExact(1, Math.max(deadline - Date.now(), 1), 'magic');
    } catch {
      return NO_ANSWER;
    }
    if (scanner.feed(chunk) !== -1) break;
  }
  let code: number;
  try {
    code = (await reader.readExact(1, Math.max(deadline - Date.now(), 1), 'response'))[0]!;
  } catch {
    return NO_ANSWER;
  }
  if (code !== Response.HOSTLIST) return { code };
  const timeoutMs = Math.max(deadline - Date.now(), 1);
  return { code, hostlist: await readHostList(reader, timeoutMs) };
}

function serialRequest(options: SerialOptions): Buffer {
  return encodeSerialRequest({
    request: options.op,
    domain: options.domain,
    seqno: microsecondSeqno(),
  });
}

/** VMChannel: TCP to the guestfwd address that QEMU maps to the host's socket. */
export async function fenceByVmchannel(
  options: SerialOptions & { address: string; port: number },
  io: AgentIO,
): Promise<TransportResult> {
  let socket;
  try {
    socket = await connectWithTimeout(options.address, options.port, CONNECT_TIMEOUT_MS);
  } catch (err) {
    io.err(`vmchannel connect: ${errorText(err)}`);
    io.out(`Failed to connect to ${options.address}:${options.port}`);
    return NO_ANSWER;
  }
  const reader = new ByteReader(socket);
  const deadline = Date.now() + options.timeoutSec * 1000;
  try {
    await writeAll(socket, serialRequest(options), CONNECT_TIMEOUT_MS);
    return await readSerialAnswer(reader, deadline);
  } catch {
    return NO_ANSWER;
  } finally {
    socket.destroy();
  }
}

function runStty(args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('stty', args, (err, _stdout, stderr) => {
      resolve(err ? stderr.trim() || err.message : undefined);
    });
  });
}

/** Byte source over a non-blocking tty fd (Node has no termios API: stty sets the line). */
class DeviceReader implements ExactReader {
  private buffered = Buffer.alloc(0);
  constructor(private readonly fd: number) {}

  async readExact(n: number, timeoutMs: number): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    const chunk = Buffer.alloc(Math.max(n, 512));
    while (this.buffered.length < n) {
      let got = 0;
      try {
        got = fs.readSync(this.fd, chunk, 0, chunk.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      }
      if (got > 0) this.buffered = Buffer.concat([this.buffered, chunk.subarray(0, got)]);
      else if (Date.now() >= deadline) throw new Error('timed out reading the serial device');
      else await sleep(5);
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }
}

/**
 * What C's tcflush does for input: drop bytes already waiting, such as the trailing response
 * after a host list that the previous client never read. The fd is non-blocking.
 */
function discardPendingInput(fd: number): void {
  const sink = Buffer.alloc(4096);
  try {
    while (fs.readSync(fd, sink, 0, sink.length, null) > 0);
  } catch {
    // EAGAIN: nothing (more) waiting
  }
}

/** Serial device: O_EXCL open, raw line via stty, request, answer; -1 on any failure (docs/protocol.md §10.3). */
export async function fenceBySerialDevice(
  options: SerialOptions & { device: string; params: string },
  io: AgentIO,
): Promise<TransportResult> {
  const line = parseSerialParams(options.params);
  if ('error' in line) {
    if (line.badChar !== undefined) io.out(`Fail: ${line.badChar}`);
    io.err('open_port: Invalid argument');
    return NO_ANSWER;
  }
  let fd: number;
  try {
    const { O_RDWR, O_NOCTTY, O_EXCL, O_NONBLOCK } = fs.constants;
    fd = fs.openSync(options.device, O_RDWR | O_NOCTTY | O_EXCL | O_NONBLOCK);
  } catch (err) {
    // C's open_port line repeats whatever errno was left, i.e. the open error.
    io.err(`open: ${errorText(err)}`);
    io.err(`open_port: ${errorText(err)}`);
    return NO_ANSWER;
  }
  try {
    if (!tty.isatty(fd)) {
      io.err('tcsetattr: Inappropriate ioctl for device');
      io.err('open_port: Inappropriate ioctl for device');
      return NO_ANSWER;
    }
    const sttyError = await runStty(sttyArguments(options.device, line));
    if (sttyError !== undefined) {
      io.err(`tcsetattr: ${sttyError}`);
      io.err(`open_port: ${sttyError}`);
      return NO_ANSWER;
    }
    discardPendingInput(fd);
    const deadline = Date.now() + options.timeoutSec * 1000;
    fs.writeSync(fd, serialRequest(options));
    return await readSerialAnswer(new DeviceReader(fd), deadline);
  } catch {
    return NO_ANSWER;
  } finally {
    fs.closeSync(fd);
  }
}
