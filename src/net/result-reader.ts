/** Client side of a result (§6): one byte, or 0xFD + entries + terminator + final byte. */
import { Response } from '../protocol/constants.js';
import {
  HOST_ENTRY_SIZE,
  decodeHostEntry,
  isTerminator,
  type HostEntry,
} from '../protocol/hostlist.js';
import type { ByteReader } from './byte-reader.js';

export interface FenceResult {
  code: number;
  hostlist?: HostEntry[];
  /** The final byte after a host list, when the peer sent one. */
  hostlistCode?: number;
}

/** Bounded: at most `maxEntries` entries are read before the list is cut off. */
export async function readFenceResult(
  reader: ByteReader,
  timeoutMs: number,
  maxEntries = 100_000,
): Promise<FenceResult> {
  const code = (await reader.readExact(1, timeoutMs, 'result'))[0]!;
  if (code !== Response.HOSTLIST) return { code };
  const hostlist: HostEntry[] = [];
  while (hostlist.length < maxEntries) {
    const entry = decodeHostEntry(await reader.readExact(HOST_ENTRY_SIZE, timeoutMs, 'host entry'));
    if (isTerminator(entry)) break;
    hostlist.push(entry);
  }
  const final = await reader.readExact(1, timeoutMs, 'final byte').then(
    (b) => b[0],
    () => undefined, // clients never need it; C ones do not read it
  );
  return final === undefined ? { code, hostlist } : { code, hostlist, hostlistCode: final };
}
