/**
 * The leak guard of scripts/isolated.sh, proven to count. The real fence_xvm sends a copy of each
 * request out of every interface that has an address; scripts/guard.nft counts fence multicast
 * leaving a namespace through anything but loopback. Here the same rules are loaded into scratch
 * namespaces: one with a veth "outside" (the copies fence_xvm sends there must be counted, IPv4
 * and IPv6) and one with loopback only (nothing counted). The veth's peer sits in a third, empty
 * namespace, so the counted packets go nowhere.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const GUARD_RULES = readFileSync(join(ROOT, 'scripts', 'guard.nft'), 'utf8');
const NS = { outside: 'vfguard-out', sink: 'vfguard-sink', loopbackOnly: 'vfguard-lo' };

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

function inNs(ns: string, cmd: string, args: string[], input?: string): string {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], input);
}

/** Packets counted by the guard in a namespace, per family. */
function leaked(ns: string): { v4: number; v6: number } {
  const listing = JSON.parse(inNs(ns, 'nft', ['-j', 'list', 'counters'])) as {
    nftables: { counter?: { name: string; packets: number } }[];
  };
  const count = (name: string) =>
    listing.nftables.find((entry) => entry.counter?.name === name)?.counter?.packets ?? -1;
  return { v4: count('leaked_v4'), v6: count('leaked_v6') };
}

/** The real fence_xvm, one short round, no key (the packet is what matters, not an answer). */
function fenceXvm(ns: string, family: 'ipv4' | 'ipv6'): void {
  spawnSync(
    'ip',
    ['netns', 'exec', ns, '/usr/sbin/fence_xvm', '-i', family, '-c', 'none', '-C', 'none'].concat([
      '-o',
      'status',
      '-H',
      'guard-probe',
      '-t',
      '1',
      '-r',
      '10',
      '-p',
      '12999',
    ]),
    { stdio: 'ignore', timeout: 10_000 },
  );
}

function teardown(): void {
  for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

beforeAll(() => {
  teardown();
  for (const ns of Object.values(NS)) {
    run('ip', ['netns', 'add', ns]);
    inNs(ns, 'ip', ['link', 'set', 'lo', 'up']);
  }
  run('ip', ['-n', NS.outside, 'link', 'add', 'out0', 'type', 'veth', 'peer', 'name', 'sink0']);
  run('ip', ['-n', NS.outside, 'link', 'set', 'sink0', 'netns', NS.sink]);
  run('ip', ['-n', NS.sink, 'link', 'set', 'sink0', 'up']);
  run('ip', ['-n', NS.outside, 'addr', 'add', '10.239.0.1/24', 'dev', 'out0']);
  run('ip', ['-n', NS.outside, '-6', 'addr', 'add', 'fd00:7e::1/64', 'dev', 'out0', 'nodad']);
  run('ip', ['-n', NS.outside, 'link', 'set', 'out0', 'up']);
  run('ip', ['-n', NS.outside, 'route', 'add', '224.0.0.0/4', 'dev', 'out0']);
  run('ip', ['-n', NS.loopbackOnly, 'route', 'add', '224.0.0.0/4', 'dev', 'lo']);
  for (const ns of [NS.outside, NS.loopbackOnly]) inNs(ns, 'nft', ['-f', '-'], GUARD_RULES);
});

afterAll(teardown);

it('this suite runs in a namespace with no interface but those isolated.sh made', () => {
  expect(Object.keys(networkInterfaces())).toContain('lo');
  for (const name of Object.keys(networkInterfaces())) {
    expect(['lo', 'vfiso0', 'vfiso1']).toContain(name);
  }
  expect(process.env.VIRTFENCE_ISOLATED).toBe('1');
});

it('counts the copies the real fence_xvm sends out of a non-loopback interface (IPv4, IPv6)', () => {
  expect(leaked(NS.outside)).toEqual({ v4: 0, v6: 0 });
  fenceXvm(NS.outside, 'ipv4');
  fenceXvm(NS.outside, 'ipv6');
  const counted = leaked(NS.outside);
  expect(counted.v4).toBeGreaterThan(0);
  expect(counted.v6).toBeGreaterThan(0);
});

it('counts nothing where loopback is the only interface', () => {
  fenceXvm(NS.loopbackOnly, 'ipv4');
  expect(leaked(NS.loopbackOnly)).toEqual({ v4: 0, v6: 0 });
});
