/**
 * LibvirtBackend failure rows of docs/protocol.md §14.1 that the real test driver never produces (destroy
 * refused, a domain that will not go away, restart refused), driven by a scripted hypervisor.
 */
import type { FenceAction, RequestContext } from '../../src/backends/backend.js';
import { LibvirtBackend } from '../../src/backends/libvirt/backend.js';
import { LibvirtError, type Hypervisor } from '../../src/libvirt/hypervisor.js';
import { DomainState as S, Response } from '../../src/protocol/constants.js';
import { silentLogger } from '../../src/util/logger.js';
import { ScriptedHypervisor } from '../helpers/libvirtd.js';

const VM = '66666666-0000-4000-8000-000000000001';
const refused = (): LibvirtError => new LibvirtError('operation refused', 1, 10);

function ctx(): RequestContext {
  return { id: 't', listener: 'test', source: undefined, seqno: 1, deadline: Date.now() + 5000 };
}

async function backendOn(...hvs: ScriptedHypervisor[]): Promise<LibvirtBackend> {
  const byUri = new Map(hvs.map((hv, i) => [`scripted:///${i}`, hv]));
  const backend = new LibvirtBackend({ uris: [...byUri.keys()] }, silentLogger, {
    open: async (uri) => byUri.get(uri) as Hypervisor,
    rebootWaitMs: 50,
    rebootPollMs: 10,
    backoffMinMs: 60_000,
  });
  await backend.start();
  return backend;
}

function runningVm(): ScriptedHypervisor {
  const hv = new ScriptedHypervisor();
  hv.set(VM, 'vm', S.RUNNING);
  return hv;
}

/** One fence call and the outcome it must give: action, target, code, reason. */
type Step = [FenceAction, string, number, string];

async function expectSteps(backend: LibvirtBackend, steps: readonly Step[]): Promise<void> {
  for (const [action, target, code, reason] of steps) {
    const outcome = await backend.fence(action, target, ctx());
    expect({ action, target, outcome }).toEqual({ action, target, outcome: { code, reason } });
  }
}

describe('LibvirtBackend failure rows', () => {
  it.each<[string, (hv: ScriptedHypervisor) => void, Step[], number]>([
    [
      'a refused destroy fails off and reboot with destroy-failed',
      (hv) => (hv.failDestroy = refused()),
      [
        ['off', 'vm', Response.FAIL, 'destroy-failed'],
        ['reboot', 'vm', Response.FAIL, 'destroy-failed'],
      ],
      S.RUNNING,
    ],
    [
      'a domain still running after the wait fails reboot with still-running',
      (hv) => (hv.destroyLeavesRunning = true),
      [['reboot', VM, Response.FAIL, 'still-running']],
      S.RUNNING,
    ],
    [
      'reboot falls back to starting the definition when create-from-XML fails',
      () => undefined, // a scripted hypervisor's createXml always rejects
      [['reboot', 'vm', Response.SUCCESS, 'ok']],
      S.RUNNING,
    ],
  ])('%s', async (_title, setup, steps, stateAfter) => {
    const hv = runningVm();
    setup(hv);
    const backend = await backendOn(hv);
    await expectSteps(backend, steps);
    expect(hv.domainsNow.get(VM)?.state).toBe(stateAfter);
    await backend.stop();
  });

  it('a refused start fails on, but reboot still answers 0 ("on is not a failure")', async () => {
    const hv = runningVm();
    hv.failCreate = refused();
    const backend = await backendOn(hv);
    await expectSteps(backend, [['reboot', 'vm', Response.SUCCESS, 'start-failed']]);
    expect(hv.domainsNow.get(VM)?.state).toBe(S.SHUTOFF);
    await expectSteps(backend, [['on', 'vm', Response.FAIL, 'start-failed']]);
    await backend.stop();
  });

  it('searches URIs in order; a lost first URI still lets the second answer for its VMs', async () => {
    const first = new ScriptedHypervisor();
    first.set('66666666-0000-4000-8000-000000000002', 'other', S.RUNNING);
    const second = runningVm();
    const backend = await backendOn(first, second);
    expect((await backend.fence('status', 'vm', ctx())).code).toBe(Response.SUCCESS);
    first.loseConnection();
    expect((await backend.fence('status', 'vm', ctx())).code).toBe(Response.SUCCESS);
    await expectSteps(backend, [
      ['status', 'other', Response.FAIL, 'libvirt-unavailable'],
      ['off', 'missing', Response.FAIL, 'libvirt-unavailable'],
    ]);
    expect(backend.domains().map((d) => d.name)).toEqual(['vm']);
    await backend.stop();
  });
});
