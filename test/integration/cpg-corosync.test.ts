/**
 * backend = "cpg" on real corosync: three hosts in network + mount namespaces (knet over UDP on
 * a bridge), a private libvirtd each, our fence_virtd on each with the same C-style
 * fence_virt.conf (listener multicast, backend cpg, uri, name_mode), and the real fence_xvm
 * from a guest namespace. All actions on a healthy cluster, then the owner's daemon killed,
 * the owner host leaving the membership, and a partition: zero false successes, zero false OFF
 * (every answer is judged against the VM's real state on its libvirtd).
 */
import { jest } from '@jest/globals';
import { ROOT } from '../../tools/harness/processes.js';
import { corosyncAvailable } from '../../tools/harness/corosync.js';
import { CpgComparison, type CpgRunResult } from '../../tools/harness/cpg-scenarios.js';

jest.setTimeout(150_000);

const describeCorosync = corosyncAvailable() ? describe : describe.skip;

describeCorosync('cpg backend on a three-host corosync cluster', () => {
  const run = new CpgComparison({
    kind: 'ours',
    prefix: 'vfcpt',
    subnet: '10.236.0',
    port: 12690,
    agentTimeoutSec: 4,
    log: (line) => lines.push(line),
  });
  const lines: string[] = [];
  let result: CpgRunResult;

  beforeAll(async () => {
    await run.start();
    result = await run.run();
  });

  afterAll(async () => {
    await run.stop();
  });

  test('healthy cluster: list is cluster-wide, every action is executed by the owner', () => {
    expect({ listed: result.listed, log: lines }).toMatchObject({ listed: result.vmsInCluster });
    const wrong = result.answers.filter((a) => a.phase === 'healthy' && a.verdict !== 'ok');
    expect(wrong).toEqual([]);
    expect(result.startupHangs).toBe(0);
  });

  test('no false success and no false OFF in any failure', () => {
    const bad = result.answers.filter(
      (a) => a.verdict === 'false-success' || a.verdict === 'false-off' || a.verdict === 'wrong',
    );
    expect(bad).toEqual([]);
    expect(result.falseSuccesses).toBe(0);
    expect(result.falseOff).toBe(0);
  });

  test('owner daemon killed, owner partitioned: every request fails (nothing could act)', () => {
    for (const phase of ['daemon-killed', 'partition'] as const) {
      const answers = result.answers.filter((a) => a.phase === phase);
      expect(answers.map((a) => [a.action, a.verdict])).toEqual([
        ['status', 'correct-fail'],
        ['off', 'correct-fail'],
        ['reboot', 'correct-fail'],
      ]);
    }
  });

  test('the hosts that stayed saw the owner leave the membership and failed at once', () => {
    const h1 = run.daemon('h1');
    expect(h1.logs.some((e) => e.event === 'host-left-membership' && e.peer === 'h2')).toBe(true);
    const killed = result.answers.filter((a) => a.phase === 'daemon-killed');
    // Answered from membership, not after waiting out the agent's timeout.
    for (const a of killed) expect(a.ms).toBeLessThan(2000);
    // fence_xvm takes the first callback: h1 or h2 (both stayed) routed each request.
    const routes = ['h1', 'h2'].flatMap((h) =>
      run.daemon(h).logs.filter((e) => e.event === 'route' && e.target === 'cpg-c1'),
    );
    expect(routes.some((e) => e.route === 'owner-dead')).toBe(true);
  });

  test('a member that claims another host id is dropped, never believed', async () => {
    // A process on h2, with the real cluster key, signs a message as h3 while h3's daemon is a
    // member: the signature verifies, the CPG address does not match the one h3 is bound to.
    const script = `
      import { readFileSync } from 'node:fs';
      import { loadCpgAddon } from '${ROOT}/dist/backends/cpg/native.js';
      import { MessageFactory, encodeMessage } from '${ROOT}/dist/messages/sign.js';
      import { encodeFrame } from '${ROOT}/dist/backends/cpg/bus.js';
      const key = readFileSync('/etc/corosync/authkey').subarray(0, 4096);
      const forged = new MessageFactory({ cluster: 'virtfence', hostId: 'h3', key });
      const group = await loadCpgAddon().open('virtfence', () => undefined);
      await new Promise((r) => setTimeout(r, 300));
      await group.mcast(encodeFrame('*', encodeMessage(forged.create('resync-request', { reason: 'forged' }))));
      await new Promise((r) => setTimeout(r, 300));
      await group.close();
    `;
    const child = run.cluster.spawn('h2', process.execPath, ['--input-type=module', '-e', script]);
    let err = '';
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((r) => child.once('close', r));
    expect({ code, err }).toEqual({ code: 0, err: '' });
    await run
      .daemon('h3')
      .waitForLog((e) => e.event === 'message-dropped' && e.reason === 'identity-conflict', 5000);
  });
});
