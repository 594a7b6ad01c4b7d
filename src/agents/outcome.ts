/** What a transport's answer means to the caller: stdout lines and exit code (docs/protocol.md §11). */
import { Op, Response } from '../protocol/constants.js';
import { formatHostLine, type HostEntry } from '../protocol/hostlist.js';

/** A transport result: the response code (-1 for "no usable answer"), and a host list if any. */
export interface TransportResult {
  code: number;
  hostlist?: HostEntry[];
}

export interface Outcome {
  stdout: string[];
  exitCode: number;
}

/** TCP-family transports carry the code in a signed char; serial ones an int. */
export function asSignedByte(code: number): number {
  const byte = code & 0xff;
  return byte >= 0x80 ? byte - 0x100 : byte;
}

export function outcomeOf(op: number, result: TransportResult): Outcome {
  const { code } = result;
  if (code === Response.HOSTLIST && result.hostlist) {
    return { stdout: result.hostlist.map(formatHostLine), exitCode: 0 };
  }
  switch (code) {
    case Response.SUCCESS:
      return { stdout: op === Op.STATUS ? ['Status: ON'] : [], exitCode: 0 };
    case Response.OFF:
      return { stdout: op === Op.STATUS ? ['Status: OFF'] : [], exitCode: 2 };
    case Response.FAIL:
      return { stdout: ['Operation failed'], exitCode: 1 };
    case Response.PERM:
      return { stdout: ['Permission denied'], exitCode: 3 };
    default:
      return { stdout: [`Unknown response (${code})`], exitCode: code & 0xff };
  }
}
