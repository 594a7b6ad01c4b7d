/**
 * A SimCluster whose hosts run real QEMU guests: RabbitMQ, one private QEMU-driver libvirtd per
 * host (tools/harness/qemu.ts) and our fence_virtd with the amqp backend on each. A host may give
 * its guests a fencing device and serve it with the serial listener:
 *
 *   fence = 'serial'     <serial type='unix'> on port 1: the guest runs fence_virt -D /dev/ttyS1;
 *                        the host's daemon runs the serial listener in mode "serial"
 *   fence = 'vmchannel'  a virtio-serial <channel type='unix'>: the guest's fence_virt uses its
 *                        vmchannel mode (TCP to 10.0.2.179:1229), relayed inside the guest to
 *                        the virtio port; the daemon's serial listener runs in mode "vmchannel"
 *
 * Guests of one host share one fencing mode (a daemon has one serial listener). Guest sockets
 * live in `<host dir>/guests/fence/`, the listener's `path`, apart from the console sockets.
 */
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { SimCluster } from './cluster.js';
import { QemuGuest, startQemuHost, type GuestSpec, type QemuHost } from './qemu.js';

export type FenceDevice = 'serial' | 'vmchannel';

export interface QemuGuestSpec {
  name: string;
  uuid: string;
  /** Started with the cluster (default true); otherwise only defined. */
  running?: boolean;
  acpi?: boolean;
  /** A virtio NIC on a bridge of the host's network namespace. */
  nic?: { bridge: string; mac: string; ip: string };
  /** The image with Node.js and our agent (see GuestSpec.withNode). */
  withNode?: boolean;
}

export interface QemuHostSpec {
  id: string;
  guests: QemuGuestSpec[];
  /** The fencing device of this host's guests, served by the host's serial listener. */
  fence?: FenceDevice;
  /** Network namespace of the host (libvirtd, its guests' QEMU, its fence_virtd). */
  netns?: string;
  /** libvirtd also listens on TCP here (migration between hosts). */
  listenTcp?: { address: string; port: number };
}

export interface QemuClusterOptions {
  amqpPort: number;
  epmdPort: number;
  basePort: number;
  hosts: QemuHostSpec[];
  /** Broker URL the daemons use (default: the broker's loopback address). */
  daemonBrokerUrl?: string;
  /** Multicast port of host i's daemon (default basePort + i). */
  portFor?: (index: number) => number;
}

/** The address fence_virt's vmchannel mode connects to, and its port. */
export const VMCHANNEL_ADDRESS = '10.0.2.179';
export const VMCHANNEL_PORT = 1229;

export class QemuCluster {
  readonly cluster: SimCluster;
  private readonly qemuHosts = new Map<string, QemuHost>();
  private readonly guestsByName = new Map<string, QemuGuest>();

  constructor(readonly options: QemuClusterOptions) {
    this.cluster = new SimCluster({
      amqpPort: options.amqpPort,
      epmdPort: options.epmdPort,
      basePort: options.basePort,
      hosts: options.hosts.map((h) => ({ id: h.id, vms: [] })),
      daemonBrokerUrl: options.daemonBrokerUrl,
      portFor: options.portFor,
      prefixFor: (index) => {
        const netns = options.hosts[index]?.netns;
        return netns ? ['nsenter', `--net=/run/netns/${netns}`] : [];
      },
      startHost: (spec, index) => this.startHost(options.hosts[index] as QemuHostSpec),
      extraListenersFor: (index, uri) => {
        const spec = options.hosts[index] as QemuHostSpec;
        if (!spec.fence) return undefined;
        return {
          names: ['serial'],
          blocks:
            `\tserial {\n\t\turi = "${uri}";\n\t\tpath = "${this.fenceDir(spec.id)}";\n` +
            `\t\tmode = "${spec.fence}";\n\t}`,
        };
      },
    });
  }

  /** Starts everything; resolves when every running guest has reached its command loop. */
  async start(): Promise<void> {
    await this.cluster.start();
    await Promise.all(
      [...this.guestsByName.values()]
        .filter((g) => this.spec(g.name).running !== false)
        .map((g) => g.waitReady(120_000)),
    );
    // fence_virt's vmchannel mode talks TCP to 10.0.2.179:1229, which QEMU can only offer
    // through a user-mode NIC (guestfwd). A guest without a NIC gets the same address on its
    // loopback, relayed to the virtio-serial port (a byte pipe, as guestfwd is). The port opens
    // once at a time, so each connection's relay exits as soon as fence_virt closes (-t 0).
    for (const hostSpec of this.options.hosts) {
      if (hostSpec.fence !== 'vmchannel') continue;
      for (const g of hostSpec.guests) {
        if (g.running === false) continue;
        await this.startChannelRelay(this.guest(g.name));
      }
    }
  }

  async startChannelRelay(guest: QemuGuest): Promise<void> {
    const r = await guest.run(
      `ip addr add ${VMCHANNEL_ADDRESS}/32 dev lo && ` +
        `(socat -t 0 TCP-LISTEN:${VMCHANNEL_PORT},bind=${VMCHANNEL_ADDRESS},reuseaddr,fork OPEN:/dev/vport0p1 &)`,
    );
    if (r.code !== 0) throw new Error(`vmchannel relay in ${guest.name} failed: ${r.output}`);
  }

  host(id: string): QemuHost {
    const h = this.qemuHosts.get(id);
    if (!h) throw new Error(`no QEMU host ${id}`);
    return h;
  }

  guest(name: string): QemuGuest {
    const g = this.guestsByName.get(name);
    if (!g) throw new Error(`no guest ${name}`);
    return g;
  }

  /** The directory of the guests' fencing sockets on host `id` (the serial listener's path). */
  fenceDir(id: string): string {
    return join(this.host(id).guestDir, 'fence');
  }

  private spec(name: string): QemuGuestSpec {
    for (const h of this.options.hosts) {
      const g = h.guests.find((x) => x.name === name);
      if (g) return g;
    }
    throw new Error(`no guest spec ${name}`);
  }

  private async startHost(spec: QemuHostSpec) {
    const host = await startQemuHost(spec.id, { netns: spec.netns, listenTcp: spec.listenTcp });
    this.qemuHosts.set(spec.id, host);
    mkdirSync(this.fenceDir(spec.id), { recursive: true });
    const hv = await host.connection();
    for (const g of spec.guests) {
      const guestSpec: GuestSpec = {
        name: g.name,
        uuid: g.uuid,
        acpi: g.acpi,
        nic: g.nic,
        withNode: g.withNode,
        memoryMiB: g.withNode ? 384 : undefined,
      };
      if (spec.fence === 'serial')
        guestSpec.serialSocket = join(this.fenceDir(spec.id), `${g.name}.sock`);
      if (spec.fence === 'vmchannel')
        guestSpec.channelSocket = join(this.fenceDir(spec.id), `${g.name}.chan`);
      const guest = new QemuGuest(host, guestSpec);
      this.guestsByName.set(g.name, guest);
      await guest.define();
      if (g.running !== false) {
        guest.markBoot();
        await hv.create(g.uuid); // boots while the other hosts and daemons start
      }
    }
    return { sim: host, hv };
  }

  async dispose(): Promise<void> {
    await this.cluster.dispose();
    // Hosts a failed start left outside the cluster (stop() is a no-op for stopped ones).
    for (const host of this.qemuHosts.values()) await host.stop().catch(() => undefined);
  }
}
