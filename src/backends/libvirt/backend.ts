/**
 * The libvirt backend (docs/protocol.md §12, §14.1): fence actions on domains reachable through one or
 * more libvirt URIs. Unlike the C backend it never blocks while libvirt is down: it reconnects
 * in the background and answers FAIL (`libvirt-unavailable`) meanwhile.
 */
import type {
  Backend,
  BackendHealth,
  FenceAction,
  FenceOutcome,
  HostListResult,
  RequestContext,
} from '../backend.js';
import type { LibvirtBackendConfig } from '../../config/types.js';
import type { DomainInfo, Hypervisor } from '../../libvirt/hypervisor.js';
import { DomainState, Response } from '../../protocol/constants.js';
import { sortHostEntries, type HostEntry } from '../../protocol/hostlist.js';
import type { Logger } from '../../util/logger.js';
import {
  Reason,
  classifyTarget,
  isOff,
  matchesTarget,
  offDecision,
  onDecision,
  outcome,
  rebootDecision,
  statusOutcome,
  type Decision,
  type TargetKey,
} from './decisions.js';
import { HypervisorSlot, LibvirtUnavailableError, type DomainChange } from './slot.js';
import { sleep } from '../../util/time.js';

export { Reason, type OutcomeReason } from './decisions.js';
export { LibvirtUnavailableError, type DomainChange } from './slot.js';

export interface LibvirtBackendOptions {
  /** Opens one URI (default: the native binding). */
  open?: (uri: string) => Promise<Hypervisor>;
  /** Keep retrying start-up every `initRetryMs` until one URI answers (fence_virtd -w). */
  waitForInit?: boolean;
  initRetryMs?: number;
  /** Safety-net full list per URI. Default 30 s. */
  reconcileIntervalMs?: number;
  /** How long reboot waits for the destroyed domain to go away. Default 15 s. */
  rebootWaitMs?: number;
  /** Poll period while waiting (events end the wait sooner). Default 1 s. */
  rebootPollMs?: number;
  /** Reconnect backoff: first delay, doubled up to the maximum. Defaults 0.5 s and 5 s. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

/** Once destroyed, a rebooting VM gets at least this long to come back, whatever the deadline. */
const RESTART_CALL_MS = 10_000;

interface Located {
  slot: HypervisorSlot;
  domain: DomainInfo;
}

async function defaultOpen(uri: string): Promise<Hypervisor> {
  const { openHypervisor } = await import('../../libvirt/native.js');
  return openHypervisor(uri);
}

export class LibvirtBackend implements Backend {
  readonly name = 'libvirt';
  private readonly slots: HypervisorSlot[];
  private readonly listeners = new Set<(change: DomainChange) => void>();
  private readonly rebootWaitMs: number;
  private readonly rebootPollMs: number;
  private stopping = false;

  constructor(
    private readonly config: LibvirtBackendConfig,
    private readonly logger: Logger,
    private readonly options: LibvirtBackendOptions = {},
  ) {
    this.rebootWaitMs = options.rebootWaitMs ?? 15_000;
    this.rebootPollMs = options.rebootPollMs ?? 1000;
    const open = options.open ?? defaultOpen;
    this.slots = config.uris.map(
      (uri) =>
        new HypervisorSlot(uri, {
          open,
          logger,
          reconcileIntervalMs: options.reconcileIntervalMs ?? 30_000,
          backoffMinMs: options.backoffMinMs ?? 500,
          backoffMaxMs: options.backoffMaxMs ?? 5000,
          onChange: (change) => this.emitChange(change),
        }),
    );
  }

  /** Connects every URI; fails with "Could not connect to any hypervisors" if none answers. */
  async start(): Promise<void> {
    for (;;) {
      const results = await Promise.all(this.slots.map((slot) => slot.connect()));
      if (results.some(Boolean)) {
        // URIs down at start-up are retried in the background, not dropped as C does.
        this.slots.forEach((slot, i) => results[i] || slot.scheduleReconnect());
        return;
      }
      if (!this.options.waitForInit || this.slots.length === 0 || this.stopping) {
        throw new Error('Could not connect to any hypervisors');
      }
      this.logger.warn('libvirt-init-retry', { uris: this.config.uris.join(' ') });
      await sleep(this.options.initRetryMs ?? 5000);
    }
  }

  health(): BackendHealth {
    const libvirt = this.slots.map((slot) => ({ uri: slot.uri, connected: slot.connected }));
    const serving = libvirt.some((l) => l.connected);
    return {
      serving,
      ...(serving ? {} : { waitingFor: `libvirt (${this.config.uris.join(' ') || 'no uri'})` }),
      libvirt,
    };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.slots.map((slot) => slot.stop()));
  }

  async fence(action: FenceAction, target: string, ctx: RequestContext): Promise<FenceOutcome> {
    try {
      switch (action) {
        case 'null':
          return outcome(Response.FAIL, Reason.NO_HANDLER);
        case 'devstatus':
          return outcome(Response.SUCCESS, Reason.OK);
        case 'status':
          return await this.status(target, ctx);
        case 'off':
        case 'on':
        case 'reboot':
          return await this.power(action, target, ctx);
        default:
          return outcome(Response.FAIL, Reason.NO_HANDLER);
      }
    } catch (cause) {
      if (cause instanceof LibvirtUnavailableError)
        return outcome(Response.FAIL, Reason.UNAVAILABLE);
      throw cause;
    }
  }

  /** Every domain of every reachable URI, concatenated (the C backend lost all but the last URI). */
  async hostlist(ctx: RequestContext): Promise<HostListResult> {
    const entries: HostEntry[] = [];
    let reachable = 0;
    for (const slot of this.slots) {
      try {
        const list = await slot.call((hv) => hv.listDomains(), ctx.deadline);
        reachable++;
        entries.push(...list.map(({ name, uuid, state }) => ({ name, uuid, state })));
      } catch (cause) {
        this.logger.warn('libvirt-list-failed', {
          id: ctx.id,
          uri: slot.uri,
          error: String(cause),
        });
      }
    }
    if (reachable === 0)
      throw new LibvirtUnavailableError(this.config.uris.join(' '), 'no URI reachable');
    return { entries: sortHostEntries(entries), code: 0 };
  }

  /** The cached domains of all connected URIs, in URI order. */
  domains(): DomainInfo[] {
    return this.slots.flatMap((slot) => slot.domains());
  }

  /** Cache lookup with the fencing rules for targets (UUID case-insensitive, name exact). */
  findLocal(target: string): DomainInfo | undefined {
    const key = classifyTarget(target);
    for (const slot of this.slots) {
      const hit =
        key.by === 'uuid'
          ? slot.cached(key.uuid)
          : slot.domains().find((d) => matchesTarget(d, key));
      if (hit) return hit;
    }
    return undefined;
  }

  /** Lifecycle events and resync differences of every URI; returns an unsubscribe function. */
  onDomainChange(listener: (change: DomainChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emitChange(change: DomainChange): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(change);
      } catch (cause) {
        this.logger.error('domain-change-listener-failed', {
          uuid: change.uuid,
          error: String(cause),
        });
      }
    }
  }

  private async status(target: string, ctx: RequestContext): Promise<FenceOutcome> {
    // A VM the event-driven cache of a connected URI holds as running answers ON at once
    // (Pacemaker's monitor path). A stale ON only delays a fence; OFF or unknown is never taken
    // from the cache but confirmed by libvirt.
    const cached = this.findLocal(target);
    if (cached && !isOff(cached)) return statusOutcome(cached);
    return this.liveStatus(target, ctx);
  }

  /** Status from a fresh libvirt lookup, never from the cache: confirms what an action did. */
  async liveStatus(target: string, ctx: RequestContext): Promise<FenceOutcome> {
    const found = await this.locate(target, ctx);
    return statusOutcome(found?.domain);
  }

  private async power(
    action: 'off' | 'on' | 'reboot',
    target: string,
    ctx: RequestContext,
  ): Promise<FenceOutcome> {
    const found = await this.locate(target, ctx);
    const decide = { off: offDecision, on: onDecision, reboot: rebootDecision }[action];
    const decision: Decision = decide(found?.domain);
    if ('done' in decision) return decision.done;
    if (!found) return outcome(Response.FAIL, Reason.NOT_FOUND); // decisions act only on a found domain
    const fields = {
      id: ctx.id,
      domain: found.domain.name,
      uuid: found.domain.uuid,
      uri: found.slot.uri,
    };
    switch (decision.act) {
      case 'destroy':
        this.logger.info('domain-destroying', fields);
        return this.destroy(found, ctx.deadline, fields);
      case 'start':
        this.logger.info('domain-starting', fields);
        try {
          await found.slot.call((hv) => hv.create(found.domain.uuid), ctx.deadline);
          return outcome(Response.SUCCESS, Reason.OK);
        } catch (cause) {
          if (cause instanceof LibvirtUnavailableError) throw cause;
          this.logger.error('domain-start-failed', { ...fields, error: String(cause) });
          return outcome(Response.FAIL, Reason.START_FAILED);
        }
      case 'reboot':
        this.logger.info('domain-rebooting', fields);
        return this.reboot(found, ctx, fields);
    }
  }

  private async destroy(
    found: Located,
    deadline: number,
    fields: Record<string, string>,
  ): Promise<FenceOutcome> {
    try {
      await found.slot.call((hv) => hv.destroy(found.domain.uuid), deadline);
      return outcome(Response.SUCCESS, Reason.OK);
    } catch (cause) {
      if (cause instanceof LibvirtUnavailableError) throw cause;
      this.logger.error('domain-destroy-failed', { ...fields, error: String(cause) });
      return outcome(Response.FAIL, Reason.DESTROY_FAILED);
    }
  }

  /** docs/protocol.md §14.1: live XML, destroy, wait until gone or SHUTOFF, create from XML, else create. */
  private async reboot(
    found: Located,
    ctx: RequestContext,
    fields: Record<string, string>,
  ): Promise<FenceOutcome> {
    const { slot, domain } = found;
    let xml: string | undefined;
    try {
      xml = await slot.call((hv) => hv.getXml(domain.uuid, 0), ctx.deadline);
    } catch (cause) {
      if (cause instanceof LibvirtUnavailableError) throw cause;
      this.logger.warn('domain-xml-failed', { ...fields, error: String(cause) });
    }
    const destroyed = await this.destroy(found, ctx.deadline, fields);
    if (destroyed.code !== Response.SUCCESS) return destroyed;

    if (!(await this.waitUntilOff(slot, domain.uuid))) {
      this.logger.error('domain-still-exists', fields);
      return outcome(Response.FAIL, Reason.STILL_RUNNING);
    }
    // From here the VM is off: bring it back even if the requester has given up.
    const restartDeadline = Math.max(ctx.deadline, Date.now() + RESTART_CALL_MS);
    if (xml !== undefined) {
      try {
        await slot.call((hv) => hv.createXml(xml), restartDeadline);
        return outcome(Response.SUCCESS, Reason.OK);
      } catch (cause) {
        this.logger.warn('domain-create-xml-failed', {
          ...fields,
          error: String(cause),
        });
      }
    }
    try {
      await slot.call((hv) => hv.create(domain.uuid), restartDeadline);
      return outcome(Response.SUCCESS, Reason.OK);
    } catch (cause) {
      // "'on' is not a failure": the fence (off) part succeeded.
      this.logger.error('domain-restart-failed', {
        ...fields,
        error: String(cause),
      });
      return outcome(Response.SUCCESS, Reason.START_FAILED);
    }
  }

  /** Checks at once, then on each event for the domain or every poll period, up to rebootWaitMs. */
  private async waitUntilOff(slot: HypervisorSlot, uuid: string): Promise<boolean> {
    const until = Date.now() + this.rebootWaitMs;
    for (;;) {
      try {
        const now = await slot.refresh(uuid, Math.max(until, Date.now() + 1000));
        if (!now || now.state === DomainState.SHUTOFF) return true;
      } catch (cause) {
        this.logger.warn('reboot-wait-lookup-failed', { uuid, error: String(cause) });
      }
      const left = until - Date.now();
      if (left <= 0 || this.stopping) return false;
      await slot.waitForEvent(uuid, Math.min(this.rebootPollMs, left));
    }
  }

  /**
   * Connections in order, first hit wins. Not found anywhere while some URI is down means we
   * cannot tell: that is `libvirt-unavailable`, never "not found".
   */
  private async locate(target: string, ctx: RequestContext): Promise<Located | undefined> {
    const key = classifyTarget(target);
    let unavailable = 0;
    for (const slot of this.slots) {
      try {
        const domain = await slot.call((hv) => lookup(hv, key), ctx.deadline);
        if (domain) return { slot, domain };
      } catch (cause) {
        unavailable++;
        const level = cause instanceof LibvirtUnavailableError ? 'debug' : 'warn';
        this.logger[level]('libvirt-lookup-failed', {
          id: ctx.id,
          uri: slot.uri,
          error: String(cause),
        });
      }
    }
    if (unavailable > 0 || this.slots.length === 0) {
      throw new LibvirtUnavailableError(this.config.uris.join(' '), 'lookup incomplete');
    }
    return undefined;
  }
}

function lookup(hv: Hypervisor, key: TargetKey): Promise<DomainInfo | undefined> {
  return key.by === 'uuid' ? hv.lookupByUuid(key.uuid) : hv.lookupByName(key.name);
}
