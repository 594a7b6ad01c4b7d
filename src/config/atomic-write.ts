/** Replacing a file atomically, the way `fence_virtd -c` saves its configuration. */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Writes `<file>.XXXXXX` (mode 0600) next to the file, then renames it over the file. */
export function writeFileAtomically(file: string, contents: string | Uint8Array): void {
  const suffix = randomBytes(6)
    .toString('base64')
    .replace(/[^A-Za-z0-9]/g, 'x')
    .slice(0, 6);
  const temp = join(dirname(file), `${basename(file)}.${suffix}`);
  const fd = openSync(temp, 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600); // whatever the umask
    const bytes = typeof contents === 'string' ? Buffer.from(contents) : contents;
    for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(temp);
    throw error;
  }
  closeSync(fd);
  try {
    renameSync(temp, file);
  } catch (error) {
    unlinkSync(temp);
    throw error;
  }
}
