/**
 * Loading fence_virt.conf: parse (docs/protocol.md §15.1-15.2), validate with the C defaults (§15.5), and
 * collect warnings for unknown or duplicated keys.
 */
import { readFileSync } from 'node:fs';
import { configWarnings } from './known-keys.js';
import { parseConfig } from './parser.js';
import { validateConfig } from './schema.js';
import type { DaemonConfig } from './types.js';
import { errText } from '../util/errors.js';

export interface LoadedConfig {
  config: DaemonConfig;
  warnings: string[];
}

/** Parses and validates text. Throws ConfigSyntaxError or ConfigError. */
export function loadConfigText(text: string, fileName = '<config>'): LoadedConfig {
  const tree = parseConfig(text, fileName);
  const config = validateConfig(tree, fileName);
  return { config, warnings: configWarnings(tree) };
}

/** Reads, parses and validates a file. Throws ConfigSyntaxError, ConfigError, or a read error naming the file. */
export function loadConfigFile(path: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = errText(error);
    throw new Error(`Cannot read configuration file ${path}: ${reason}`, { cause: error });
  }
  return loadConfigText(text, path);
}
