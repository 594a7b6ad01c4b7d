/**
 * Key files (docs/protocol.md §2.1) are read like C reads them: the first 4096 bytes at most, never the whole file, so a
 * huge or endless file (a device, a FIFO fed forever) costs 4 KiB, not gigabytes.
 */
import fs from 'node:fs';
import { KEY_MAX } from './constants.js';

/** Raw bytes of `file`, at most `max` of them (every byte counts, trailing newline included). */
export function readKeyBytes(file: string, max: number = KEY_MAX): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(max);
    let filled = 0;
    while (filled < max) {
      const n = fs.readSync(fd, buffer, filled, max - filled, null);
      if (n === 0) break;
      filled += n;
    }
    return buffer.subarray(0, filled);
  } finally {
    fs.closeSync(fd);
  }
}

/** readKeyBytes without blocking the event loop. */
export async function readKeyBytesAsync(file: string, max: number = KEY_MAX): Promise<Buffer> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const buffer = Buffer.alloc(max);
    let filled = 0;
    while (filled < max) {
      const { bytesRead } = await handle.read(buffer, filled, max - filled, null);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled);
  } finally {
    await handle.close();
  }
}
