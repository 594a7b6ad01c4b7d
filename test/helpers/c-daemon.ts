/**
 * Starts the REAL C fence_virtd (/usr/sbin/fence_virtd) with a generated config in a temp dir and
 * stops it by pid. Listener multicast, tcp or serial; backend libvirt on `test:///default` by
 * default, whose state lives inside the daemon: a fresh daemon has the one running domain `test`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startDaemon, tempDir, type RunningDaemon, type TempDir } from './daemon.js';
import { eventually } from './eventually.js';

export const C_PLUGIN_DIR = '/usr/lib/x86_64-linux-gnu/fence-virt';
export const TEST_DOMAIN = { name: 'test', uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f' };

export interface StaticGroup {
  name?: string;
  ip?: string[];
  uuid?: string[];
}

export interface CDaemonOptions {
  /** Which fence_virtd runs the config: the real C one (default) or ours, a drop-in. */
  kind?: 'c' | 'ours';
  listener: 'multicast' | 'tcp' | 'serial';
  /** Multicast or TCP port (ignored by the serial listener). */
  port?: number;
  /** Existing key file; when absent, `key` (default "example-key-0123") is written to the temp dir. */
  keyFile?: string;
  key?: Buffer | string;
  hash?: 'none' | 'sha1' | 'sha256' | 'sha512';
  auth?: 'none' | 'sha1' | 'sha256' | 'sha512';
  family?: 'ipv4' | 'ipv6';
  /** Multicast group or TCP listen address. */
  address?: string;
  /** Multicast interface (default "lo" for IPv4, none for IPv6). */
  interface?: string;
  /** libvirt backend URI (default test:///default). */
  backendUri?: string;
  /** Serial listener: libvirt URI to watch, socket directory filter, serial or vmchannel. */
  serial?: { uri?: string; path?: string; mode?: 'serial' | 'vmchannel' };
  groups?: StaticGroup[];
  debug?: number;
}

export interface CDaemon {
  pid: number;
  dir: string;
  keyFile: string;
  configFile: string;
  /** Whatever the daemon printed so far. */
  output(): string;
  stop(): Promise<void>;
}

function quoted(key: string, value: string | number | undefined): string[] {
  return value === undefined ? [] : [`\t\t${key} = "${value}";`];
}

/** The fence_virt.conf text for the options (also handy for tests that want to read it). */
export function cDaemonConfig(options: CDaemonOptions, keyFile: string): string {
  const listenerKeys: string[] = [
    ...quoted('key_file', keyFile),
    ...quoted('hash', options.hash),
    ...quoted('auth', options.auth),
  ];
  if (options.listener === 'multicast') {
    listenerKeys.push(
      ...quoted('address', options.address),
      ...quoted('port', options.port),
      ...quoted('family', options.family ?? 'ipv4'),
      // IPv4 joins on lo so loopback multicast works offline; IPv6 joins on any interface.
      ...quoted('interface', options.interface ?? (options.family === 'ipv6' ? undefined : 'lo')),
    );
  } else if (options.listener === 'tcp') {
    listenerKeys.push(
      ...quoted('address', options.address),
      ...quoted('port', options.port),
      ...quoted('family', options.family),
    );
  } else {
    listenerKeys.push(
      ...quoted('uri', options.serial?.uri),
      ...quoted('path', options.serial?.path),
      ...quoted('mode', options.serial?.mode),
    );
  }
  const groups = (options.groups ?? []).map((g) =>
    [
      '\tgroup {',
      ...quoted('name', g.name).map((l) => l.slice(1)),
      ...(g.ip ?? []).map((ip) => `\t\tip = "${ip}";`),
      ...(g.uuid ?? []).map((uuid) => `\t\tuuid = "${uuid}";`),
      '\t}',
    ].join('\n'),
  );
  return [
    'fence_virtd {',
    `\tlistener = "${options.listener}";`,
    '\tbackend = "libvirt";',
    `\tmodule_path = "${C_PLUGIN_DIR}";`,
    ...(options.debug !== undefined ? [`\tdebug = "${options.debug}";`] : []),
    '}',
    'listeners {',
    `\t${options.listener} {`,
    ...listenerKeys,
    '\t}',
    '}',
    'backends {',
    '\tlibvirt {',
    `\t\turi = "${options.backendUri ?? 'test:///default'}";`,
    '\t}',
    '}',
    ...(groups.length > 0 ? ['groups {', ...groups, '}'] : []),
    '',
  ].join('\n');
}

/** True when some socket listens on TCP `port` (read from /proc, so nothing touches the daemon). */
function tcpListening(port: number): boolean {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[1]?.endsWith(hexPort) && fields[3] === '0A') return true;
    }
  }
  return false;
}

/** Polls `ready`; a daemon that exits meanwhile fails at once with its output. */
function waitUntil(ready: () => boolean, daemon: RunningDaemon, ms: number): Promise<void> {
  return eventually(
    () => {
      if (daemon.process.exitCode !== null) {
        throw new Error(`fence_virtd exited with ${daemon.process.exitCode}: ${daemon.output()}`);
      }
      return ready();
    },
    ms,
    'fence_virtd to become ready',
    25,
  );
}

export function startCDaemon(options: CDaemonOptions): Promise<CDaemon> {
  return startFenceVirtd({ ...options, kind: 'c' });
}

/** The same generated config run by the C daemon or by ours (`kind`). */
export async function startFenceVirtd(options: CDaemonOptions): Promise<CDaemon> {
  const kind = options.kind ?? 'c';
  const dir: TempDir = tempDir('virtfence-cdaemon-');
  try {
    const keyFile = options.keyFile ?? dir.file('fence_xvm.key', options.key ?? 'example-key-0123');
    const configFile = dir.file('fence_virt.conf', cDaemonConfig(options, keyFile));
    const multicast = options.listener === 'multicast';
    const daemon = await startDaemon({
      kind,
      configFile,
      pidFile: path.join(dir.path, 'fence_virtd.pid'),
      ...(multicast
        ? { udpPort: options.port ?? 1229, udpFamily: options.family === 'ipv6' ? 'udp6' : 'udp4' }
        : {}),
    });
    if (kind === 'ours') {
      // startDaemon already waited for our daemon's "started" log entry.
    } else if (options.listener === 'tcp') {
      await waitUntil(() => tcpListening(options.port ?? 1229), daemon, 10_000);
    } else if (!multicast) {
      // The serial listener has no port: give it a moment to register the guests' sockets.
      const since = Date.now();
      await waitUntil(() => Date.now() - since > 500, daemon, 5_000);
    }
    return {
      pid: daemon.pid,
      dir: dir.path,
      keyFile,
      configFile,
      output: () => daemon.output(),
      async stop() {
        await daemon.stop();
        dir.remove();
      },
    };
  } catch (err) {
    dir.remove();
    throw err;
  }
}
