/**
 * The exact-replay filter every keyed listener of one daemon shares (multicast, tcp, vsock).
 *
 * A signed fence request carries 6 fresh random bytes and a digest over them, so a legitimate
 * client never sends the same bytes twice (retransmissions get new random bytes). A packet seen
 * before is therefore a capture being replayed, whichever listener it arrives on: multicast
 * traffic replayed into TCP, or the other way round.
 *
 * Identity: the first 8 bytes of the packet's hash field (a digest over key, random bytes and
 * the whole request: uniformly distributed, and only packets whose signature verified are
 * recorded, so nobody without the key can choose or flood identities). Two different packets
 * collide with probability entries / 2^64 (about 6e-14 at 1 Mi entries): a collision refuses a
 * legitimate packet once, and the client's next retransmission passes.
 *
 * Storage: two open-addressing tables of 64-bit slots, each half full at most. New identities
 * go into the current table; when it holds `capacity / 2` the previous table is dropped and the
 * current one becomes the previous. So the filter always remembers the last `capacity / 2` to
 * `capacity` accepted packets, with no time limit and no per-entry allocation:
 * 2 tables × capacity slots × 8 bytes = 16 bytes per remembered packet.
 *
 * Sizing (DEFAULT_REPLAY_CAPACITY = 2^21): remembers at least 1,048,576 packets — a day of
 * traffic at 12 accepted packets per second (for example 100 guests each polling `status`
 * every 20 s from 2 source addresses = 864,000 a day) — in 32 MiB.
 */
export const DEFAULT_REPLAY_CAPACITY = 1 << 21;
export const REPLAY_BYTES_PER_ENTRY = 16;

export class ReplayFilter {
  private current: BigUint64Array;
  private previous: BigUint64Array;
  private currentCount = 0;
  private readonly mask: number;
  private readonly half: number;
  private rotationCount = 0;

  constructor(readonly capacity: number = DEFAULT_REPLAY_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 4 || (capacity & (capacity - 1)) !== 0) {
      throw new RangeError('replay filter capacity must be a power of two ≥ 4');
    }
    this.half = capacity / 2;
    this.mask = capacity - 1;
    this.current = new BigUint64Array(capacity);
    this.previous = new BigUint64Array(capacity);
  }

  /** Identity of a signed 176-byte request: 8 bytes of its hash field (never 0). */
  static identity(packet: Buffer, hashOffset = 0x70): bigint {
    const id = packet.readBigUInt64LE(hashOffset);
    return id === 0n ? 1n : id;
  }

  /** True if `id` was recorded before; otherwise records it and returns false. */
  checkAndRecord(identity: bigint): boolean {
    const id = BigInt.asUintN(64, identity) || 1n; // as stored: 64 bits, 0 marks a free slot
    if (this.contains(this.current, id) || this.contains(this.previous, id)) return true;
    if (this.currentCount >= this.half) {
      this.previous = this.current;
      this.current = new BigUint64Array(this.capacity);
      this.currentCount = 0;
      this.rotationCount++;
    }
    let slot = Number(id & BigInt(this.mask));
    while (this.current[slot] !== 0n) slot = (slot + 1) & this.mask;
    this.current[slot] = id;
    this.currentCount++;
    return false;
  }

  /** Packets remembered now (between capacity/2 and capacity once warmed up). */
  get size(): number {
    return this.currentCount + (this.rotationCount > 0 ? this.half : 0);
  }

  /** How often the oldest half was forgotten. */
  get rotations(): number {
    return this.rotationCount;
  }

  /** Memory held by the tables. */
  get bytes(): number {
    return this.current.byteLength + this.previous.byteLength;
  }

  private contains(table: BigUint64Array, id: bigint): boolean {
    let slot = Number(id & BigInt(this.mask));
    for (;;) {
      const value = table[slot];
      if (value === 0n) return false;
      if (value === id) return true;
      slot = (slot + 1) & this.mask;
    }
  }
}
