/**
 * The vsock listener and `fence_virt -S` through the vsock addon, as far as this machine
 * allows: AF_VSOCK sockets can be created and bound (local CID 3) but there is no transport, so
 * no vsock connection can complete here. What runs:
 * - the addon: local CID, bind/listen, EADDRINUSE, connect failing with the kernel's errno;
 * - the shared listener compliance suite, each connection a unix socketpair handed to the
 *   listener exactly as the addon hands an accepted vsock connection (fd + peer CID);
 * - our agent's vsock path over a socketpair into the listener, with a dispatcher whose
 *   `groups` map lists CIDs: the peer CID is the permission source.
 * The end-to-end path (a guest's fence_virt -S over virtio-vsock) is not run here.
 */
import { once } from 'node:events';
import { Socket } from 'node:net';
import { createVsockListener, vsockSource } from '../../src/listeners/vsock/index.js';
import { loadVsockAddon, socketFromFd } from '../../src/listeners/vsock/native.js';
import type { VsockListenerConfig } from '../../src/config/types.js';
import type { Backend } from '../../src/backends/backend.js';
import { createDispatcher } from '../../src/daemon/dispatcher.js';
import { PermissionMap } from '../../src/routing/permissions.js';
import { fenceByVsock } from '../../src/agents/vsock.js';
import { ByteReader } from '../../src/net/byte-reader.js';
import { authenticateServer } from '../../src/net/challenge.js';
import { HashType, Op } from '../../src/protocol/constants.js';
import { encodeFenceRequest } from '../../src/protocol/fence-request.js';
import {
  decodeHostEntry,
  HOST_ENTRY_SIZE,
  isTerminator,
  type HostEntry,
} from '../../src/protocol/hostlist.js';
import { silentLogger } from '../../src/util/logger.js';
import { runListenerCompliance, type SendResult } from '../helpers/listener-compliance.js';

const KEY = Buffer.from('vsock-key-0123456789');
const OTHER_KEY = Buffer.from('another-key-4567');
// vsock ports are machine-wide (not per network namespace): ports of this file only.
const PORT_COMPLIANCE = 52401;
const PORT_AGENT = 52402;
const PORT_ADDON = 52403;
const CIDS = [42, 43];

const addon = loadVsockAddon();

function vsockConfig(port: number): VsockListenerConfig {
  return { keyFile: '/unused', hash: HashType.sha256, auth: HashType.sha256, port };
}

const deps = {
  logger: silentLogger,
  key: KEY,
  openHypervisor: () => Promise.reject(new Error('the vsock listener does not use libvirt')),
};

/** A connection as the addon delivers it: our end of a unix socketpair, plus the peer's. */
function pair(): { server: Socket; client: Socket } {
  const [a, b] = addon.socketpair();
  return { server: socketFromFd(a), client: socketFromFd(b) };
}

async function clientRequest(client: Socket, bytes: Buffer, timeoutMs = 5000): Promise<SendResult> {
  const reader = new ByteReader(client);
  client.on('error', () => undefined);
  try {
    client.write(bytes);
    await authenticateServer(client, reader, HashType.sha256, KEY, timeoutMs);
    const code = (await reader.readExact(1, timeoutMs))[0];
    if (code !== 0xfd) return { code };
    const hostlist: HostEntry[] = [];
    for (;;) {
      const entry = decodeHostEntry(await reader.readExact(HOST_ENTRY_SIZE, timeoutMs));
      if (isTerminator(entry)) break;
      hostlist.push(entry);
    }
    return { code, hostlist, hostlistCode: (await reader.readExact(1, timeoutMs))[0] };
  } catch {
    return { code: undefined };
  } finally {
    client.destroy();
  }
}

runListenerCompliance({
  name: 'vsock',
  async create() {
    let listener: ReturnType<typeof createVsockListener> | undefined;
    return {
      malformed: ['short', 'garbage', 'wrong-key'],
      duplicates: 'suppressed',
      expectedSource: (client) => vsockSource(CIDS[client ?? 0] ?? 42),
      async start(handler) {
        listener = createVsockListener(vsockConfig(PORT_COMPLIANCE), deps);
        await listener.start(handler);
        return listener;
      },
      async send(op, target, o = {}) {
        const { server, client } = pair();
        listener?.serve(server, CIDS[o.client ?? 0] ?? 42);
        const packet = encodeFenceRequest(
          { request: op, hashtype: HashType.sha256, domain: target, seqno: o.seqno ?? 1 },
          KEY,
        );
        return clientRequest(client, packet, o.timeoutMs);
      },
      async sendMalformed(kind, o = {}) {
        const seqno = o.seqno ?? 1;
        const request = { request: 4, hashtype: HashType.sha256, domain: 'bad', seqno };
        const bytes =
          kind === 'short'
            ? encodeFenceRequest(request, KEY).subarray(0, 100)
            : kind === 'garbage'
              ? Buffer.alloc(176, 0x41)
              : encodeFenceRequest(request, OTHER_KEY);
        const { server, client } = pair();
        client.on('error', () => undefined);
        listener?.serve(server, 42);
        client.end(bytes);
        await once(client, 'close'); // closed without an answer
      },
      async assertReleased() {
        // The port is free again: binding it succeeds.
        const again = addon.listen(PORT_COMPLIANCE, 1, () => undefined);
        again.close();
      },
      async dispose() {},
    };
  },
});

describe('vsock addon on this machine', () => {
  test('local CID from /dev/vsock, or a clear errno when the device is missing', () => {
    try {
      const cid = addon.localCid();
      expect(cid).toBeGreaterThanOrEqual(2);
    } catch (err) {
      expect((err as { code?: string }).code).toMatch(/^E[A-Z]+$/);
    }
  });

  test('bind and listen on VMADDR_CID_ANY; a second bind is EADDRINUSE; close frees it', () => {
    const first = addon.listen(PORT_ADDON, 1, () => undefined);
    let failure: { code?: string; syscall?: string } = {};
    try {
      addon.listen(PORT_ADDON, 1, () => undefined).close();
    } catch (err) {
      failure = err as { code?: string; syscall?: string };
    }
    expect(failure).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind/listen(AF_VSOCK)' });
    first.close();
    first.close(); // idempotent
    addon.listen(PORT_ADDON, 1, () => undefined).close();
  });

  test('a listener on a port in use refuses to start and names the port', async () => {
    const holder = addon.listen(PORT_ADDON, 1, () => undefined);
    try {
      const listener = createVsockListener(vsockConfig(PORT_ADDON), deps);
      await expect(listener.start(async () => ({ code: 0, reason: 'ok' }))).rejects.toThrow(
        `vsock listener cannot listen on port ${PORT_ADDON}: bind/listen(AF_VSOCK): Address already in use`,
      );
    } finally {
      holder.close();
    }
  });

  test('connect fails with the kernel errno (no transport here), never hangs', async () => {
    const started = Date.now();
    await expect(addon.connect(addon.VMADDR_CID_HOST, PORT_ADDON)).rejects.toMatchObject({
      code: expect.stringMatching(/^E[A-Z]+$/),
      syscall: 'connect',
    });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(addon.pumps()).toBe(0);
  });
});

describe('fence_virt -S path: our agent → listener → dispatcher with CID groups', () => {
  const calls: Array<{ action: string; target: string; source: string | undefined }> = [];
  const backend: Backend = {
    name: 'recording',
    start: async () => undefined,
    stop: async () => undefined,
    async fence(action, target, ctx) {
      calls.push({ action, target, source: ctx.source });
      return { code: 0, reason: 'ok' };
    },
    hostlist: async () => ({ entries: [], code: 0 }),
  };
  const listener = createVsockListener(vsockConfig(PORT_AGENT), deps);

  beforeAll(async () => {
    const permissions = new PermissionMap([{ name: 'guests', ips: ['42'], uuids: ['vm-a'] }]);
    await listener.start(createDispatcher({ backend, permissions, logger: silentLogger }));
  });

  afterAll(() => listener.stop());

  async function agent(cid: number, op: number, target: string): Promise<number> {
    const lines: string[] = [];
    const result = await fenceByVsock(
      {
        cid: 2,
        port: PORT_AGENT,
        op,
        domain: target,
        hash: HashType.sha256,
        auth: HashType.sha256,
        key: KEY,
        timeoutSec: 5,
      },
      { out: (l) => lines.push(l), err: (l) => lines.push(l) },
      // The host end is served as the addon would serve an accepted connection from `cid`.
      async () => {
        const { server, client } = pair();
        listener.serve(server, cid);
        return client;
      },
    );
    return result.code;
  }

  test('the peer CID is the groups source: CID 42 may, CID 43 may not', async () => {
    expect(await agent(42, Op.STATUS, 'vm-a')).toBe(0);
    expect(await agent(43, Op.STATUS, 'vm-a')).toBe(3);
    expect(await agent(42, Op.OFF, 'vm-b')).toBe(3);
    expect(calls).toEqual([{ action: 'status', target: 'vm-a', source: '42' }]);
  });

  test('connect failure: the C message with the strerror, exit code 1', async () => {
    const lines: string[] = [];
    const result = await fenceByVsock(
      {
        cid: 7,
        port: PORT_AGENT,
        op: Op.STATUS,
        domain: 'vm-a',
        hash: HashType.sha256,
        auth: HashType.sha256,
        key: KEY,
        timeoutSec: 5,
      },
      { out: (l) => lines.push(l), err: (l) => lines.push(l) },
    );
    expect(result.code).toBe(1);
    expect(lines[0]).toMatch(/^Unable to connect to fence_virtd host 7:52402 \S/);
  });
});
