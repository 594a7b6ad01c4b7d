/**
 * `virtfence config check`: every problem of a fence_virt.conf with its line, as errors (the
 * daemon would refuse to start) and warnings (ignored keys, permissions the daemon fixes).
 * File-system facts come through a probe so the logic stays testable without I/O.
 */
import { statSync } from 'node:fs';
import { DEFAULT_KEY_FILE } from '../protocol/constants.js';
import { ignoredItems } from './known-keys.js';
import { issueKey, readValues } from './block.js';
import { AmqpBlockSchema, amqpBackend, cpgBackend } from './plugins/backends.js';
import { blockValues, childrenNamed, lookupBlock, lookupNode, lookupValue } from './lookup.js';
import {
  BUILTIN_BACKENDS,
  BUILTIN_LISTENERS,
  isBuiltinBackend,
  isBuiltinListener,
} from './modules.js';
import { ConfigSyntaxError, parseConfig } from './parser.js';
import { ConfigError, validateConfig } from './schema.js';
import type { ConfigBlock, DaemonConfig } from './types.js';

export type Severity = 'error' | 'warning';

export interface CheckIssue {
  severity: Severity;
  line: number | undefined;
  column?: number;
  /** Key path such as `listeners/multicast/port`, when the issue is about one key. */
  path?: string;
  message: string;
}

export interface CheckResult {
  file: string;
  valid: boolean;
  issues: CheckIssue[];
  /** Present when the file validated: what the daemon would run. */
  config?: DaemonConfig;
}

/** What the check needs to know about a file: undefined when it does not exist. */
export type FileProbe = (path: string) => { mode: number } | undefined;

export const statProbe: FileProbe = (path) => {
  try {
    return { mode: statSync(path).mode & 0o7777 };
  } catch {
    return undefined;
  }
};

const lineOf = (root: ConfigBlock, path: string): number | undefined =>
  lookupNode(root, path)?.line;

function moduleIssues(root: ConfigBlock, config: DaemonConfig): CheckIssue[] {
  const issues: CheckIssue[] = [];
  const listenerLine = lineOf(root, 'fence_virtd/@listener');
  for (const name of config.fenceVirtd.listeners) {
    if (isBuiltinListener(name)) continue;
    issues.push({
      severity: 'error',
      line: listenerLine,
      path: 'fence_virtd/listener',
      message: `Could not find listener "${name}" (available: ${BUILTIN_LISTENERS.map((m) => m.name).join(', ')})`,
    });
  }
  if (!isBuiltinBackend(config.fenceVirtd.backend)) {
    issues.push({
      severity: 'error',
      line: lineOf(root, 'fence_virtd/@backend'),
      path: 'fence_virtd/backend',
      message: `Could not find backend "${config.fenceVirtd.backend}" (available: ${BUILTIN_BACKENDS.map((m) => m.name).join(', ')})`,
    });
  }
  if (config.fenceVirtd.backend === 'cpg') {
    // The block's own declaration; the daemon also checks dead_after > heartbeat_interval.
    const values = blockValues(root, 'backends/cpg');
    const legacy = lookupValue(root, 'fence_virtd/@name_mode');
    const r = cpgBackend.block.raw.safeParse(
      readValues(cpgBackend.block, {
        ...values,
        ...(values.name_mode === undefined && legacy !== undefined ? { name_mode: legacy } : {}),
        host_id: values.host_id ?? 'host-name',
      }),
    );
    for (const issue of r.success ? [] : r.error.issues) {
      const key = issueKey(issue.path);
      issues.push({
        severity: 'error',
        line: lineOf(root, `backends/cpg/@${key}`) ?? lineOf(root, 'backends/cpg'),
        path: `backends/cpg/${key}`,
        message: issue.message,
      });
    }
  }
  return issues;
}

/** Key files the daemon stats at start-up: one per listener, plus the amqp cluster key. */
function keyFiles(root: ConfigBlock, config: DaemonConfig): { path: string; keyFile: string }[] {
  const keys: { path: string; keyFile: string }[] = [];
  for (const name of config.fenceVirtd.listeners) {
    const configured = lookupValue(root, `listeners/${name}/@key_file`);
    keys.push({ path: `listeners/${name}/key_file`, keyFile: configured ?? DEFAULT_KEY_FILE });
  }
  const clusterKey = lookupValue(root, 'backends/amqp/@key_file');
  if (config.fenceVirtd.backend === 'amqp' && clusterKey) {
    keys.push({ path: 'backends/amqp/key_file', keyFile: clusterKey });
  }
  const cpgKey = lookupValue(root, 'backends/cpg/@key_file');
  if (config.fenceVirtd.backend === 'cpg' && cpgKey) {
    keys.push({ path: 'backends/cpg/key_file', keyFile: cpgKey });
  }
  return keys.filter((k, i) => keys.findIndex((o) => o.keyFile === k.keyFile) === i);
}

function permissionIssue(
  file: string,
  what: string,
  probe: FileProbe,
  line: number | undefined,
  path?: string,
): CheckIssue | undefined {
  const stat = probe(file);
  if (!stat) {
    return {
      severity: 'error',
      line,
      ...(path ? { path } : {}),
      message: `${what} ${file} does not exist; fence_virtd will not start (create it with 'virtfence keygen ${file}')`,
    };
  }
  if (stat.mode === 0o600) return undefined;
  return {
    severity: 'warning',
    line,
    ...(path ? { path } : {}),
    message: `${what} ${file} has mode 0${stat.mode.toString(8)}; fence_virtd changes it to 0600 at start-up`,
  };
}

function isMulticast(address: string): boolean {
  if (address.includes(':')) return /^ff/i.test(address);
  const first = Number(address.split('.')[0]);
  return first >= 224 && first <= 239;
}

/** Settings that load fine but probably do not do what was meant. */
function semanticIssues(root: ConfigBlock, config: DaemonConfig): CheckIssue[] {
  const issues: CheckIssue[] = [];
  const warn = (path: string, message: string): void => {
    issues.push({
      severity: 'warning',
      line: lineOf(root, path.replace(/\/([^/]+)$/, '/@$1')),
      path,
      message,
    });
  };
  const address = config.listeners.multicast.address;
  if (config.fenceVirtd.listeners.includes('multicast') && !isMulticast(address)) {
    warn('listeners/multicast/address', `${address} is not a multicast group address`);
  }
  for (const listener of ['tcp', 'vsock']) {
    if (lookupValue(root, `listeners/${listener}/@auth`) === undefined) continue;
    warn(
      `listeners/${listener}/auth`,
      'virtfence uses this as the challenge algorithm, as documented; the C fence_virtd ' +
        '4.12.1 reads it as the minimum packet hash instead',
    );
  }
  const groups = lookupBlock(root, 'groups');
  for (const group of groups ? childrenNamed(groups, 'group', 'block') : []) {
    if (
      childrenNamed(group, 'ip', 'value').length + childrenNamed(group, 'uuid', 'value').length >
      0
    ) {
      continue;
    }
    issues.push({
      severity: 'warning',
      line: group.line,
      path: 'groups/group',
      message: 'group has no ip or uuid entries and has no effect',
    });
  }
  return issues;
}

/**
 * The amqp block as the daemon reads it: every value checked, and the chosen profile's rules
 * (e.g. activemq needs a username; rabbitmq3 fan-out addresses are /topic/…).
 */
function amqpIssues(root: ConfigBlock, config: DaemonConfig): CheckIssue[] {
  if (config.fenceVirtd.backend !== 'amqp') return [];
  const block = lookupBlock(root, 'backends/amqp');
  const values = blockValues(root, 'backends/amqp');
  // host_id defaults to the host name at start-up: any valid one will do here.
  const input = readValues(amqpBackend.block, { ...values, host_id: values.host_id ?? 'check' });
  const parsed = AmqpBlockSchema.safeParse(input);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => {
    const key = issueKey(issue.path) || '(block)';
    return {
      severity: 'error' as const,
      line: lineOf(root, `backends/amqp/@${key}`) ?? block?.line,
      path: `backends/amqp/${key}`,
      message: issue.message,
    };
  });
}

function fileIssues(root: ConfigBlock, config: DaemonConfig, probe: FileProbe): CheckIssue[] {
  const issues: CheckIssue[] = [];
  for (const key of keyFiles(root, config)) {
    const line = lineOf(root, key.path.replace(/\/([^/]+)$/, '/@$1'));
    const issue = permissionIssue(key.keyFile, 'key file', probe, line, key.path);
    if (issue) issues.push(issue);
  }
  return issues;
}

/** Checks configuration text. `probe` is consulted for the key files (and the file itself). */
export function checkConfigText(text: string, file: string, probe?: FileProbe): CheckResult {
  let root: ConfigBlock;
  try {
    root = parseConfig(text, file);
  } catch (error) {
    if (!(error instanceof ConfigSyntaxError)) throw error;
    const issue = { severity: 'error' as const, line: error.line, column: error.column };
    return { file, valid: false, issues: [{ ...issue, message: error.reason }] };
  }
  const issues: CheckIssue[] = ignoredItems(root).map((item) => ({
    severity: 'warning',
    line: item.node.line,
    path: item.path,
    message: item.text,
  }));
  let config: DaemonConfig | undefined;
  try {
    config = validateConfig(root, file);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) {
      issues.push({ severity: 'error', ...problem });
    }
  }
  if (config) {
    issues.push(
      ...moduleIssues(root, config),
      ...semanticIssues(root, config),
      ...amqpIssues(root, config),
    );
    if (probe) {
      const own = probe(file);
      if (own && own.mode !== 0o600) {
        issues.push({
          severity: 'warning',
          line: undefined,
          message: `configuration file has mode 0${own.mode.toString(8)}; fence_virtd changes it to 0600 at start-up`,
        });
      }
      issues.push(...fileIssues(root, config, probe));
    }
  }
  issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  const valid = !issues.some((i) => i.severity === 'error');
  return { file, valid, issues, ...(config && valid ? { config } : {}) };
}

/** `file:line:col: severity: message`, like compilers print it. */
export function formatIssue(file: string, issue: CheckIssue): string {
  const where = [file, issue.line, issue.column].filter((p) => p !== undefined).join(':');
  const subject = issue.path && !issue.message.includes(issue.path) ? `${issue.path}: ` : '';
  const message =
    issue.line === undefined ? issue.message : issue.message.replace(/ on line \d+/, '');
  return `${where}: ${issue.severity}: ${subject}${message}`;
}
