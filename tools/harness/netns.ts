/** `ip` for the namespaces, bridges and veths that tests and harnesses create (root needed). */
import { execFileSync, spawn } from 'node:child_process';

/** Runs `ip ARGS…`; throws with ip's stderr on failure. */
export function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Like `ip`, for teardown: what is already gone is not an error. */
export function tryIp(...args: string[]): void {
  try {
    ip(...args);
  } catch {
    /* already gone */
  }
}

/**
 * Hosts on one bridge: `bridge` in this namespace at `<subnet>.1/24`, and per name in
 * `namespaces` a network namespace joined to it by a veth (`<bridge><i>` outside, `eth0` inside
 * at `<subnet>.<11 + i>/24`), loopback up and multicast routed out of eth0. Whatever an earlier
 * run left of the same names is removed first. teardown() removes it all.
 */
export function bridgedNamespaces(
  bridge: string,
  subnet: string,
  namespaces: readonly string[],
): { teardown(): void } {
  const teardown = (): void => {
    for (const [i, ns] of namespaces.entries()) {
      tryIp('link', 'del', `${bridge}${i}`);
      tryIp('netns', 'del', ns);
    }
    tryIp('link', 'del', bridge);
  };
  teardown();
  ip('link', 'add', bridge, 'type', 'bridge', 'mcast_snooping', '0');
  ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
  ip('link', 'set', bridge, 'up');
  for (const [i, ns] of namespaces.entries()) {
    const outer = `${bridge}${i}`;
    ip('netns', 'add', ns);
    ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('link', 'set', outer, 'master', bridge);
    ip('link', 'set', outer, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'addr', 'add', `${subnet}.${11 + i}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0');
  }
  return { teardown };
}

/** A TCP relay by pid (socat): `address:port` here forwards to 127.0.0.1:`targetPort`. */
export function tcpRelay(
  address: string,
  port: number,
  targetPort: number,
): { stop(): Promise<void> } {
  const relay = spawn(
    'socat',
    [`TCP-LISTEN:${port},bind=${address},fork,reuseaddr`, `TCP:127.0.0.1:${targetPort}`],
    { stdio: 'ignore' },
  );
  return {
    async stop() {
      if (relay.pid === undefined || relay.exitCode !== null || relay.signalCode !== null) return;
      const exited = new Promise((resolve) => relay.once('exit', resolve));
      process.kill(relay.pid, 'SIGTERM');
      await exited;
    },
  };
}
