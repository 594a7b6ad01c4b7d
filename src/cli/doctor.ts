/**
 * `virtfence doctor`: the known causes of "Timed out waiting for response", each checked on the
 * machine it runs on (a hypervisor: `host`; a VM: `guest`) and explained with what to do.
 *
 * Every check reads the system as it is (routes, /proc/net/igmp, bridge settings, nftables and
 * iptables rules, the daemon's processes and sockets, its metrics, libvirt, the broker) or
 * probes it the way fence_xvm would. Keys are shown as fingerprints only.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { keyFingerprint } from './fingerprint.js';

const run = promisify(execFile);

export type Status = 'ok' | 'warn' | 'fail' | 'skip';

export interface Finding {
  check: string;
  status: Status;
  summary: string;
  /** What to do about it. */
  fix?: string;
}

// ---------------------------------------------------------------------------------------------
// Routes and group membership

/** The route the kernel picks for a group (`ip route get`), or the error it gives. */
export async function routeTo(
  group: string,
): Promise<{ dev: string | undefined; error: string | undefined }> {
  const ipv6 = net.isIPv6(group);
  try {
    const { stdout } = await run('ip', [...(ipv6 ? ['-6'] : []), '-j', 'route', 'get', group]);
    const routes = JSON.parse(stdout) as Array<{ dev?: string; type?: string }>;
    return { dev: routes[0]?.dev, error: undefined };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { dev: undefined, error: (e.stderr ?? e.message).trim() };
  }
}

export async function checkRoute(group: string): Promise<Finding> {
  const { dev, error } = await routeTo(group);
  if (dev)
    return { check: 'multicast-route', status: 'ok', summary: `${group} goes out via ${dev}` };
  const family = net.isIPv6(group) ? '-6 ' : '';
  const prefix = net.isIPv6(group) ? 'ff00::/8' : '224.0.0.0/4';
  return {
    check: 'multicast-route',
    status: 'fail',
    summary: `no route for the multicast group ${group}: ${error ?? 'none'}; nothing can be sent to it`,
    fix: `add a route for multicast on the interface facing the hypervisor, e.g. ip ${family}route add ${prefix} dev eth0 (or a default route)`,
  };
}

/** Groups joined per interface, from /proc/net/igmp and /proc/net/igmp6. */
export function groupMemberships(
  igmp = readOr('/proc/net/igmp'),
  igmp6 = readOr('/proc/net/igmp6'),
): Array<{ dev: string; group: string }> {
  const out: Array<{ dev: string; group: string }> = [];
  let dev: string | undefined;
  for (const line of igmp.split('\n').slice(1)) {
    const head = /^\d+\s+(\S+)\s*:/.exec(line);
    if (head) {
      dev = head[1];
      continue;
    }
    const entry = /^\s+([0-9A-Fa-f]{8})\s/.exec(line);
    if (entry && dev) {
      // The address is printed as a host-order (little-endian) number.
      const hex = entry[1]!;
      const bytes = [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16));
      out.push({ dev, group: bytes.join('.') });
    }
  }
  for (const line of igmp6.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || !/^[0-9a-f]{32}$/.test(f[2]!)) continue;
    const groups = f[2]!.match(/.{4}/g)!.join(':');
    out.push({ dev: f[1]!, group: normaliseIp(groups) });
  }
  return out;
}

function normaliseIp(text: string): string {
  if (!net.isIPv6(text)) return text;
  // Node's URL parser prints IPv6 in canonical compressed form.
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

export function checkMembership(
  group: string,
  iface: string | undefined,
  daemonRunning: boolean,
): Finding {
  const joined = groupMemberships()
    .filter((m) => m.group === normaliseIp(group))
    .map((m) => m.dev);
  if (joined.length === 0) {
    return {
      check: 'group-membership',
      status: 'fail',
      summary: `no interface has joined ${group}${daemonRunning ? '' : ' (fence_virtd is not running)'}: requests to the group are not delivered to any listener`,
      fix: daemonRunning
        ? `check the multicast listener's address and interface in the configuration, then restart fence_virtd`
        : 'start fence_virtd',
    };
  }
  if (iface && !joined.includes(iface)) {
    return {
      check: 'group-membership',
      status: 'fail',
      summary: `${group} is joined on ${joined.join(', ')} but not on ${iface}, the configured interface`,
      fix: `restart fence_virtd; check that ${iface} exists and has an address`,
    };
  }
  return {
    check: 'group-membership',
    status: 'ok',
    summary: `${group} joined on ${joined.join(', ')}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Bridges: IGMP snooping without a querier

/**
 * Bridges of this network namespace (`ip -d link`: sysfs may show another namespace's) with
 * IGMP snooping on and no querier: memberships expire and the bridge stops forwarding.
 */
export async function checkQueriers(configured?: string): Promise<Finding[]> {
  type Link = { ifname: string; linkinfo?: { info_data?: Record<string, unknown> } };
  let links: Link[];
  try {
    const { stdout } = await run('ip', ['-d', '-j', 'link', 'show', 'type', 'bridge']);
    links = JSON.parse(stdout) as Link[];
  } catch {
    return [];
  }
  return links.map((link): Finding => {
    const name = link.ifname;
    const data = link.linkinfo?.info_data ?? {};
    const snooping = data.mcast_snooping === 1;
    const querier = data.mcast_querier === 1;
    if (!snooping)
      return { check: 'igmp-querier', status: 'ok', summary: `${name}: IGMP snooping off` };
    if (querier)
      return { check: 'igmp-querier', status: 'ok', summary: `${name}: snooping with a querier` };
    return {
      check: 'igmp-querier',
      status: name === configured ? 'fail' : 'warn',
      summary: `${name}: IGMP snooping is on and no querier runs: memberships expire after a few minutes and the bridge stops forwarding fence multicast`,
      fix: `ip link set ${name} type bridge mcast_querier 1 (/sys/class/net/${name}/bridge/multicast_querier), or turn snooping off (mcast_snooping 0); make it permanent in the bridge's network configuration`,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Firewall rules

export interface DropRule {
  source: 'nftables' | 'iptables' | 'ip6tables';
  where: string;
  rule: string;
}

/** Rules that drop or reject `proto` to `port` in chains hooked at `hook`. */
export function findDrops(
  nftRuleset: string,
  iptablesSave: string,
  proto: 'udp' | 'tcp',
  port: number,
  hook: 'input' | 'output',
): DropRule[] {
  const drops: DropRule[] = [];
  const mentions = (text: string): boolean => portMatches(text, port);
  let table = '';
  let chain = '';
  let chainHook = '';
  for (const raw of nftRuleset.split('\n')) {
    const line = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^table (\S+ \S+)/.exec(line))) table = m[1]!;
    else if ((m = /^chain (\S+)/.exec(line))) {
      chain = m[1]!;
      chainHook = '';
    } else if ((m = /hook (\w+)/.exec(line)) && line.startsWith('type ')) chainHook = m[1]!;
    else if (
      chainHook === hook &&
      new RegExp(`\\b${proto} dport\\b`).test(line) &&
      /\b(drop|reject)\b/.test(line) &&
      mentions(line.slice(line.indexOf('dport')))
    ) {
      drops.push({ source: 'nftables', where: `table ${table} chain ${chain}`, rule: line });
    }
  }
  const ipChain = hook === 'input' ? 'INPUT' : 'OUTPUT';
  for (const line of iptablesSave.split('\n')) {
    if (!line.startsWith(`-A ${ipChain} `)) continue;
    if (!new RegExp(`-p ${proto}\\b`).test(line) || !/-j (DROP|REJECT)\b/.test(line)) continue;
    const dport = /--dports? (\S+)/.exec(line);
    if (dport && mentions(dport[1]!))
      drops.push({ source: 'iptables', where: `chain ${ipChain}`, rule: line });
  }
  return drops;
}

/** Whether a dport expression (1229, {1229, 1230}, 1000-2000, 1000:2000) covers the port. */
function portMatches(expr: string, port: number): boolean {
  for (const m of expr.matchAll(/(\d+)\s*[-:]\s*(\d+)|(\d+)/g)) {
    if (m[3] !== undefined && Number(m[3]) === port) return true;
    if (m[1] !== undefined && Number(m[1]) <= port && port <= Number(m[2])) return true;
  }
  return false;
}

async function rulesets(): Promise<{ nft: string; ipt: string; read: string[] }> {
  const read: string[] = [];
  let nft = '';
  let ipt = '';
  try {
    nft = (await run('nft', ['list', 'ruleset'])).stdout;
    read.push('nftables');
  } catch {
    // not installed or not permitted
  }
  for (const cmd of ['iptables-save', 'ip6tables-save']) {
    try {
      const out = (await run(cmd, [])).stdout;
      // iptables-nft prints the same rules nft shows; count them once.
      if (!out.includes('Warning: iptables-legacy')) ipt += out;
      read.push(cmd);
    } catch {
      // not installed
    }
  }
  return { nft, ipt, read };
}

export async function checkFirewall(
  role: 'host' | 'guest',
  port: number,
  callbackPort: number,
): Promise<Finding> {
  const { nft, ipt, read } = await rulesets();
  if (read.length === 0) {
    return {
      check: 'firewall',
      status: 'skip',
      summary: 'no nft or iptables-save to read rules with',
    };
  }
  // The request is UDP from guest to host; the answer is a TCP connection from host to guest.
  const found =
    role === 'host'
      ? [
          ...findDrops(nft, ipt, 'udp', port, 'input').map((d) => ({
            ...d,
            what: `UDP to the listener port ${port}`,
          })),
          ...findDrops(nft, ipt, 'tcp', callbackPort, 'output').map((d) => ({
            ...d,
            what: `the TCP callback to guests' port ${callbackPort}`,
          })),
        ]
      : [
          ...findDrops(nft, ipt, 'udp', port, 'output').map((d) => ({
            ...d,
            what: `UDP requests to port ${port}`,
          })),
          ...findDrops(nft, ipt, 'tcp', callbackPort, 'input').map((d) => ({
            ...d,
            what: `the hypervisor's TCP callback to port ${callbackPort}`,
          })),
        ];
  if (found.length === 0) {
    return {
      check: 'firewall',
      status: 'ok',
      summary: `no rule drops fence traffic (read: ${read.join(', ')})`,
    };
  }
  return {
    check: 'firewall',
    status: 'fail',
    summary: found.map((d) => `${d.source} drops ${d.what} (${d.where}: ${d.rule})`).join('; '),
    fix:
      role === 'host'
        ? `accept UDP to port ${port} from the guests and TCP from this host to their port ${callbackPort}`
        : `accept UDP to port ${port} out and TCP from the hypervisor to port ${callbackPort} in`,
  };
}

// ---------------------------------------------------------------------------------------------
// Keys

export function checkKeyFile(file: string, label: string, peerFingerprint?: string): Finding {
  let key: Buffer;
  try {
    key = fs.readFileSync(file).subarray(0, 4096);
  } catch (err) {
    return {
      check: 'key',
      status: 'fail',
      summary: `${label} ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      fix: `copy the cluster's key file to ${file} (mode 0600), or create one with virtfence keygen ${file} and copy it to every guest and host`,
    };
  }
  if (key.length === 0) {
    return {
      check: 'key',
      status: 'fail',
      summary: `${label} ${file} is empty`,
      fix: `virtfence keygen ${file} --force, then copy it everywhere`,
    };
  }
  const fp = keyFingerprint(key);
  if (peerFingerprint !== undefined && peerFingerprint.toLowerCase() !== fp) {
    return {
      check: 'key',
      status: 'fail',
      summary: `${label} ${file} has fingerprint ${fp}, the other side ${peerFingerprint.toLowerCase()}: the keys differ, every request is dropped (bad-digest)`,
      fix: `copy one key file to both sides (never paste keys; compare fingerprints with virtfence doctor)`,
    };
  }
  return {
    check: 'key',
    status: 'ok',
    summary: `${label} ${file}: ${key.length} bytes, fingerprint ${fp}${peerFingerprint !== undefined ? ' (matches)' : ' (compare with the other side)'}`,
  };
}

// ---------------------------------------------------------------------------------------------
// The daemon: processes and the ports they listen on

export interface DaemonProcess {
  pid: number;
  cmdline: string;
  udp: number[];
  tcp: number[];
}

function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  let fds: string[] = [];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** Local ports of sockets (by inode) in /proc/net/{udp,udp6,tcp,tcp6}; TCP in LISTEN only. */
function portsOf(inodes: Set<string>, proto: 'udp' | 'tcp'): number[] {
  const ports = new Set<number>();
  for (const file of [`/proc/net/${proto}`, `/proc/net/${proto}6`]) {
    for (const line of readOr(file).split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      if (proto === 'tcp' && f[3] !== '0A') continue;
      if (inodes.has(f[9]!)) ports.add(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/** fence_virtd processes in this network namespace (a daemon in another one serves no one here). */
export function findDaemons(): DaemonProcess[] {
  const found: DaemonProcess[] = [];
  const ourNet = readLink('/proc/self/ns/net');
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    if (readLink(`/proc/${entry}/ns/net`) !== ourNet) continue;
    const cmdline = readOr(`/proc/${entry}/cmdline`).split('\0').filter(Boolean);
    // The program itself or its node launcher: argv[0] or argv[1] ends in fence_virtd.
    if (!cmdline.slice(0, 2).some((a) => /(^|\/)fence_virtd(\.distrib)?$/.test(a))) continue;
    const inodes = socketInodes(Number(entry));
    found.push({
      pid: Number(entry),
      cmdline: cmdline.join(' '),
      udp: portsOf(inodes, 'udp'),
      tcp: portsOf(inodes, 'tcp'),
    });
  }
  return found;
}

export function checkDaemon(
  expected: { udp: number[]; tcp: number[] },
  daemons = findDaemons(),
): Finding {
  if (daemons.length === 0) {
    return {
      check: 'daemon',
      status: 'fail',
      summary: 'fence_virtd is not running: no process answers requests',
      fix: 'systemctl start fence_virtd (journalctl -u fence_virtd says why it stopped)',
    };
  }
  const describe = (d: DaemonProcess): string =>
    `pid ${d.pid} (UDP ${d.udp.join(',') || 'none'}, TCP ${d.tcp.join(',') || 'none'})`;
  const serving = daemons.find(
    (d) =>
      expected.udp.every((p) => d.udp.includes(p)) && expected.tcp.every((p) => d.tcp.includes(p)),
  );
  if (serving)
    return { check: 'daemon', status: 'ok', summary: `fence_virtd ${describe(serving)}` };
  const want = [
    ...expected.udp.map((p) => `UDP ${p}`),
    ...expected.tcp.map((p) => `TCP ${p}`),
  ].join(', ');
  return {
    check: 'daemon',
    status: 'fail',
    summary: `fence_virtd runs but not on the configured ports (${want}): ${daemons.map(describe).join('; ')}`,
    fix: 'it was started with another configuration (or an old one): restart it with this file, and use the same port in the guests (fence_xvm -p)',
  };
}

// ---------------------------------------------------------------------------------------------
// The daemon's own counters (metrics endpoint)

export async function scrapeDrops(
  address: string,
  port: number,
): Promise<Map<string, number> | undefined> {
  try {
    const host = address.includes(':') ? `[${address}]` : address;
    const res = await fetch(`http://${host}:${port}/metrics`, {
      signal: AbortSignal.timeout(3000),
    });
    if (!res.ok) return undefined;
    const drops = new Map<string, number>();
    for (const line of (await res.text()).split('\n')) {
      const m = /^virtfence_dropped_total\{([^}]*)\} (\S+)$/.exec(line);
      if (!m) continue;
      const reason = /reason="([^"]*)"/.exec(m[1]!)?.[1] ?? '?';
      drops.set(reason, (drops.get(reason) ?? 0) + Number(m[2]));
    }
    return drops;
  } catch {
    return undefined;
  }
}

export function checkDrops(
  drops: Map<string, number> | undefined,
  fingerprint: string | undefined,
): Finding {
  if (!drops) {
    return {
      check: 'dropped-requests',
      status: 'skip',
      summary: 'no metrics endpoint to read the daemon’s drop counters from (set metrics_port)',
    };
  }
  const bad = drops.get('bad-digest') ?? 0;
  const weak = drops.get('hash-too-weak') ?? 0;
  if (bad > 0) {
    return {
      check: 'dropped-requests',
      status: 'fail',
      summary: `${bad} request(s) arrived signed with another key (bad-digest): a guest's key differs from this host's${fingerprint ? ` (fingerprint ${fingerprint})` : ''}`,
      fix: 'run virtfence doctor guest in the guests and compare the key fingerprints; copy the host key file to the guests',
    };
  }
  if (weak > 0) {
    return {
      check: 'dropped-requests',
      status: 'fail',
      summary: `${weak} request(s) used a weaker hash than the listener's minimum (hash-too-weak)`,
      fix: 'use fence_xvm -c sha256 (hash=sha256) in the guests, or lower the listener hash',
    };
  }
  const total = [...drops.values()].reduce((a, b) => a + b, 0);
  return {
    check: 'dropped-requests',
    status: 'ok',
    summary:
      total === 0 ? 'no request was dropped' : `${total} dropped, none for a key or hash mismatch`,
  };
}

function readLink(file: string): string | undefined {
  try {
    return fs.readlinkSync(file);
  } catch {
    return undefined;
  }
}

function readOr(file: string, fallback = ''): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

// ---------------------------------------------------------------------------------------------
// libvirt, the broker, clocks

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, expiry]).finally(() => clearTimeout(timer));
}

export async function checkLibvirt(uris: string[]): Promise<Finding[]> {
  if (uris.length === 0) {
    return [
      {
        check: 'libvirt',
        status: 'fail',
        summary: 'no libvirt URI configured (backends/libvirt/uri)',
        fix: 'set uri = "qemu:///system";',
      },
    ];
  }
  const findings: Finding[] = [];
  for (const uri of uris) {
    try {
      const { openHypervisor } = await import('../libvirt/native.js');
      const hv = await withTimeout(openHypervisor(uri), 5000, uri);
      try {
        const domains = await withTimeout(hv.listDomains(), 5000, uri);
        findings.push({
          check: 'libvirt',
          status: 'ok',
          summary: `${uri}: ${domains.length} domain(s)`,
        });
      } finally {
        await hv.close().catch(() => undefined);
      }
    } catch (err) {
      findings.push({
        check: 'libvirt',
        status: 'fail',
        summary: `${uri} unreachable: ${(err as Error).message}`,
        fix: 'start libvirtd (or virtqemud) and check the URI: virsh -c URI list',
      });
    }
  }
  return findings;
}

export interface BrokerCheckOptions {
  block: Record<string, string>;
  /** How long to listen for heartbeats (ms). */
  listenMs?: number;
  /** Clock offsets above this are reported (ms). */
  skewWarnMs?: number;
}

/** Connects as an observer: reachable? credentials accepted? then clock offsets from heartbeats. */
export async function checkBroker(options: BrokerCheckOptions): Promise<Finding[]> {
  const { parseAmqpConfigOrThrow, loadAmqpSecrets } = await import('../amqp/config.js');
  const { ClusterBus } = await import('../amqp/bus.js');
  const { resolveProfile } = await import('../amqp/profiles.js');
  let config;
  let secrets;
  try {
    config = parseAmqpConfigOrThrow(options.block, {}).config;
    secrets = await loadAmqpSecrets(config);
  } catch (err) {
    return [
      { check: 'broker', status: 'fail', summary: `amqp settings: ${(err as Error).message}` },
    ];
  }
  const bus = new ClusterBus({
    urls: config.urls,
    hostId: `virtfence-doctor.${process.pid}`,
    cluster: config.cluster,
    key: secrets.key,
    profile: resolveProfile(config.profile),
    ...(config.username !== undefined ? { username: config.username } : {}),
    ...(secrets.password !== undefined ? { password: secrets.password } : {}),
    tls: config.tls,
    ...(secrets.ca !== undefined ? { ca: secrets.ca } : {}),
    maxReconnectDelayMs: 500,
    queues: { request: false, reply: false },
  });
  const offsets = new Map<string, number>();
  bus.onMessage((d) => {
    if (d.message.type === 'heartbeat' || d.message.type === 'announce')
      offsets.set(d.message.from, d.message.ts - Date.now());
  });
  const urls = config.urls.map((u) => u.replace(/\/\/[^@/]*@/, '//')).join(', ');
  try {
    // One failed attempt is a diagnosis: do not wait through the bus's retries.
    let poll: NodeJS.Timeout | undefined;
    const failedOnce = new Promise<never>((_, reject) => {
      poll = setInterval(() => {
        const { connected, lastError } = bus.stats();
        if (!connected && lastError !== undefined) reject(new Error(lastError));
      }, 50);
    });
    await Promise.race([bus.start({ timeoutMs: 5000 }), failedOnce]).finally(() =>
      clearInterval(poll),
    );
  } catch (err) {
    const why = bus.stats().lastError ?? (err as Error).message;
    await bus.stop().catch(() => undefined);
    const refused =
      /unauthori[sz]ed|access.refused|authenticat|sasl|PLAIN login refused|credentials/i.test(why);
    return [
      refused
        ? {
            check: 'broker',
            status: 'fail',
            summary: `${urls} refused the credentials of user ${config.username ?? '(none)'}: ${why}`,
            fix: 'check username and password_file against the broker’s users (rabbitmqctl authenticate_user USER PASSWORD)',
          }
        : {
            check: 'broker',
            status: 'fail',
            summary: `broker unreachable: ${urls} (${why})`,
            fix: 'start the broker or fix url; check that port 5672 (5671 for TLS) is open between the hosts',
          },
    ];
  }
  const findings: Finding[] = [
    {
      check: 'broker',
      status: 'ok',
      summary: `connected to ${bus.stats().url ?? urls} as an observer`,
    },
  ];
  await new Promise((resolve) =>
    setTimeout(resolve, options.listenMs ?? 2 * config.heartbeatInterval + 500),
  );
  const stats = bus.stats();
  await bus.stop().catch(() => undefined);
  const warnMs = options.skewWarnMs ?? 2000;
  const outOfWindow = stats.verify['out-of-window'];
  const badSig = stats.verify['bad-signature'];
  if (badSig > 0) {
    findings.push({
      check: 'cluster-key',
      status: 'fail',
      summary: `${badSig} broker message(s) failed the signature check: some host uses another cluster key`,
      fix: 'virtfence key check names the host; copy the cluster key file to it',
    });
  }
  const skewed = [...offsets].filter(([, ms]) => Math.abs(ms) > warnMs);
  if (outOfWindow > 0) {
    findings.push({
      check: 'clock',
      status: 'fail',
      summary: `${outOfWindow} message(s) were rejected as outside the ±30 s window: a host's clock is far off`,
      fix: 'run NTP (chrony or systemd-timesyncd) on every host',
    });
  }
  if (offsets.size === 0 && outOfWindow === 0) {
    findings.push({
      check: 'clock',
      status: 'warn',
      summary: 'no heartbeat heard: no daemon is connected to this cluster',
    });
  } else if (skewed.length > 0) {
    findings.push({
      check: 'clock',
      status: 'fail',
      summary: `clock skew from heartbeats: ${skewed.map(([h, ms]) => `${h} ${ms > 0 ? '+' : ''}${(ms / 1000).toFixed(1)} s`).join(', ')} (messages more than 30 s off are dropped, timestamps and deadlines go wrong before that)`,
      fix: 'run NTP (chrony or systemd-timesyncd) on every host',
    });
  } else if (offsets.size > 0) {
    findings.push({
      check: 'clock',
      status: 'ok',
      summary: `clocks agree within ${warnMs / 1000} s: ${[...offsets].map(([h, ms]) => `${h} ${(ms / 1000).toFixed(2)} s`).join(', ')}`,
    });
  }
  return findings;
}

// ---------------------------------------------------------------------------------------------
// The guest's end-to-end probe: our fence_xvm, run as a program, with a VM name no host runs

const AGENT = fileURLToPath(new URL('../../bin/fence_xvm', import.meta.url));

export interface ProbeOptions {
  group: string;
  port: number;
  keyFile: string;
  hash: string;
  auth: string;
  timeoutSec: number;
}

export async function probe(options: ProbeOptions): Promise<Finding> {
  const args = [
    AGENT,
    '-a',
    options.group,
    '-p',
    String(options.port),
    '-k',
    options.keyFile,
    '-c',
    options.hash,
    '-C',
    options.auth,
    '-t',
    String(options.timeoutSec),
    '-r',
    '10',
    '-o',
    'status',
    '-H',
    'virtfence-doctor-probe',
  ];
  const started = Date.now();
  let stdout = '';
  let code: number;
  try {
    stdout = (await run(process.execPath, args, { timeout: (options.timeoutSec + 10) * 1000 }))
      .stdout;
    code = 0;
  } catch (err) {
    const e = err as { stdout?: string; code?: number | string };
    stdout = e.stdout ?? '';
    code = typeof e.code === 'number' ? e.code : -1;
  }
  const ms = Date.now() - started;
  const lines = stdout.split('\n').filter(Boolean);
  const timedOut = lines.some((l) => l.startsWith('Timed out'));
  // Any answer (ON 0, OFF 2, FAIL 1 for a routed unknown VM, 3 denied) means a daemon heard us.
  if (!timedOut && [0, 1, 2, 3].includes(code)) {
    return {
      check: 'probe',
      status: 'ok',
      summary: `a fence_virtd answered a status request on ${options.group}:${options.port} in ${ms} ms (${lines.join('; ') || `exit ${code}`})`,
    };
  }
  return {
    check: 'probe',
    status: 'fail',
    summary: `no fence_virtd answered on ${options.group}:${options.port} within ${options.timeoutSec} s (${lines.join('; ') || `exit ${code}`})`,
    fix: 'the failed checks above say why; if none failed: the daemon is not running, listens on another port or address, or has another key — run virtfence doctor host on the hypervisor and compare key fingerprints',
  };
}
