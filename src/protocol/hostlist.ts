/** Host-list framing (docs/protocol.md §6.2): 130-byte entries, a zero terminator, then a final byte. */
import { DOMAIN_NAME_MAX } from './constants.js';
import { readCString } from './fence-request.js';

export const HOST_ENTRY_SIZE = 130;

export interface HostEntry {
  name: string;
  uuid: string;
  /** Raw libvirt virDomainState. */
  state: number;
}

/** One entry; bytes the C daemon leaks from its stack are zero here (a documented deviation). */
export function encodeHostEntry(entry: HostEntry): Buffer {
  const buf = Buffer.alloc(HOST_ENTRY_SIZE);
  Buffer.from(entry.name, 'utf8').copy(buf, 0, 0, DOMAIN_NAME_MAX - 1);
  Buffer.from(entry.uuid, 'utf8').copy(buf, 64, 0, 63);
  buf[128] = entry.state & 0xff;
  return buf;
}

export function decodeHostEntry(buf: Buffer): HostEntry {
  return { name: readCString(buf, 0, 64), uuid: readCString(buf, 64, 64), state: buf[128] ?? 0 };
}

export function isTerminator(entry: HostEntry): boolean {
  return entry.name === '' && entry.uuid === '';
}

/** Entries then the 130 zero bytes of the terminator (without the leading 0xFD or final byte). */
export function encodeHostList(entries: readonly HostEntry[]): Buffer {
  return Buffer.concat([...entries.map(encodeHostEntry), Buffer.alloc(HOST_ENTRY_SIZE)]);
}

/** Sort as the libvirt backend does: by name, case-insensitively. */
export function sortHostEntries(entries: HostEntry[]): HostEntry[] {
  return entries.sort((a, b) => {
    const x = a.name.toLowerCase();
    const y = b.name.toLowerCase();
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** The client's list line: `%-32s %s %s`, where only state 1 (running) prints "on". */
export function formatHostLine(entry: HostEntry): string {
  return `${entry.name.padEnd(32)} ${entry.uuid} ${entry.state === 1 ? 'on' : 'off'}`;
}

/** The complete TCP-family answer to HOSTLIST: 0xFD, entries, terminator, final byte (docs/protocol.md §6.2). */
export function encodeHostListResponse(entries: readonly HostEntry[], finalCode: number): Buffer {
  return Buffer.concat([
    Buffer.from([0xfd]),
    encodeHostList(entries),
    Buffer.from([finalCode & 0xff]),
  ]);
}
