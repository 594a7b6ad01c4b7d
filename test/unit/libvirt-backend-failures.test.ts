/**
 * LibvirtBackend failure rows of docs/protocol.md §14.1 that the real test driver never produces (destroy
 * refused, a domain that will not go away, restart refused), driven by a scripted hypervisor.
 */
import type { RequestContext } from '../../src/backends/backend.js';
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

describe('LibvirtBackend failure rows', () => {
  it('a refused destroy fails off and reboot with destroy-failed', async () => {
    const hv = runningVm();
    hv.failDestroy = refused();
    const backend = await backendOn(hv);
    expect(await backend.fence('off', 'vm', ctx())).toEqual({
      code: Response.FAIL,
      reason: 'destroy-failed',
    });
    expect(await backend.fence('reboot', 'vm', ctx())).toEqual({
      code: Response.FAIL,
      reason: 'destroy-failed',
    });
    await backend.stop();
  });

  it('a domain still running after the wait fails reboot with still-running', async () => {
    const hv = runningVm();
    hv.destroyLeavesRunning = true;
    const backend = await backendOn(hv);
    expect(await backend.fence('reboot', VM, ctx())).toEqual({
      code: Response.FAIL,
      reason: 'still-running',
    });
    await backend.stop();
  });

  it('a refused start fails on, but reboot still answers 0 ("on is not a failure")', async () => {
    const hv = runningVm();
    hv.failCreate = refused();
    const backend = await backendOn(hv);
    expect(await backend.fence('reboot', 'vm', ctx())).toEqual({
      code: Response.SUCCESS,
      reason: 'start-failed',
    });
    expect(hv.domainsNow.get(VM)?.state).toBe(S.SHUTOFF);
    expect(await backend.fence('on', 'vm', ctx())).toEqual({
      code: Response.FAIL,
      reason: 'start-failed',
    });
    await backend.stop();
  });

  it('reboot falls back to starting the definition when create-from-XML fails', async () => {
    const hv = runningVm(); // its createXml always rejects
    const backend = await backendOn(hv);
    expect(await backend.fence('reboot', 'vm', ctx())).toEqual({
      code: Response.SUCCESS,
      reason: 'ok',
    });
    expect(hv.domainsNow.get(VM)?.state).toBe(S.RUNNING);
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
    expect(await backend.fence('status', 'other', ctx())).toEqual({
      code: Response.FAIL,
      reason: 'libvirt-unavailable',
    });
    expect(await backend.fence('off', 'missing', ctx())).toEqual({
      code: Response.FAIL,
      reason: 'libvirt-unavailable',
    });
    expect(backend.domains().map((d) => d.name)).toEqual(['vm']);
    await backend.stop();
  });
});
