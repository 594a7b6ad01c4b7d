/**
 * Validation of a parsed fence_virt.conf into the typed DaemonConfig, with the C defaults of
 * docs/protocol.md §15.5. Values are read with the C lookup rules (last occurrence wins); every problem
 * names its key path and line.
 */
import { isIPv4, isIPv6 } from 'node:net';
import {
  DEFAULT_IPV4_GROUP,
  DEFAULT_IPV6_GROUP,
  DEFAULT_TCP_IPV4,
  DEFAULT_TCP_IPV6,
} from '../protocol/constants.js';
import { issueKey, readBlock, typed } from './block.js';
import { childrenNamed, lookupBlock } from './lookup.js';
import { libvirtBackend } from './plugins/backends.js';
import { fenceVirtdBlock } from './plugins/daemon.js';
import {
  multicastListener,
  serialListener,
  tcpListener,
  vsockListener,
} from './plugins/listeners.js';
import type { BlockConfig, DaemonConfig, GroupConfig } from './types.js';
import type { ConfigBlock } from './tree.js';

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

/** The blocks the daemon reads itself (plugin blocks such as amqp validate their own). */
const DAEMON_BLOCKS = {
  fenceVirtd: fenceVirtdBlock,
  multicast: multicastListener.block,
  tcp: tcpListener.block,
  vsock: vsockListener.block,
  serial: serialListener.block,
  libvirt: libvirtBackend.block,
} as const;

type BlockName = keyof typeof DAEMON_BLOCKS;
type Parsed = { [N in BlockName]: BlockConfig<(typeof DAEMON_BLOCKS)[N]> };

/** Parses every daemon block, collecting the problems of all of them. */
function parseBlocks(
  root: ConfigBlock,
  problems: ConfigProblem[],
  lines: Map<string, number>,
): Parsed | undefined {
  const parsed: Partial<Record<BlockName, unknown>> = {};
  for (const [name, block] of Object.entries(DAEMON_BLOCKS) as [
    BlockName,
    (typeof DAEMON_BLOCKS)[BlockName],
  ][]) {
    const raw = readBlock(block, lookupBlock(root, block.path));
    for (const [key, line] of raw.lines) lines.set(`${block.path}/${key}`, line);
    const result = block.raw.safeParse(raw.values);
    if (result.success) {
      parsed[name] = typed(block, result.data);
      continue;
    }
    for (const issue of result.error.issues) {
      const key = issueKey(issue.path);
      const path = `${block.path}/${key}`;
      problems.push({ path, line: lines.get(path), message: issue.message });
    }
  }
  return problems.length === 0 ? (parsed as Parsed) : undefined;
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
  const problems: ConfigProblem[] = [];
  const lines = new Map<string, number>();
  const blocks = parseBlocks(root, problems, lines);
  if (!blocks) throw new ConfigError(fileName, problems);
  const { fenceVirtd: fv, multicast, tcp } = blocks;
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
    multicast.address ?? (multicast.family === 'ipv6' ? DEFAULT_IPV6_GROUP : DEFAULT_IPV4_GROUP);
  const tcpAddress = tcp.address ?? (tcp.family === 'ipv6' ? DEFAULT_TCP_IPV6 : DEFAULT_TCP_IPV4);
  const metricsAddress = fv.metricsAddress ?? '127.0.0.1';
  if (!isIPv4(metricsAddress) && !isIPv6(metricsAddress)) {
    problems.push({
      path: 'fence_virtd/metrics_address',
      line: lines.get('fence_virtd/metrics_address'),
      message: `'${metricsAddress}' is not an IP address`,
    });
  }
  for (const problem of [
    addressProblem('listeners/multicast/address', mcastAddress, multicast.family, lines),
    addressProblem('listeners/tcp/address', tcpAddress, tcp.family, lines),
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
      waitForInit: fv.waitForInit ?? fv.waitForBackend ?? false,
      modulePath: fv.modulePath,
      metrics:
        fv.metricsPort === undefined
          ? undefined
          : { port: fv.metricsPort, address: metricsAddress },
      statsIntervalSec: fv.statsInterval,
    },
    listeners: {
      multicast: { ...multicast, address: mcastAddress },
      tcp: { ...tcp, address: tcpAddress },
      vsock: blocks.vsock,
      serial: blocks.serial,
    },
    backends: { libvirt: blocks.libvirt },
    groups: readGroups(root),
    tree: root,
  };
}
