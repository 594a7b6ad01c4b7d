/** Client side of a result (docs/protocol.md §6): one byte, or 0xFD + entries + terminator + final byte. */
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

/** The one call the answer parsers need: ByteReader, or a serial device reader. */
export interface ExactReader {
  readExact(n: number, timeoutMs: number, what?: string): Promise<Buffer>;
}

/** Bounds the work one answer can cause: no daemon has this many domains. */
export const MAX_HOST_ENTRIES = 100_000;

/**
 * Entries up to the terminator. An early end keeps what arrived, as the C clients do; so does
 * reaching `maxEntries`.
 */
export async function readHostList(
  reader: ExactReader,
  timeoutMs: number,
  maxEntries = MAX_HOST_ENTRIES,
): Promise<HostEntry[]> {
  const entries: HostEntry[] = [];
  while (entries.length < maxEntries) {
    let raw: Buffer;
    try {
      raw = await reader.readExact(HOST_ENTRY_SIZE, timeoutMs, 'host entry');
    } catch {
      return entries;
    }
    const entry = decodeHostEntry(raw);
    if (isTerminator(entry)) return entries;
    entries.push(entry);
  }
  return entries;
}

export async function readFenceResult(reader: ByteReader, timeoutMs: number): Promise<FenceResult> {
  const code = (await reader.readExact(1, timeoutMs, 'result'))[0]!;
  if (code !== Response.HOSTLIST) return { code };
  const hostlist = await readHostList(reader, timeoutMs);
  const final = await reader.readExact(1, timeoutMs, 'final byte').then(
    (b) => b[0],
    () => undefined, // clients never need it; C ones do not read it
  );
  return final === undefined ? { code, hostlist } : { code, hostlist, hostlistCode: final };
}
