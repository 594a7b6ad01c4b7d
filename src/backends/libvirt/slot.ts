/**
 * One configured URI: its connection, reconnection with backoff, and an event-driven cache of
 * its domains (callbacks registered first, then a full list; a slow reconciliation poll).
 */
import {
  LibvirtError,
  LibvirtErrorCode,
  type DomainInfo,
  type Hypervisor,
  type LifecycleEvent,
} from '../../libvirt/hypervisor.js';
import { DomainState } from '../../protocol/constants.js';
import type { Logger } from '../../util/logger.js';
import { domainChanged, stateAfterEvent, syntheticEvent } from './decisions.js';
import { errText } from '../../util/errors.js';
import { Backoff } from '../../util/backoff.js';

/** A domain appeared, changed state, or disappeared on one URI. */
export interface DomainChange {
  uuid: string;
  name: string;
  /** virDomainState after the change; SHUTOFF when the domain is gone. */
  state: number;
  /** virDomainEventType: the real one, or one synthesised from a list difference. */
  event: number;
  detail: number;
  /** false when the domain no longer exists on this URI. */
  present: boolean;
  uri: string;
  source: 'event' | 'resync';
}

/** libvirt cannot be reached through this URI right now. */
export class LibvirtUnavailableError extends Error {
  readonly reason = 'libvirt-unavailable';
  constructor(uri: string, detail?: string) {
    super(`libvirt unavailable at ${uri}${detail ? `: ${detail}` : ''}`);
    this.name = 'LibvirtUnavailableError';
  }
}

export interface SlotOptions {
  open: (uri: string) => Promise<Hypervisor>;
  logger: Logger;
  reconcileIntervalMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  onChange: (change: DomainChange) => void;
}

const VIR_FROM_RPC = 7;

function isConnectionError(cause: unknown): boolean {
  if (!(cause instanceof LibvirtError)) return false;
  return (
    cause.code === LibvirtErrorCode.NO_CONNECT ||
    cause.code === LibvirtErrorCode.RPC ||
    cause.domain === VIR_FROM_RPC
  );
}

function withTimeout<T>(work: Promise<T>, deadline: number, uri: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new LibvirtUnavailableError(uri, 'call exceeded the request deadline')),
      Math.max(0, deadline - Date.now()),
    );
  });
  return Promise.race([work, expiry]).finally(() => clearTimeout(timer));
}

export class HypervisorSlot {
  private hv: Hypervisor | undefined;
  private readonly cache = new Map<string, DomainInfo>();
  /** Ordering of observations: an event or a read that started later wins (see apply()). */
  private tick = 0;
  private readonly stamps = new Map<string, number>();
  private readsInFlight = 0;
  private readonly waiters = new Set<(uuid: string) => void>();
  private unsubscribe: (() => void)[] = [];
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private stopped = false;
  private connecting: Promise<boolean> | undefined;

  constructor(
    readonly uri: string,
    private readonly options: SlotOptions,
  ) {
    this.backoff = new Backoff({ minMs: options.backoffMinMs, maxMs: options.backoffMaxMs });
  }

  get connected(): boolean {
    return this.hv !== undefined && this.hv.isAlive();
  }

  /** Cached domains (empty while disconnected: stale data must not route fencing). */
  domains(): DomainInfo[] {
    return this.connected ? [...this.cache.values()] : [];
  }

  cached(uuid: string): DomainInfo | undefined {
    return this.connected ? this.cache.get(uuid.toLowerCase()) : undefined;
  }

  /** One connection attempt; resolves true when connected and synchronised. */
  connect(): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    this.connecting ??= this.attempt().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /**
   * Runs `call` on the live connection, bounded by `deadline`; connection loss → unavailable.
   * A request that finds the connection down tries one reconnect at once instead of failing
   * until the backoff timer fires: the first request after libvirtd comes back is served.
   */
  async call<T>(
    call: (hv: Hypervisor) => Promise<T>,
    deadline: number,
    { reconnect = true }: { reconnect?: boolean } = {},
  ): Promise<T> {
    let hv = this.hv;
    if (!hv || !hv.isAlive()) {
      if (hv) this.markDown(hv, 'not alive');
      // Never from inside an attempt (its own resync), which would wait for itself.
      hv = reconnect ? await this.reconnectNow(deadline) : undefined;
      if (!hv) throw new LibvirtUnavailableError(this.uri, 'not connected');
    }
    try {
      return await withTimeout(call(hv), deadline, this.uri);
    } catch (cause) {
      if (isConnectionError(cause) || !hv.isAlive()) {
        this.markDown(hv, errText(cause));
        throw new LibvirtUnavailableError(
          this.uri,
          cause instanceof Error ? cause.message : undefined,
        );
      }
      throw cause;
    }
  }

  /** Fresh state of one domain by UUID, recorded in the cache. */
  async refresh(uuid: string, deadline: number): Promise<DomainInfo | undefined> {
    const key = uuid.toLowerCase();
    const started = this.beginRead();
    try {
      const info = await this.call((hv) => hv.lookupByUuid(key), deadline);
      this.apply(key, info, started);
      return info;
    } finally {
      this.endRead();
    }
  }

  /** Resolves on the next event for `uuid` or after `ms`. */
  waitForEvent(uuid: string, ms: number): Promise<void> {
    const key = uuid.toLowerCase();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve();
      };
      const waiter = (changed: string): void => {
        if (changed === key) done();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.waiters.add(waiter);
    });
  }

  /** One connection attempt within `deadline` (shared with any attempt under way). */
  private async reconnectNow(deadline: number): Promise<Hypervisor | undefined> {
    if (this.stopped) return undefined;
    const ok = await withTimeout(this.connect(), deadline, this.uri).catch(() => false);
    return ok && this.hv?.isAlive() ? this.hv : undefined;
  }

  /** Starts reconnecting with backoff (used when the first attempt at start-up failed). */
  scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const delay = this.backoff.next();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect().then((ok) => {
        if (!ok) this.scheduleReconnect();
      });
    }, delay);
    this.reconnectTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.reconcileTimer);
    await this.connecting?.catch(() => false);
    const hv = this.detach();
    await hv?.close().catch(() => undefined);
    for (const waiter of [...this.waiters]) waiter('');
  }

  private async attempt(): Promise<boolean> {
    if (this.stopped) return false;
    let hv: Hypervisor;
    try {
      hv = await this.options.open(this.uri);
    } catch (cause) {
      this.options.logger.warn('libvirt-connect-failed', { uri: this.uri, error: String(cause) });
      return false;
    }
    if (this.stopped) {
      await hv.close().catch(() => undefined);
      return false;
    }
    // Callbacks first, then the list: nothing that happens in between is lost.
    this.hv = hv;
    this.unsubscribe = [
      hv.onLifecycle((event) => this.onEvent(event)),
      hv.onClose((reason) => this.markDown(hv, `connection closed (${reason})`)),
    ];
    try {
      await this.resync(Date.now() + 30_000);
    } catch (cause) {
      this.options.logger.warn('libvirt-resync-failed', { uri: this.uri, error: String(cause) });
      this.markDown(hv, 'resync failed');
      return false;
    }
    this.backoff.reset();
    this.startReconcile();
    this.options.logger.info('libvirt-connected', { uri: this.uri, domains: this.cache.size });
    return true;
  }

  private startReconcile(): void {
    clearInterval(this.reconcileTimer);
    this.reconcileTimer = setInterval(() => {
      if (!this.connected) return;
      this.resync(Date.now() + this.options.reconcileIntervalMs).catch((cause: unknown) =>
        this.options.logger.warn('libvirt-reconcile-failed', {
          uri: this.uri,
          error: String(cause),
        }),
      );
    }, this.options.reconcileIntervalMs);
    this.reconcileTimer.unref();
  }

  /** Full list; differences from the cache become changes. */
  private async resync(deadline: number): Promise<void> {
    const started = this.beginRead();
    try {
      const list = await this.call((hv) => hv.listDomains(), deadline, { reconnect: false });
      const fresh = new Map(list.map((d) => [d.uuid.toLowerCase(), d]));
      for (const uuid of new Set([...this.cache.keys(), ...fresh.keys()])) {
        this.apply(uuid, fresh.get(uuid), started);
      }
    } finally {
      this.endRead();
    }
  }

  private beginRead(): number {
    this.readsInFlight++;
    return ++this.tick;
  }

  private endRead(): void {
    if (--this.readsInFlight > 0) return;
    // No read can be outrun any more: stamps of vanished domains are no longer needed.
    for (const uuid of this.stamps.keys()) if (!this.cache.has(uuid)) this.stamps.delete(uuid);
  }

  /** Records an observation started at `started`, unless an event or later read superseded it. */
  private apply(uuid: string, info: DomainInfo | undefined, started: number): void {
    if ((this.stamps.get(uuid) ?? 0) > started) return;
    this.stamps.set(uuid, started);
    const previous = this.cache.get(uuid);
    if (info) this.cache.set(uuid, { ...info, uuid });
    else this.cache.delete(uuid);
    if (!domainChanged(previous, info)) return;
    const event = syntheticEvent(previous?.state, info?.state);
    this.emit({
      uuid,
      name: info?.name ?? previous?.name ?? '',
      state: info?.state ?? DomainState.SHUTOFF,
      event,
      detail: 0,
      present: info !== undefined,
      uri: this.uri,
      source: 'resync',
    });
  }

  private onEvent(event: LifecycleEvent): void {
    const uuid = event.uuid.toLowerCase();
    this.stamps.set(uuid, ++this.tick);
    const previous = this.cache.get(uuid);
    const state = stateAfterEvent(event.event, previous?.state);
    if (state === undefined) this.cache.delete(uuid);
    else this.cache.set(uuid, { uuid, name: event.name, state, id: previous?.id ?? -1 });
    this.emit({
      uuid,
      name: event.name,
      state: state ?? DomainState.SHUTOFF,
      event: event.event,
      detail: event.detail,
      present: state !== undefined,
      uri: this.uri,
      source: 'event',
    });
    for (const waiter of [...this.waiters]) waiter(uuid);
    // Confirm by lookup (ids, transient domains that vanish on stop); later events win.
    this.refresh(uuid, Date.now() + 10_000).catch(() => undefined);
  }

  private emit(change: DomainChange): void {
    try {
      this.options.onChange(change);
    } catch (cause) {
      this.options.logger.error('domain-change-listener-failed', {
        uri: this.uri,
        error: String(cause),
      });
    }
  }

  private markDown(hv: Hypervisor, why: string): void {
    if (this.hv !== hv) return; // already handled for this connection
    this.detach();
    hv.close().catch(() => undefined);
    this.options.logger.warn('libvirt-disconnected', { uri: this.uri, reason: why });
    this.scheduleReconnect();
  }

  private detach(): Hypervisor | undefined {
    const hv = this.hv;
    this.hv = undefined;
    clearInterval(this.reconcileTimer);
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    return hv;
  }
}
