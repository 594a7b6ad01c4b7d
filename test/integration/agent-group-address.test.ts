/**
 * fence_xvm with a multicast_address that is not a multicast group of its family: C fails to
 * join the group on its transmit socket, names the problem once per source and round, sends
 * nothing and times out. Ours must say the same, send nothing (no unicast copy, no DNS lookup),
 * and exit the same way. Compared side by side with the real /usr/sbin/fence_xvm.
 */
import dgram from 'node:dgram';
import path from 'node:path';
import { C_XVM, ROOT, runAgent, tempDir, type TempDir } from '../helpers/daemon.js';

const OUR_XVM = path.join(ROOT, 'bin/fence_xvm');
const PORT = 12431;

let dir: TempDir;
let keyFile: string;
beforeAll(() => {
  dir = tempDir('virtfence-group-');
  keyFile = dir.file('key', 'group-address-test-key');
});
afterAll(() => dir.remove());

const run = (binary: string, address: string, port = PORT) =>
  runAgent(
    binary,
    [
      '-a',
      address,
      '-p',
      String(port),
      '-k',
      keyFile,
      '-t',
      '2',
      '-r',
      '10',
      '-o',
      'status',
      '-H',
      'vm1',
    ],
    { timeoutMs: 15_000, stdin: '' },
  ).then((r) => ({ ...r, stdout: r.stdout, lines: r.stdout.split('\n') }));

describe('fence_xvm: a group address that is not multicast, ours beside C', () => {
  const addresses = ['127.0.0.1', '10.0.0.9', '999.1.1.1', '::1', 'fd00:7f::1', 'abc:'];

  it('prints C\'s "Failed to add multicast membership" lines, times out, and sends nothing', async () => {
    // A unicast receiver on the address the agents are pointed at: it must stay silent.
    const received: string[] = [];
    // Each address gets its own port (the agents' TCP callback listeners run side by side).
    const portOf = (a: string): number => PORT + addresses.indexOf(a);
    const sinks = await Promise.all(
      ['127.0.0.1', '::1'].map(
        (host) =>
          new Promise<dgram.Socket>((resolve) => {
            const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
            s.on('message', (_m, rinfo) => received.push(`${host} from ${rinfo.address}`));
            s.bind(portOf(host), host, () => resolve(s));
          }),
      ),
    );
    try {
      const runs = await Promise.all(
        addresses.map(async (a) => ({
          a,
          c: await run(C_XVM, a, portOf(a)),
          ours: await run(OUR_XVM, a, portOf(a)),
        })),
      );
      for (const { a, c, ours } of runs) {
        expect({ a, code: ours.code, stdout: ours.stdout }).toEqual({
          a,
          code: c.code,
          stdout: c.stdout,
        });
        expect(c.stdout).toContain(
          `Failed to add multicast membership to transmit socket ${a}: Invalid argument\n`,
        );
        expect(c.stdout).toContain('Timed out waiting for response\n');
      }
      expect(received).toEqual([]);
    } finally {
      sinks.forEach((s) => s.close());
    }
  });

  it('an empty address: "Could not determine address family", as C', async () => {
    const [c, ours] = [await run(C_XVM, ''), await run(OUR_XVM, '')];
    expect(ours.code).toBe(c.code);
    expect(ours.lines[0]).toBe('Could not determine address family');
    expect(c.lines[0]).toBe('Could not determine address family');
  });
});
