/** The listener plugins' declarations (docs/protocol.md §15.5): name, version, keys. */
import { z } from 'zod';
import { DEFAULT_KEY_FILE, DEFAULT_PORT, HashType } from '../../protocol/constants.js';
import { defineBlock } from '../block.js';
import { familyText, hashText, portText, serialModeText } from '../fields.js';
import type { PluginDeclaration } from './plugin.js';

/** The keys every listener with a shared key has. */
const keyed = {
  key_file: z.string().default(DEFAULT_KEY_FILE),
  /** Minimum accepted packet hash. */
  hash: hashText.default(HashType.sha256),
  /** Challenge-response algorithm. */
  auth: hashText.default(HashType.sha256),
};

export const multicastListener = {
  kind: 'listener' as const,
  name: 'multicast',
  version: '1.3',
  block: defineBlock('listeners/multicast', {
    ...keyed,
    family: familyText.default('ipv4'),
    /** Default: the family's group (225.0.0.12 / ff05::3:1). */
    address: z.string().optional(),
    port: portText.default(DEFAULT_PORT),
    interface: z.string().optional(),
  }),
};

export const tcpListener = {
  kind: 'listener' as const,
  name: 'tcp',
  version: '0.2',
  block: defineBlock('listeners/tcp', {
    ...keyed,
    family: familyText.default('ipv4'),
    /** Default: 127.0.0.1 / ::1. */
    address: z.string().optional(),
    port: portText.default(DEFAULT_PORT),
  }),
};

export const serialListener = {
  kind: 'listener' as const,
  name: 'serial',
  version: '0.5',
  block: defineBlock(
    'listeners/serial',
    {
      uri: z.string().optional(),
      path: z.string().optional(),
      mode: serialModeText.default('serial'),
    },
    // C stats listeners/serial/key_file at start-up although the listener uses no key.
    { ignored: ['key_file'] },
  ),
};

export const vsockListener = {
  kind: 'listener' as const,
  name: 'vsock',
  version: '0.2',
  block: defineBlock('listeners/vsock', { ...keyed, port: portText.default(DEFAULT_PORT) }),
};

/** In the order `fence_virtd -l` and the `-c` dialog list them. */
export const LISTENER_PLUGINS: readonly PluginDeclaration[] = [
  multicastListener,
  tcpListener,
  serialListener,
  vsockListener,
];
