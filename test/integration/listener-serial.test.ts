/**
 * The serial / vmchannel listener against a private libvirtd (test driver): the test plays
 * QEMU, listening on each domain's `<source mode='bind'>` unix socket, and writes guest
 * requests on it. Covers the shared compliance suite, attach on STARTED, detach on STOPPED,
 * re-attach after libvirtd restarts, the path filter and vmchannel mode.
 */
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SerialListenerConfig } from '../../src/config/types.js';
import { openHypervisor } from '../../src/libvirt/native.js';
import type { Hypervisor } from '../../src/libvirt/hypervisor.js';
import type { IncomingRequest, Listener, RequestHandler } from '../../src/listeners/listener.js';
import { createSerialListener } from '../../src/listeners/serial/index.js';
import { ByteReader } from '../../src/net/byte-reader.js';
import {
  decodeHostEntry,
  HOST_ENTRY_SIZE,
  isTerminator,
  type HostEntry,
} from '../../src/protocol/hostlist.js';
import { encodeSerialRequest, MagicScanner } from '../../src/protocol/serial.js';
import { silentLogger } from '../../src/util/logger.js';
import { runListenerCompliance, waitFor, type SendResult } from '../helpers/listener-compliance.js';
import { seedHost, startLibvirtd, type SimHost, type VmSpec } from '../helpers/libvirtd.js';

const FAST = {
  channel: { requestMs: 200, retryMinMs: 50, retryMaxMs: 200 },
  reconnectMinMs: 50,
  reconnectMaxMs: 200,
};

function uuidOf(n: number): string {
  return `22222222-0000-4000-8000-${n.toString().padStart(12, '0')}`;
}

/** QEMU's side of one guest socket: it listens, the daemon connects, guest bytes flow through it. */
class GuestSocket {
  private readonly server: Server;
  private daemon: { socket: Socket; reader: ByteReader } | undefined;
  connections = 0;

  private constructor(readonly path: string) {
    this.server = createServer((socket) => {
      this.connections += 1;
      socket.on('error', () => undefined);
      this.daemon = { socket, reader: new ByteReader(socket) };
    });
  }

  static async listen(path: string): Promise<GuestSocket> {
    const guest = new GuestSocket(path);
    await new Promise<void>((resolve, reject) => {
      guest.server.once('error', reject);
      guest.server.listen(path, resolve);
    });
    return guest;
  }

  /** The daemon is connected now. */
  get attached(): boolean {
    return this.daemon !== undefined && !this.daemon.reader.closed;
  }

  async waitAttached(): Promise<void> {
    await waitFor(() => this.attached);
  }

  async waitDetached(): Promise<void> {
    await waitFor(() => !this.attached);
  }

  write(bytes: Buffer): void {
    if (!this.daemon) throw new Error(`nothing connected to ${this.path}`);
    this.daemon.socket.write(bytes);
  }

  /** Write one request and read the response as fence_virt does (docs/protocol.md §10.3). */
  async request(
    op: number,
    target: string,
    seqno: number,
    timeoutMs = 10_000,
  ): Promise<SendResult> {
    await this.waitAttached();
    const { reader } = this.daemon!;
    this.write(encodeSerialRequest({ request: op, domain: target, seqno }));
    try {
      const code = await this.readResponse(reader, timeoutMs);
      if (code !== 0xfd) return { code };
      const hostlist: HostEntry[] = [];
      for (;;) {
        const entry = decodeHostEntry(await reader.readExact(HOST_ENTRY_SIZE, timeoutMs));
        if (isTerminator(entry)) break;
        hostlist.push(entry);
      }
      return { code, hostlist, hostlistCode: await this.readResponse(reader, timeoutMs) };
    } catch {
      return { code: undefined };
    }
  }

  async close(): Promise<void> {
    this.daemon?.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async readResponse(reader: ByteReader, timeoutMs: number): Promise<number | undefined> {
    const scanner = new MagicScanner();
    while (scanner.feed(await reader.readExact(1, timeoutMs)) < 0);
    return (await reader.readExact(1, timeoutMs))[0];
  }
}

interface Fixture {
  host: SimHost;
  keeper: Hypervisor;
  dir: string;
  guests: Map<string, GuestSocket>;
  dispose(): Promise<void>;
}

/** A private libvirtd with `vms`, and a listening guest socket for every serial/channel path. */
async function fixture(name: string, vms: VmSpec[], dir: string): Promise<Fixture> {
  const guests = new Map<string, GuestSocket>();
  let host: SimHost | undefined;
  try {
    const paths = vms.flatMap((vm) => [...(vm.serialPaths ?? []), ...(vm.channelPaths ?? [])]);
    for (const path of paths) guests.set(path, await GuestSocket.listen(path));
    host = await startLibvirtd(name);
    const keeper = await seedHost(host, vms);
    const started = host;
    return {
      host: started,
      keeper,
      dir,
      guests,
      async dispose() {
        for (const guest of guests.values()) await guest.close();
        await started.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    for (const guest of guests.values()) await guest.close();
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

function serialListener(uri: string, overrides: Partial<SerialListenerConfig> = {}): Listener {
  return createSerialListener(
    { uri, path: undefined, mode: 'serial', ...overrides },
    { logger: silentLogger, key: Buffer.alloc(0), openHypervisor: (u) => openHypervisor(u) },
    FAST,
  );
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

runListenerCompliance({
  name: 'serial',
  async create() {
    const base = mkdtempSync(join(tmpdir(), 'vf-serial-paths-'));
    const vms: VmSpec[] = [0, 1].map((n) => ({
      name: `guest-${n}`,
      uuid: uuidOf(n),
      running: true,
      serialPaths: [join(base, `guest-${n}.sock`)],
    }));
    const fx = await fixture('compliance', vms, base);
    const guestFor = (client = 0): GuestSocket => fx.guests.get(vms[client]!.serialPaths![0]!)!;
    return {
      malformed: ['short', 'garbage'],
      duplicates: 'answered',
      expectedSource: (client) => uuidOf(client),
      async start(handler: RequestHandler) {
        const listener = serialListener(fx.host.uri);
        await listener.start(handler);
        return listener;
      },
      send: (op, target, o = {}) =>
        guestFor(o.client).request(op, target, o.seqno ?? 1, o.timeoutMs),
      async sendMalformed(kind, o = {}) {
        const guest = guestFor(o.client);
        await guest.waitAttached();
        if (kind === 'short') {
          guest.write(
            encodeSerialRequest({ request: 1, domain: 'cut', seqno: o.seqno ?? 1 }).subarray(0, 30),
          );
          await sleep(FAST.channel.requestMs * 3); // longer than the listener's per-request limit
        } else {
          guest.write(Buffer.from(Array.from({ length: 300 }, (_, i) => (i % 2 ? 0x00 : 0xff))));
        }
      },
      async assertReleased() {
        for (const guest of fx.guests.values()) await guest.waitDetached();
        const before = [...fx.guests.values()].map((g) => g.connections);
        await sleep(FAST.channel.retryMaxMs * 3); // a leftover reconnect loop would show up here
        expect([...fx.guests.values()].map((g) => g.connections)).toEqual(before);
      },
      dispose: () => fx.dispose(),
    };
  },
});

describe('serial listener and libvirt domain lifecycle', () => {
  let fx: Fixture;
  let listener: Listener | undefined;
  const seen: IncomingRequest[] = [];
  const handler: RequestHandler = async (request) => {
    seen.push(request);
    return { code: 0, reason: 'ok' };
  };

  const path = (name: string): string => join(fx.dir, name);

  beforeEach(async () => {
    seen.length = 0;
    const dir = mkdtempSync(join(tmpdir(), 'vf-serial-life-'));
    mkdirSync(join(dir, 'nested'));
    const vms: VmSpec[] = [
      {
        name: 'running',
        uuid: uuidOf(10),
        running: true,
        serialPaths: [join(dir, 'running.sock')],
      },
      { name: 'late', uuid: uuidOf(11), running: false, serialPaths: [join(dir, 'late.sock')] },
      {
        name: 'nested',
        uuid: uuidOf(12),
        running: true,
        serialPaths: [join(dir, 'nested', 'nested.sock')],
      },
      { name: 'chan', uuid: uuidOf(13), running: true, channelPaths: [join(dir, 'chan.sock')] },
    ];
    fx = await fixture('lifecycle', vms, dir);
  });

  afterEach(async () => {
    await listener?.stop();
    listener = undefined;
    await fx.dispose();
  });

  it('attaches running domains only, with the path filter, and serves them', async () => {
    listener = serialListener(fx.host.uri, { path: fx.dir });
    await listener.start(handler);
    const running = fx.guests.get(path('running.sock'))!;
    expect((await running.request(4, 'x', 1)).code).toBe(0);
    expect(seen[0]?.source).toBe(uuidOf(10));
    expect(fx.guests.get(path('late.sock'))!.connections).toBe(0); // shut off
    expect(fx.guests.get(path('nested/nested.sock'))!.connections).toBe(0); // not directly in path
    expect(fx.guests.get(path('chan.sock'))!.connections).toBe(0); // a channel, not a serial
  });

  it('vmchannel mode attaches <channel> sockets only', async () => {
    listener = serialListener(fx.host.uri, { mode: 'vmchannel' });
    await listener.start(handler);
    expect((await fx.guests.get(path('chan.sock'))!.request(4, 'y', 2)).code).toBe(0);
    expect(seen[0]?.source).toBe(uuidOf(13));
    expect(fx.guests.get(path('running.sock'))!.connections).toBe(0);
  });

  it('attaches a domain started after the listener, and detaches it when it stops', async () => {
    listener = serialListener(fx.host.uri);
    await listener.start(handler);
    const late = fx.guests.get(path('late.sock'))!;
    await fx.keeper.create(uuidOf(11));
    expect((await late.request(3, 'late', 3)).code).toBe(0);
    expect(seen.at(-1)).toMatchObject({ op: 3, target: 'late', source: uuidOf(11) });
    await fx.keeper.destroy(uuidOf(11));
    await late.waitDetached();
    // The running domain is unaffected.
    expect((await fx.guests.get(path('running.sock'))!.request(4, 'x', 4)).code).toBe(0);
  });

  it('keeps serving while libvirtd is down and re-attaches after it comes back', async () => {
    listener = serialListener(fx.host.uri);
    await listener.start(handler);
    const running = fx.guests.get(path('running.sock'))!;
    await running.waitAttached();
    await fx.host.kill();
    expect((await running.request(4, 'during-outage', 5)).code).toBe(0);
    await fx.host.restart();
    // The restarted test driver has fresh state: only "late" runs now.
    fx.keeper = await seedHost(fx.host, [
      { name: 'late', uuid: uuidOf(11), running: true, serialPaths: [path('late.sock')] },
    ]);
    const late = fx.guests.get(path('late.sock'))!;
    expect((await late.request(4, 'after-restart', 6)).code).toBe(0);
    expect(seen.at(-1)?.source).toBe(uuidOf(11));
    await running.waitDetached(); // no longer running after the rescan
  });

  it('reconnects to a guest socket that went away while its domain runs', async () => {
    listener = serialListener(fx.host.uri);
    await listener.start(handler);
    const first = fx.guests.get(path('running.sock'))!;
    await first.waitAttached();
    await first.close(); // QEMU's chardev restarts
    const second = await GuestSocket.listen(path('running.sock'));
    fx.guests.set(path('running.sock'), second);
    expect((await second.request(4, 'again', 7)).code).toBe(0);
  });
});

describe('serial listener start-up', () => {
  it('fails with a clear message when libvirt cannot be opened', async () => {
    const listener = serialListener(
      'test+unix:///default?socket=/nonexistent/virtfence/libvirt-sock',
    );
    await expect(listener.start(async () => ({ code: 0, reason: 'ok' }))).rejects.toThrow(
      /^serial listener cannot open libvirt \(test\+unix:\/\/\/default\?socket=\/nonexistent/,
    );
    await listener.stop();
  });
});
