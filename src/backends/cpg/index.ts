/**
 * `backend = "cpg"`: the routed backend of `amqp` (ownership table, liveness, evidence,
 * exactly-once, every safety rule: ../amqp/routed-backend.ts) carried over a corosync CPG group.
 *
 *   backends {
 *     cpg {
 *       uri = "qemu:///system";     # uri1, …: this host's libvirt (C's keys)
 *       name_mode = "uuid";         # C's key: targets are UUIDs (or "name")
 *       group = "virtfence";        # ours: CPG group
 *       host_id = "hv1";            # ours: default the host name
 *     }
 *   }
 *
 * Membership is liveness: a host that leaves the group is dead at once. Leaving is not
 * evidence of fencing (see fence-history.ts for what is).
 */
import { createHash } from 'node:crypto';
import type {
  Backend,
  FenceAction,
  FenceOutcome,
  HostListResult,
  RequestContext,
} from '../backend.js';
import { LibvirtBackend } from '../libvirt/backend.js';
import { RoutedBackend } from '../amqp/routed-backend.js';
import { readClusterKey } from '../../messages/sign.js';
import { isUuid } from '../../protocol/uuid.js';
import { Response } from '../../protocol/constants.js';
import type { Logger } from '../../util/logger.js';
import { CpgBus, type CpgOpen } from './bus.js';
import { clusterKeySource, parseCpgConfigOrThrow, type CpgConfig } from './config.js';
import {
  fencedAfter,
  parseFenceHistory,
  stonithAdminHistory,
  type HistoryRunner,
} from './fence-history.js';
import { loadCpgAddon } from './native.js';

export interface CpgBackendDeps {
  logger: Logger;
  hostname?: string;
  listeners?: string[];
  /** `fence_virtd/name_mode`, C's legacy place for the key. */
  legacyNameMode?: string;
  /** For tests: another CPG opener, another history runner. */
  open?: CpgOpen;
  history?: HistoryRunner;
  /** How often a departed host's fencing is looked up in Pacemaker's history. Default 2000. */
  historyPollMs?: number;
}

/** Configuration errors throw here; corosync and libvirt are reached in start(). */
export function createCpgBackend(block: Record<string, string>, deps: CpgBackendDeps): CpgBackend {
  const { config, unknownKeys } = parseCpgConfigOrThrow(block, {
    ...(deps.legacyNameMode !== undefined ? { legacyNameMode: deps.legacyNameMode } : {}),
    ...(deps.hostname !== undefined ? { hostId: deps.hostname } : {}),
  });
  if (unknownKeys.length > 0) deps.logger.warn('cpg-unknown-keys', { keys: unknownKeys.join(',') });
  return new CpgBackend(config, deps);
}

/** Without any key file the envelopes still carry a MAC, but one anybody can compute. */
export function groupOnlyKey(group: string): Buffer {
  return createHash('sha256').update(`virtfence-cpg-unkeyed:${group}`).digest();
}

export class CpgBackend implements Backend {
  readonly name = 'cpg';
  private inner: RoutedBackend | undefined;
  private bus: CpgBus | undefined;
  private readonly log: Logger;
  private historyTimer: NodeJS.Timeout | undefined;
  private readonly departed = new Set<string>();

  constructor(
    readonly config: CpgConfig,
    private readonly deps: CpgBackendDeps,
  ) {
    this.log = deps.logger.child({ backend: 'cpg' });
  }

  get routed(): RoutedBackend | undefined {
    return this.inner;
  }

  get cpgBus(): CpgBus | undefined {
    return this.bus;
  }

  async start(): Promise<void> {
    const c = this.config;
    const source = clusterKeySource(c);
    let key: Buffer;
    if (source) {
      key = await readClusterKey(source.path);
    } else {
      key = groupOnlyKey(c.group);
      this.log.warn('cpg-unkeyed', {
        detail:
          'no key_file and no corosync authkey: messages are protected by corosync alone ' +
          '(any process allowed to use corosync could forge a fence reply)',
      });
    }
    const open = this.deps.open ?? ((g, onEvent) => loadCpgAddon().open(g, onEvent));
    this.bus = new CpgBus({
      group: c.group,
      hostId: c.hostId,
      key,
      open,
      logger: this.deps.logger,
    });
    const local = new LibvirtBackend({ uris: c.uris }, this.deps.logger, { waitForInit: false });
    this.inner = new RoutedBackend(local, this.bus, {
      hostId: c.hostId,
      heartbeatIntervalMs: c.heartbeatInterval,
      deadAfterMs: c.deadAfter,
      ...(c.hosts !== undefined ? { hosts: c.hosts } : {}),
      listeners: this.deps.listeners ?? [],
      logger: this.deps.logger,
    });
    this.log.info('cpg-backend', {
      host_id: c.hostId,
      group: c.group,
      name_mode: c.nameMode,
      uris: c.uris.join(' '),
      key: source ? source.path : 'none',
      heartbeat_interval: c.heartbeatInterval,
      dead_after: c.deadAfter,
      hosts: c.hosts?.join(',') ?? '',
      fence_history: c.fenceHistory,
    });
    if (c.fenceHistory === 'pacemaker') {
      this.bus.onMembership((change) => {
        for (const h of change.left) this.departed.add(h);
        this.scheduleHistory(0);
      });
    }
    await this.inner.start();
  }

  async stop(): Promise<void> {
    if (this.historyTimer) clearTimeout(this.historyTimer);
    this.historyTimer = undefined;
    this.departed.clear();
    await this.inner?.stop();
  }

  /**
   * C's name_mode: in `uuid` mode targets are UUIDs, in `name` mode names; C looks a target of
   * the other kind up as "found nowhere" and then answers off/reboot with success. Ours refuses
   * it (FAIL `name-mode`): a target we would not look up is never reported off.
   */
  private nameModeRefuses(target: string): boolean {
    return this.config.nameMode === 'uuid' ? !isUuid(target) : isUuid(target);
  }

  fence(action: FenceAction, target: string, ctx: RequestContext): Promise<FenceOutcome> {
    const checked =
      action === 'off' || action === 'on' || action === 'reboot' || action === 'status';
    if (checked && this.nameModeRefuses(target)) {
      this.log.warn('fence', {
        ctx: ctx.id,
        action,
        target,
        code: Response.FAIL,
        reason: 'name-mode',
        name_mode: this.config.nameMode,
      });
      return Promise.resolve({ code: Response.FAIL, reason: 'name-mode' });
    }
    if (!this.inner) return Promise.resolve({ code: Response.FAIL, reason: 'backend-not-started' });
    return this.inner.fence(action, target, ctx);
  }

  hostlist(ctx: RequestContext): Promise<HostListResult> {
    if (!this.inner) return Promise.resolve({ entries: [], code: Response.FAIL });
    return this.inner.hostlist(ctx);
  }

  // ------------------------------------------------------------------------------------
  // Pacemaker's fencer history as evidence (fence_history = "pacemaker")

  private scheduleHistory(delay: number): void {
    if (this.historyTimer || this.departed.size === 0) return;
    this.historyTimer = setTimeout(() => {
      this.historyTimer = undefined;
      void this.checkHistory().finally(() => this.scheduleHistory(this.deps.historyPollMs ?? 2000));
    }, delay);
    this.historyTimer.unref?.();
  }

  /** Looks up each departed host once; evidence found is applied to our table only. */
  async checkHistory(): Promise<void> {
    const routed = this.inner;
    if (!routed) return;
    const run = this.deps.history ?? stonithAdminHistory;
    const now = Date.now();
    for (const host of [...this.departed]) {
      const info = routed.table.hostInfo(host, now);
      if (info.liveness === 'alive') {
        this.departed.delete(host);
        continue;
      }
      if (info.fenced) continue;
      let xml: string;
      try {
        xml = await run(host);
      } catch (err) {
        this.log.warn('fence-history-failed', {
          peer: host,
          error: err instanceof Error ? err.message.split('\n')[0] : String(err),
        });
        continue;
      }
      // The newest successful power-off; the table itself ignores evidence older than the
      // host's last heartbeat (a host that beat after being fenced has come back).
      const ev = fencedAfter(parseFenceHistory(xml), host, 0);
      if (!ev || ev.completed === undefined) continue;
      const r = routed.table.applyEvidence(
        { host, fencedAt: ev.completed, by: `pacemaker:${ev.delegate ?? ev.origin ?? 'fencer'}` },
        Date.now(),
      );
      this.log.warn('host-fenced-evidence', {
        peer: host,
        by: `pacemaker:${ev.delegate ?? ev.origin ?? 'fencer'}`,
        action: ev.action,
        fenced_at: ev.completed,
        applied: r,
        fenced: routed.table.isFenced(host, Date.now()),
      });
    }
  }
}
