/**
 * The serial / vmchannel listener (docs/protocol.md §10.4). Guests without networking talk to the daemon
 * over a serial port or a guestfwd channel that QEMU exposes on the host as a unix socket. The
 * listener watches libvirt for running domains, connects to each domain's socket, and uses the
 * domain's UUID as the permission source of every request on it.
 *
 * Deviations from C 4.12.1, on purpose:
 * - Duplicates (docs/protocol.md §7) are answered with the first request's response instead of silence, and
 *   the duplicate key also includes the requesting domain, so two guests never share answers.
 * - Requests are found by their "abba" magic (C reads 74 bytes blindly and ignores the magic).
 * - When libvirt goes away the listener reopens it with backoff and rescans the domains; a
 *   guest socket that closes under a running domain is reconnected. C does neither.
 * - Requests are served concurrently; C handles one at a time.
 */
import type { SerialListenerConfig } from '../../config/types.js';
import { DomainState, opName } from '../../protocol/constants.js';
import { RequestHistory } from '../../protocol/history.js';
import type { SerialRequest } from '../../protocol/serial.js';
import {
  LifecycleEventType,
  type Hypervisor,
  type LifecycleEvent,
} from '../../libvirt/hypervisor.js';
import { createRateLimitedLog, type Logger, type RateLimitedLog } from '../../util/logger.js';
import type { Listener, ListenerDeps, RequestHandler, RequestResult } from '../listener.js';
import { DEFAULT_CHANNEL_TIMINGS, GuestChannel, type ChannelTimings } from './channel.js';
import { findGuestSockets, inSocketDirectory } from './domain-xml.js';
import { encodeSerialResult, ResponseCache } from './response.js';
import { Backoff } from '../../util/backoff.js';

export interface SerialListenerOptions {
  channel?: Partial<ChannelTimings>;
  /** Backoff bounds for reopening libvirt after the connection is lost. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Requests one guest may have outstanding; more are dropped. */
  maxPendingPerGuest?: number;
}

export function createSerialListener(
  config: SerialListenerConfig,
  deps: ListenerDeps,
  options: SerialListenerOptions = {},
): Listener {
  return new SerialListener(config, deps, options);
}

/** Domain states whose guest sockets exist (C skips shut off and crashed domains). */
function isActive(state: number): boolean {
  return state !== DomainState.SHUTOFF && state !== DomainState.CRASHED;
}

class SerialListener implements Listener {
  readonly name = 'serial';
  private handler: RequestHandler | undefined;
  private hypervisor: Hypervisor | undefined;
  private unsubscribe: (() => void)[] = [];
  /** Attached guest sockets by domain UUID, then by socket path. */
  private readonly guests = new Map<string, Map<string, GuestChannel>>();
  /** Bumped on every attach/detach of a UUID, so a slow attach never revives a stopped domain. */
  private readonly generations = new Map<string, number>();
  private readonly pending = new Map<string, number>();
  private readonly responses = new ResponseCache();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly reconnect: Backoff;
  private stopped = false;
  private readonly timings: ChannelTimings;
  private readonly log: Logger;
  /** A guest is not authenticated: what it makes us log is rate-limited. */
  private readonly drops: RateLimitedLog;

  constructor(
    private readonly config: SerialListenerConfig,
    private readonly deps: ListenerDeps,
    private readonly options: SerialListenerOptions,
  ) {
    this.timings = { ...DEFAULT_CHANNEL_TIMINGS, ...options.channel };
    this.reconnect = new Backoff({
      minMs: options.reconnectMinMs ?? 500,
      maxMs: options.reconnectMaxMs ?? 30_000,
    });
    this.log = deps.logger.child({ listener: 'serial', mode: config.mode });
    this.drops = createRateLimitedLog(this.log);
  }

  async start(handler: RequestHandler): Promise<void> {
    if (this.handler) throw new Error('serial listener already started');
    this.handler = handler;
    try {
      await this.connectHypervisor();
    } catch (err) {
      this.handler = undefined;
      throw new Error(
        `serial listener cannot open libvirt (${this.config.uri ?? 'default URI'}): ${(err as Error).message}`,
      );
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const uuid of [...this.guests.keys()]) this.detach(uuid);
    const hypervisor = this.dropHypervisor();
    await hypervisor?.close().catch(() => undefined);
    this.drops.flush();
    this.log.info('stopped');
  }

  /** Open libvirt, subscribe before listing so no event is lost, then attach active domains. */
  private async connectHypervisor(): Promise<void> {
    const hypervisor = await this.deps.openHypervisor(this.config.uri);
    if (this.stopped) {
      await hypervisor.close().catch(() => undefined);
      return;
    }
    this.hypervisor = hypervisor;
    this.unsubscribe = [
      hypervisor.onLifecycle((event) => this.onLifecycle(event)),
      hypervisor.onClose((reason) => this.onHypervisorLost(hypervisor, reason)),
    ];
    try {
      await this.rescan(hypervisor);
    } catch (err) {
      this.dropHypervisor();
      await hypervisor.close().catch(() => undefined);
      throw err;
    }
    this.reconnect.reset();
    this.log.info('watching-domains', { uri: hypervisor.uri, guests: this.guests.size });
  }

  /** Attach every active domain not attached yet; detach those no longer active. */
  private async rescan(hypervisor: Hypervisor): Promise<void> {
    const domains = await hypervisor.listDomains();
    const active = new Set(domains.filter((d) => isActive(d.state)).map((d) => d.uuid));
    for (const uuid of [...this.guests.keys()]) if (!active.has(uuid)) this.detach(uuid);
    await Promise.all(
      [...active].filter((uuid) => !this.guests.has(uuid)).map((uuid) => this.attach(uuid)),
    );
  }

  private onLifecycle(event: LifecycleEvent): void {
    if (event.event === LifecycleEventType.STARTED) {
      void this.attach(event.uuid);
    } else if (event.event === LifecycleEventType.STOPPED) {
      this.detach(event.uuid);
    }
  }

  private async attach(uuid: string): Promise<void> {
    const hypervisor = this.hypervisor;
    if (!hypervisor || this.stopped) return;
    const generation = this.bump(uuid);
    let xml: string;
    try {
      xml = await hypervisor.getXml(uuid);
    } catch (err) {
      this.log.warn('domain-xml-failed', { domain: uuid, error: (err as Error).message });
      return;
    }
    if (this.generations.get(uuid) !== generation || this.stopped) return;
    const paths = findGuestSockets(xml, this.config.mode).filter((p) =>
      inSocketDirectory(p, this.config.path),
    );
    if (paths.length === 0) return;
    const channels = this.guests.get(uuid) ?? new Map<string, GuestChannel>();
    this.guests.set(uuid, channels);
    for (const path of paths) {
      if (channels.has(path)) continue;
      const channel = new GuestChannel(
        path,
        uuid,
        (r, c) => this.onRequest(r, c),
        this.log,
        this.timings,
      );
      channels.set(path, channel);
      channel.open();
    }
  }

  private detach(uuid: string): void {
    this.bump(uuid);
    const channels = this.guests.get(uuid);
    if (!channels) return;
    this.guests.delete(uuid);
    for (const channel of channels.values()) channel.close();
    this.log.info('domain-detached', { domain: uuid });
  }

  private bump(uuid: string): number {
    const next = (this.generations.get(uuid) ?? 0) + 1;
    this.generations.set(uuid, next);
    return next;
  }

  /** Existing guest sockets stay; libvirt is reopened with backoff and the domains rescanned. */
  private onHypervisorLost(hypervisor: Hypervisor, reason: string): void {
    if (this.hypervisor !== hypervisor || this.stopped) return;
    this.log.warn('libvirt-connection-lost', { reason, retryMs: this.reconnect.nextBaseMs });
    this.dropHypervisor();
    void hypervisor.close().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const delay = this.reconnect.next();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connectHypervisor().catch((err: Error) => {
        this.log.warn('libvirt-reconnect-failed', {
          error: err.message,
          retryMs: this.reconnect.nextBaseMs,
        });
        this.scheduleReconnect();
      });
    }, delay);
  }

  private dropHypervisor(): Hypervisor | undefined {
    for (const unsubscribe of this.unsubscribe) unsubscribe();
    this.unsubscribe = [];
    const hypervisor = this.hypervisor;
    this.hypervisor = undefined;
    return hypervisor;
  }

  private onRequest(request: SerialRequest, channel: GuestChannel): void {
    const source = channel.uuid;
    const key = `${source}|${RequestHistory.key(request.request, request.seqno, request.domain)}`;
    const cached = this.responses.get(key);
    if (cached) {
      this.drops.log('info', 'duplicate-answered', 'duplicate', {
        domain: source,
        op: opName(request.request),
        seqno: request.seqno,
      });
      void cached.then((response) => channel.send(response));
      return;
    }
    const outstanding = this.pending.get(source) ?? 0;
    if (outstanding >= (this.options.maxPendingPerGuest ?? 16)) {
      this.drops.log('warn', 'request-rejected', 'too-many-pending', { domain: source });
      return;
    }
    this.pending.set(source, outstanding + 1);
    const response = this.responses.remember(key, this.answer(request, source));
    void response.then((bytes) => {
      this.pending.set(source, (this.pending.get(source) ?? 1) - 1);
      channel.send(bytes);
    });
  }

  /** Never rejects: a failing handler answers FAIL, as C does when nothing handled the request. */
  private async answer(request: SerialRequest, source: string): Promise<Buffer> {
    let result: RequestResult;
    try {
      result = await this.requireHandler()({
        listener: this.name,
        op: request.request,
        target: request.domain,
        source,
        seqno: request.seqno,
        flags: request.flags,
      });
    } catch (err) {
      this.log.error('handler-failed', {
        domain: source,
        op: opName(request.request),
        error: (err as Error).message,
      });
      result = { code: 1, reason: 'handler-error' };
    }
    return encodeSerialResult(result);
  }

  private requireHandler(): RequestHandler {
    if (!this.handler) throw new Error('serial listener not started');
    return this.handler;
  }
}
