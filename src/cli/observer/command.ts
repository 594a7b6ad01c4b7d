/**
 * The base of the broker-facing commands: resolves broker settings (config + flags), joins the
 * cluster as an observer, asks every host for its inventory, listens for `--wait`, and always
 * disconnects. A progress line goes to stderr while waiting (not with --json).
 */
import { BaseCommand } from '../base.js';
import { pruneCache, readCache, writeCache } from './cache.js';
import { ClusterObserver, ObserverError, safeUrl } from './observer.js';
import {
  SettingsError,
  resolveBrokerSettings,
  type BrokerFlagValues,
  type BrokerSettings,
} from './settings.js';
import { errText } from '../../util/errors.js';
import { sleep } from '../../util/time.js';

export abstract class BrokerCommand extends BaseCommand {
  /** A line on stderr for people (nothing with --json). */
  protected progress(text: string): void {
    if (!this.jsonEnabled()) process.stderr.write(`${text}\n`);
  }

  protected async brokerSettings(flags: BrokerFlagValues): Promise<BrokerSettings> {
    try {
      return await resolveBrokerSettings(flags, (file) => {
        const { config } = this.loadConfig(file);
        return { tree: config.tree, groups: config.groups };
      });
    } catch (error) {
      if (error instanceof SettingsError) this.fail(error.message);
      throw error;
    }
  }

  /**
   * Connects, optionally asks for inventories, listens `waitMs`, runs `fn` with the observer
   * still connected, and disconnects whatever happens.
   */
  protected async withObserver<T>(
    settings: BrokerSettings,
    options: {
      waitMs: number;
      resync?: boolean;
      what?: string;
      verifyTap?: boolean;
      replyQueue?: boolean;
    },
    fn: (observer: ClusterObserver) => Promise<T>,
  ): Promise<T> {
    const observer = new ClusterObserver(settings, { replyQueue: options.replyQueue ?? false });
    const cache = settings.cacheFile;
    if (cache) {
      const content = readCache(cache, settings.amqp.cluster);
      if (content) observer.restore(pruneCache(content, Date.now()));
    }
    let connected = false;
    try {
      try {
        await observer.start();
        connected = true;
        if (options.verifyTap) await observer.startVerifyTap();
        if (options.resync !== false) await observer.requestResync();
      } catch (error) {
        if (error instanceof ObserverError) this.fail(error.message);
        throw error;
      }
      if (options.waitMs > 0) {
        this.progress(
          `Listening to cluster ${settings.amqp.cluster} on ${safeUrl(observer.bus.stats().url ?? '')}` +
            ` for ${(options.waitMs / 1000).toFixed(1)} s${options.what ? ` (${options.what})` : ''}…`,
        );
        await sleep(options.waitMs);
        if (!observer.bus.connected) {
          // What was heard may be partial: better no answer than a wrong one.
          this.fail(
            `lost the broker connection while listening (${observer.bus.stats().lastError ?? 'unknown'})`,
          );
        }
      }
      return await fn(observer);
    } finally {
      await observer.stop().catch(() => undefined);
      if (cache && connected) {
        try {
          writeCache(cache, settings.amqp.cluster, observer.snapshot(), Date.now());
        } catch (error) {
          this.warn(`cannot write ${cache}: ${errText(error)}`);
        }
      }
    }
  }
}

export { sleep };
