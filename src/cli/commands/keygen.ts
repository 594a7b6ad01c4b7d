import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Args, Flags } from '@oclif/core';
import { writeFileAtomically } from '../../config/atomic-write.js';
import { DEFAULT_KEY_FILE, KEY_MAX } from '../../protocol/constants.js';
import { BaseCommand } from '../base.js';
import { keyFingerprint } from '../fingerprint.js';

export interface KeygenResult {
  file: string;
  bytes: number;
  fingerprint: string;
  replaced: boolean;
}

export default class Keygen extends BaseCommand {
  static override summary = 'Create a random shared key file.';
  static override description =
    'Writes random bytes (4096 by default, like `dd if=/dev/urandom bs=4096 count=1` in the ' +
    'fence_virt documentation) with mode 0600, and prints its fingerprint, never the key. ' +
    'Copy the same file to every host and guest of the cluster.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> /etc/cluster/fence_xvm.key --force',
    '<%= config.bin %> <%= command.id %> /etc/cluster/fence_virt_cluster.key --json',
  ];
  static override args = {
    file: Args.string({ description: 'Key file to create.', default: DEFAULT_KEY_FILE }),
  };
  static override flags = {
    force: Flags.boolean({ summary: 'Replace an existing key file.' }),
    size: Flags.integer({
      summary: `Key size in bytes (16-${KEY_MAX}; only the first ${KEY_MAX} bytes are ever used).`,
      default: KEY_MAX,
      min: 16,
      max: KEY_MAX,
    }),
  };

  async run(): Promise<KeygenResult> {
    const { args, flags } = await this.parse(Keygen);
    const file = args.file;
    const replaced = existsSync(file);
    if (replaced && !flags.force) {
      this.fail(
        `${file} already exists; use --force to replace it (every peer then needs the new key)`,
      );
    }
    const parent = dirname(file);
    if (!existsSync(parent)) mkdirSync(parent, { recursive: true, mode: 0o755 });
    const key = randomBytes(flags.size);
    try {
      writeFileAtomically(file, key);
    } catch (error) {
      this.fail(`cannot write ${file}: ${(error as Error).message}`);
    }
    const result = { file, bytes: key.length, fingerprint: keyFingerprint(key), replaced };
    this.log(`${replaced ? 'Replaced' : 'Created'} ${file}: ${key.length} random bytes, mode 0600`);
    this.log(`Fingerprint: ${result.fingerprint}`);
    return result;
  }
}
