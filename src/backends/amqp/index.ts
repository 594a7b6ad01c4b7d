/**
 * `backend = "amqp"`: broker-routed multi-host fencing.
 *
 *   backends {
 *     amqp {
 *       url = "amqp://broker:5672";     # url1, url2, …: failover list
 *       cluster = "virtfence";
 *       host_id = "hv1";                # default: the hostname
 *       key_file = "/etc/cluster/virtfence-cluster.key";
 *       heartbeat_interval = "1000";    # ms
 *       dead_after = "5000";            # ms without heartbeat: the host counts as dead
 *       hosts = "hv1,hv2,hv3";          # optional: every host of the cluster (sync needs each)
 *       uri = "qemu:///system";         # uri1, …: this host's own libvirt
 *     }
 *   }
 */
import type {
  Backend,
  BackendHealth,
  FenceAction,
  FenceOutcome,
  HostListResult,
  RequestContext,
} from '../backend.js';
import { LibvirtBackend } from '../libvirt/backend.js';
import { ClusterBus, type BusDelivery } from '../../amqp/bus.js';
import { loadAmqpSecrets, parseAmqpConfigOrThrow, type AmqpConfig } from '../../amqp/config.js';
import { resolveProfile } from '../../amqp/profiles.js';
import type { BodyOf, Message, MessageType } from '../../messages/schemas.js';
import type { Logger } from '../../util/logger.js';
import { RoutedBackend } from './routed-backend.js';
import type { BusPort, ReplyFn } from './ports.js';

export { RoutedBackend, type RoutedBackendOptions, type RoutedCounters } from './routed-backend.js';
export type { BusPort, LocalPort, DomainChange, ReplyFn } from './ports.js';

export interface AmqpBackendDeps {
  logger: Logger;
  hostname?: string;
  /** The daemon's listener names, announced in heartbeats. */
  listeners?: string[];
}

/** A ClusterBus seen through the narrow port the routed backend uses. */
export class ClusterBusPort implements BusPort {
  constructor(readonly bus: ClusterBus) {}

  get epoch(): number {
    return this.bus.messages.epoch;
  }

  // async: a body that fails the schema (MessageBuildError) becomes a rejection, not a throw.
  async publish<T extends MessageType>(type: T, body: BodyOf<T>): Promise<void> {
    return this.bus.publish(this.bus.create(type, body));
  }

  async sendToHost<T extends MessageType>(host: string, type: T, body: BodyOf<T>): Promise<void> {
    return this.bus.sendToHost(host, this.bus.create(type, body));
  }

  onMessage(handler: (message: Message, reply: ReplyFn) => void): () => void {
    return this.bus.onMessage((delivery: BusDelivery) => {
      if (delivery.self) return;
      const reply: ReplyFn = async (type, body) =>
        this.bus.reply(delivery, this.bus.create(type, body));
      handler(delivery.message, reply);
    });
  }

  onConnectionChange(handler: (up: boolean) => void): () => void {
    return this.bus.onConnectionChange((c) => handler(c.connected));
  }

  onOutOfWindow(handler: (from: string) => void): () => void {
    return this.bus.onOutOfWindow(handler);
  }

  isConnected(): boolean {
    return this.bus.connected;
  }

  start(): Promise<void> {
    // Do not block daemon start-up on the broker: local fencing works without it.
    return this.bus.start({ wait: false });
  }

  stop(): Promise<void> {
    return this.bus.stop();
  }
}

/**
 * The backend the daemon builds for `backend = "amqp"`. Configuration errors throw here; the
 * key file is read, libvirt and the broker are connected in start().
 */
export function createAmqpBackend(block: Record<string, string>, deps: AmqpBackendDeps): Backend {
  const { config, unknownKeys } = parseAmqpConfigOrThrow(
    block,
    deps.hostname !== undefined ? { hostId: deps.hostname } : {},
  );
  if (unknownKeys.length > 0)
    deps.logger.warn('amqp-unknown-keys', { keys: unknownKeys.join(',') });
  return new LazyAmqpBackend(config, deps.logger, deps.listeners ?? []);
}

/** Reads secrets and wires the parts on start(), so construction stays synchronous. */
class LazyAmqpBackend implements Backend {
  readonly name = 'amqp';
  private inner: RoutedBackend | undefined;
  private bus: ClusterBus | undefined;

  constructor(
    private readonly config: AmqpConfig,
    private readonly logger: Logger,
    private readonly listeners: string[],
  ) {}

  /** The running routed backend (after start). */
  get routed(): RoutedBackend | undefined {
    return this.inner;
  }

  async start(): Promise<void> {
    const c = this.config;
    const secrets = await loadAmqpSecrets(c);
    const bus = new ClusterBus({
      urls: c.urls,
      hostId: c.hostId,
      cluster: c.cluster,
      key: secrets.key,
      profile: resolveProfile(c.profile, {
        ...(c.eventAddress !== undefined ? { eventAddress: c.eventAddress } : {}),
        ...(c.eventSubscribeAddress !== undefined
          ? { eventSubscribeAddress: c.eventSubscribeAddress }
          : {}),
        ...(c.requestAddress !== undefined ? { requestAddress: c.requestAddress } : {}),
        ...(c.replyAddress !== undefined ? { replyAddress: c.replyAddress } : {}),
      }),
      ...(c.username !== undefined ? { username: c.username } : {}),
      ...(secrets.password !== undefined ? { password: secrets.password } : {}),
      tls: c.tls,
      ...(secrets.ca !== undefined ? { ca: secrets.ca } : {}),
      ...(c.containerId !== undefined ? { containerId: c.containerId } : {}),
      idleTimeoutMs: c.idleTimeout,
      maxReconnectDelayMs: c.maxReconnectDelay,
      sendTimeoutMs: c.sendTimeout,
      logger: this.logger,
    });
    this.bus = bus;
    const local = new LibvirtBackend({ uris: c.uris }, this.logger, { waitForInit: false });
    this.inner = new RoutedBackend(local, new ClusterBusPort(bus), {
      hostId: c.hostId,
      heartbeatIntervalMs: c.heartbeatInterval,
      deadAfterMs: c.deadAfter,
      ...(c.hosts !== undefined ? { hosts: c.hosts } : {}),
      listeners: this.listeners,
      logger: this.logger,
    });
    this.logger.info('amqp-backend', {
      host_id: c.hostId,
      cluster: c.cluster,
      profile: c.profile,
      urls: c.urls.join(' '),
      uris: c.uris.join(' '),
      heartbeat_interval: c.heartbeatInterval,
      dead_after: c.deadAfter,
      hosts: c.hosts?.join(',') ?? '',
    });
    await this.inner.start();
  }

  async stop(): Promise<void> {
    await this.inner?.stop();
  }

  health(): BackendHealth {
    if (!this.inner || !this.bus) return { serving: false, waitingFor: 'start-up', libvirt: [] };
    const routed = this.inner.health();
    const stats = this.bus.stats();
    const rejected: Record<string, number> = { undecodable: stats.undecodable };
    for (const [reason, n] of Object.entries(stats.verify))
      if (reason !== 'accepted') rejected[reason] = n;
    return {
      ...routed,
      bus: {
        hostId: this.config.hostId,
        connected: stats.connected,
        profile: this.config.profile,
        connects: stats.connects,
        reconnects: stats.reconnects,
        disconnects: stats.disconnects,
        rejected,
      },
    };
  }

  fence(action: FenceAction, target: string, ctx: RequestContext): Promise<FenceOutcome> {
    if (!this.inner) return Promise.resolve({ code: 1, reason: 'backend-not-started' });
    return this.inner.fence(action, target, ctx);
  }

  hostlist(ctx: RequestContext): Promise<HostListResult> {
    if (!this.inner) return Promise.resolve({ entries: [], code: 1 });
    return this.inner.hostlist(ctx);
  }
}
