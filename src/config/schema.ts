/**
 * Validation of a parsed fence_virt.conf into the typed DaemonConfig, with the C defaults of
 * spec §15.5. Values are read with the C lookup rules (last occurrence wins); every problem
 * names its key path and line.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import {
  DEFAULT_IPV4_GROUP,
  DEFAULT_IPV6_GROUP,
  DEFAULT_KEY_FILE,
  DEFAULT_PORT,
  DEFAULT_TCP_IPV4,
  DEFAULT_TCP_IPV6,
  parseHashName,
  HashType,
} from '../protocol/constants.js';
import { childrenNamed, indexedValues, lookupBlock } from './lookup.js';
import type { ConfigBlock, DaemonConfig, GroupConfig } from './types.js';

export interface ConfigProblem {
  /** Key path such as `listeners/multicast/port`. */
  path: string;
  line: number | undefined;
  message: string;
}

export function formatProblem(problem: ConfigProblem): string {
  const where = problem.line === undefined ? '' : ` on line ${problem.line}`;
  return `${problem.path}${where}: ${problem.message}`;
}

/** The configuration is syntactically fine but has invalid or missing values. */
export class ConfigError extends Error {
  constructor(
    readonly fileName: string,
    readonly problems: ConfigProblem[],
  ) {
    super(`${fileName}: ${problems.map(formatProblem).join('; ')}`);
    this.name = 'ConfigError';
  }
}

const INTEGER = /^[+-]?\d+$/;

const integerText = z
  .string()
  .regex(INTEGER, { error: (i) => `'${String(i.input)}' is not an integer` })
  .transform(Number);

const flagText = integerText.transform((n) => n !== 0);

const portText = z
  .string()
  .regex(/^\d+$/, { error: (i) => `'${String(i.input)}' is not a port number` })
  .transform(Number)
  .refine((n) => n >= 1 && n <= 65535, {
    error: (i) => `port ${String(i.input)} is out of range (1-65535)`,
  });

const hashText = z.string().transform((text, ctx) => {
  const code = parseHashName(text);
  if (code === undefined) {
    ctx.addIssue({ code: 'custom', message: `'${text}' is not one of none, sha1, sha256, sha512` });
    return z.NEVER;
  }
  return code;
});

const familyText = z.string().transform((text, ctx) => {
  const family = text.toLowerCase();
  if (family !== 'ipv4' && family !== 'ipv6') {
    ctx.addIssue({ code: 'custom', message: `'${text}' is not a family; use ipv4 or ipv6` });
    return z.NEVER;
  }
  return family;
});

/** `serial`, `vmchannel`, or (as C does) an integer where non-zero means vmchannel. */
const serialModeText = z.string().transform((text, ctx) => {
  const mode = text.toLowerCase();
  if (mode === 'serial' || mode === 'vmchannel') return mode;
  if (INTEGER.test(text)) return Number(text) !== 0 ? 'vmchannel' : 'serial';
  ctx.addIssue({ code: 'custom', message: `'${text}' is not a mode; use serial or vmchannel` });
  return z.NEVER;
});

const listenerList = z.string().transform((text, ctx) => {
  const names = text
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter((n) => n.length > 0);
  if (names.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'names no listener' });
    return z.NEVER;
  }
  return [...new Set(names)];
});

const keyedListener = {
  key_file: z.string().default(DEFAULT_KEY_FILE),
  hash: hashText.default(HashType.sha256),
  auth: hashText.default(HashType.sha256),
};

const rawSchema = z.object({
  fence_virtd: z.object({
    listener: listenerList.optional(),
    backend: z.string().optional(),
    debug: integerText.default(0),
    foreground: flagText.default(false),
    wait_for_init: flagText.optional(),
    wait_for_backend: flagText.optional(),
    module_path: z.string().optional(),
    metrics_port: portText.optional(),
    metrics_address: z.string().optional(),
    stats_interval: integerText
      .refine((n) => n >= 0, { error: 'must be 0 (off) or a number of seconds' })
      .default(300),
  }),
  listeners: z.object({
    multicast: z.object({
      ...keyedListener,
      family: familyText.default('ipv4'),
      address: z.string().optional(),
      port: portText.default(DEFAULT_PORT),
      interface: z.string().optional(),
    }),
    tcp: z.object({
      ...keyedListener,
      family: familyText.default('ipv4'),
      address: z.string().optional(),
      port: portText.default(DEFAULT_PORT),
    }),
    vsock: z.object({ ...keyedListener, port: portText.default(DEFAULT_PORT) }),
    serial: z.object({
      uri: z.string().optional(),
      path: z.string().optional(),
      mode: serialModeText.default('serial'),
    }),
  }),
});

type RawInput = z.input<typeof rawSchema>;

/** Scalar keys the schema reads, by block path. */
const SCALAR_KEYS: Record<string, readonly string[]> = {
  fence_virtd: [
    'listener',
    'backend',
    'debug',
    'foreground',
    'wait_for_init',
    'wait_for_backend',
    'module_path',
    'metrics_port',
    'metrics_address',
    'stats_interval',
  ],
  'listeners/multicast': ['key_file', 'hash', 'auth', 'family', 'address', 'port', 'interface'],
  'listeners/tcp': ['key_file', 'hash', 'auth', 'family', 'address', 'port'],
  'listeners/vsock': ['key_file', 'hash', 'auth', 'port'],
  'listeners/serial': ['uri', 'path', 'mode'],
};

interface Extracted {
  raw: RawInput;
  lines: Map<string, number>;
}

/** Reads the scalar keys (last occurrence wins) into nested plain objects, noting lines. */
function extract(root: ConfigBlock): Extracted {
  const lines = new Map<string, number>();
  const nested: Record<string, unknown> = {};
  for (const [blockPath, keys] of Object.entries(SCALAR_KEYS)) {
    const block = lookupBlock(root, blockPath);
    const target: Record<string, string> = {};
    for (const key of keys) {
      const node = block ? childrenNamed(block, key, 'value')[0] : undefined;
      if (!node) continue;
      target[key] = node.value;
      lines.set(`${blockPath}/${key}`, node.line);
    }
    const parts = blockPath.split('/');
    let cursor = nested;
    for (const part of parts.slice(0, -1)) {
      cursor = (cursor[part] ??= {}) as Record<string, unknown>;
    }
    cursor[parts[parts.length - 1] as string] = target;
  }
  return { raw: nested as RawInput, lines };
}

/** Groups in C order: `groups/group[1]` (the last in the file) first. */
function readGroups(root: ConfigBlock): GroupConfig[] {
  const groups = lookupBlock(root, 'groups');
  if (!groups) return [];
  return childrenNamed(groups, 'group', 'block').map((group, i) => ({
    name: childrenNamed(group, 'name', 'value')[0]?.value ?? `unnamed-${i + 1}`,
    ips: childrenNamed(group, 'ip', 'value').map((v) => v.value),
    uuids: childrenNamed(group, 'uuid', 'value').map((v) => v.value),
  }));
}

function addressProblem(
  path: string,
  address: string,
  family: 'ipv4' | 'ipv6',
  lines: Map<string, number>,
): ConfigProblem | undefined {
  const valid = family === 'ipv4' ? isIPv4(address) : isIPv6(address);
  if (valid) return undefined;
  return {
    path,
    line: lines.get(path),
    message: `'${address}' is not an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} address (family is ${family})`,
  };
}

/** Validates a parsed tree. Throws ConfigError listing every problem found. */
export function validateConfig(root: ConfigBlock, fileName = '<config>'): DaemonConfig {
  const { raw, lines } = extract(root);
  const parsed = rawSchema.safeParse(raw);
  const problems: ConfigProblem[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.map(String).join('/');
      problems.push({ path, line: lines.get(path), message: issue.message });
    }
    throw new ConfigError(fileName, problems);
  }
  const { fence_virtd: fv, listeners: l } = parsed.data;
  if (!fv.listener) {
    problems.push({
      path: 'fence_virtd/listener',
      line: undefined,
      message: 'Failed to determine listener: the key is missing (e.g. listener = "multicast";)',
    });
  }
  if (!fv.backend) {
    problems.push({
      path: 'fence_virtd/backend',
      line: undefined,
      message: 'Failed to determine backend: the key is missing (e.g. backend = "libvirt";)',
    });
  }
  const mcastAddress =
    l.multicast.address ??
    (l.multicast.family === 'ipv6' ? DEFAULT_IPV6_GROUP : DEFAULT_IPV4_GROUP);
  const tcpAddress =
    l.tcp.address ?? (l.tcp.family === 'ipv6' ? DEFAULT_TCP_IPV6 : DEFAULT_TCP_IPV4);
  const metricsAddress = fv.metrics_address ?? '127.0.0.1';
  if (!isIPv4(metricsAddress) && !isIPv6(metricsAddress)) {
    problems.push({
      path: 'fence_virtd/metrics_address',
      line: lines.get('fence_virtd/metrics_address'),
      message: `'${metricsAddress}' is not an IP address`,
    });
  }
  for (const problem of [
    addressProblem('listeners/multicast/address', mcastAddress, l.multicast.family, lines),
    addressProblem('listeners/tcp/address', tcpAddress, l.tcp.family, lines),
  ]) {
    if (problem) problems.push(problem);
  }
  if (problems.length > 0 || !fv.listener || !fv.backend) throw new ConfigError(fileName, problems);

  return {
    fenceVirtd: {
      listeners: fv.listener,
      backend: fv.backend.toLowerCase(),
      debug: fv.debug,
      foreground: fv.foreground,
      waitForInit: fv.wait_for_init ?? fv.wait_for_backend ?? false,
      modulePath: fv.module_path,
      metrics:
        fv.metrics_port === undefined
          ? undefined
          : { port: fv.metrics_port, address: metricsAddress },
      statsIntervalSec: fv.stats_interval,
    },
    listeners: {
      multicast: {
        keyFile: l.multicast.key_file,
        hash: l.multicast.hash,
        auth: l.multicast.auth,
        family: l.multicast.family,
        address: mcastAddress,
        port: l.multicast.port,
        interface: l.multicast.interface,
      },
      tcp: {
        keyFile: l.tcp.key_file,
        hash: l.tcp.hash,
        auth: l.tcp.auth,
        family: l.tcp.family,
        address: tcpAddress,
        port: l.tcp.port,
      },
      vsock: {
        keyFile: l.vsock.key_file,
        hash: l.vsock.hash,
        auth: l.vsock.auth,
        port: l.vsock.port,
      },
      serial: { uri: l.serial.uri, path: l.serial.path, mode: l.serial.mode },
    },
    backends: { libvirt: { uris: indexedValues(lookupBlock(root, 'backends/libvirt'), 'uri') } },
    groups: readGroups(root),
    tree: root,
  };
}
