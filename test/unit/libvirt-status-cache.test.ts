/**
 * Status takes only a running VM from the event-driven cache; OFF or unknown is always confirmed
 * by libvirt. A scripted hypervisor changes states without events to expose which path answered.
 */
import type { RequestContext } from '../../src/backends/backend.js';
import { LibvirtBackend } from '../../src/backends/libvirt/backend.js';
import { DomainState as S, Response } from '../../src/protocol/constants.js';
import { silentLogger } from '../../src/util/logger.js';
import { ScriptedHypervisor } from '../helpers/libvirtd.js';

const VM = '77777777-0000-4000-8000-000000000001';
const ctx = (): RequestContext => ({
  id: 't',
  listener: 'test',
  source: undefined,
  seqno: 1,
  deadline: Date.now() + 5000,
});

async function backendOver(hv: ScriptedHypervisor): Promise<LibvirtBackend> {
  const backend = new LibvirtBackend({ uris: ['scripted:///0'] }, silentLogger, {
    open: async () => hv,
    backoffMinMs: 60_000,
  });
  await backend.start();
  return backend;
}

describe('LibvirtBackend status and its cache', () => {
  it('answers ON for a cached running VM (a stale ON is the safe direction)', async () => {
    const hv = new ScriptedHypervisor();
    hv.set(VM, 'vm', S.RUNNING);
    const backend = await backendOver(hv);
    hv.set(VM, 'vm', S.SHUTOFF); // no event: only libvirt knows
    expect((await backend.fence('status', 'vm', ctx())).code).toBe(Response.SUCCESS);
    await backend.stop();
  });

  it('confirms a cached OFF with libvirt', async () => {
    const hv = new ScriptedHypervisor();
    hv.set(VM, 'vm', S.SHUTOFF);
    const backend = await backendOver(hv);
    hv.set(VM, 'vm', S.RUNNING); // no event
    expect((await backend.fence('status', VM, ctx())).code).toBe(Response.SUCCESS);
    await backend.stop();
  });

  it('confirms an uncached VM with libvirt before answering OFF', async () => {
    const hv = new ScriptedHypervisor();
    const backend = await backendOver(hv);
    expect(await backend.fence('status', 'vm', ctx())).toEqual({
      code: Response.OFF,
      reason: 'not-found',
    });
    hv.set(VM, 'vm', S.PAUSED); // appears without an event
    expect((await backend.fence('status', 'vm', ctx())).code).toBe(Response.SUCCESS);
    await backend.stop();
  });
});
