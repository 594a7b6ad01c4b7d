/** The one client-side host-list reader: terminator, early end, and a bound on entries. */
import { readHostList, type ExactReader } from '../../src/net/result-reader.js';
import { encodeHostEntry, HOST_ENTRY_SIZE } from '../../src/protocol/hostlist.js';

const entry = (i: number) => ({ name: `vm${i}`, uuid: `uuid-${i}`, state: 1 });

/** Serves `count` entries (then a terminator if asked), then fails like a closed stream. */
function peer(count: number, terminator: boolean): ExactReader & { reads: number } {
  return {
    reads: 0,
    async readExact(n: number) {
      expect(n).toBe(HOST_ENTRY_SIZE);
      this.reads += 1;
      if (this.reads <= count) return encodeHostEntry(entry(this.reads));
      if (terminator && this.reads === count + 1) return Buffer.alloc(HOST_ENTRY_SIZE);
      throw new Error('connection closed');
    },
  };
}

describe('readHostList', () => {
  it('reads entries up to the terminator', async () => {
    expect(await readHostList(peer(3, true), 100)).toEqual([entry(1), entry(2), entry(3)]);
  });
  it('keeps what arrived when the stream ends early, as the C clients do', async () => {
    expect(await readHostList(peer(2, false), 100)).toEqual([entry(1), entry(2)]);
  });
  it('stops after maxEntries from a peer that never sends the terminator', async () => {
    const endless = peer(Number.MAX_SAFE_INTEGER, false);
    expect(await readHostList(endless, 100, 50)).toHaveLength(50);
    expect(endless.reads).toBe(50);
  });
});
