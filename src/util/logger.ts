/**
 * Structured logging: one JSON object per line, or a readable line in foreground mode.
 * Callers never pass key material or digests; field names that look like secrets are refused.
 * Control characters (C0, DEL, C1, line/paragraph separators, bidirectional overrides) never
 * reach the output raw in either format: a name sent by a guest cannot forge log lines or
 * drive a terminal.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | undefined | null>;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /key$|secret|password|digest|hash_value|challenge/i;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  /**
   * Optional: told of every event that createRateLimitedLog handles, logged or suppressed, just
   * before it logs (the daemon's metrics count drops exactly through it).
   */
  countDrop?(event: string, reason: string): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: 'json' | 'text';
  write?: (line: string) => void;
  base?: LogFields;
}

function escapeChar(c: string): string {
  return '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
}

/** Every control character as a \uXXXX escape (valid inside JSON strings too). */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, escapeChar);
}

function textValue(v: string | number | boolean | null): string {
  if (typeof v !== 'string') return String(v);
  // Quote anything that could be mistaken for another field or line; JSON.stringify escapes
  // C0 controls and quotes, escapeControl the rest.
  return escapeControl(/[\s"=\\]/.test(v) || v === '' ? JSON.stringify(v) : v);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = ORDER[options.level ?? 'info'];
  const format = options.format ?? 'json';
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const base = options.base ?? {};

  function emit(lvl: LogLevel, event: string, fields: LogFields = {}): void {
    if (ORDER[lvl] < level) return;
    const clean: Record<string, string | number | boolean | null> = {};
    for (const [k, v] of Object.entries({ ...base, ...fields })) {
      if (v === undefined) continue;
      clean[k] = SECRET_FIELD.test(k) ? '[redacted]' : v;
    }
    const time = new Date().toISOString();
    if (format === 'json') {
      write(escapeControl(JSON.stringify({ time, level: lvl, event, ...clean })));
    } else {
      const rest = Object.entries(clean)
        .map(([k, v]) => `${escapeControl(k)}=${textValue(v)}`)
        .join(' ');
      write(
        `${time} ${lvl.toUpperCase().padEnd(5)} ${escapeControl(event)}${rest ? ' ' + rest : ''}`,
      );
    }
  }

  return {
    debug: (e, f) => emit('debug', e, f),
    info: (e, f) => emit('info', e, f),
    warn: (e, f) => emit('warn', e, f),
    error: (e, f) => emit('error', e, f),
    child: (fields) => createLogger({ ...options, base: { ...base, ...fields } }),
  };
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = createLogger({ write: () => undefined });

export const DEFAULT_DROP_LOG_INTERVAL_MS = 10_000;

/**
 * Logging of input nobody has authenticated yet (dropped packets, refused connections, failed
 * callbacks): the first occurrence of each (event, reason) in an interval is logged in full;
 * later ones in the same interval are only counted, and one summary line per (event, reason)
 * reports the count when the interval ends (`suppressed`, `interval_ms`). A flood therefore
 * costs at most two lines per reason per interval, whatever its rate.
 */
export interface RateLimitedLog {
  log(level: LogLevel, event: string, reason: string, fields?: LogFields): void;
  /** Write pending summaries now and cancel timers (listener stop). */
  flush(): void;
  /** Events seen per `event:reason`, logged or not. */
  readonly counts: ReadonlyMap<string, number>;
}

interface Slot {
  level: LogLevel;
  event: string;
  reason: string;
  suppressed: number;
  timer: NodeJS.Timeout;
}

export function createRateLimitedLog(
  logger: Logger,
  intervalMs: number = DEFAULT_DROP_LOG_INTERVAL_MS,
): RateLimitedLog {
  const slots = new Map<string, Slot>();
  const counts = new Map<string, number>();
  const summarise = (key: string): void => {
    const slot = slots.get(key);
    if (!slot) return;
    slots.delete(key);
    clearTimeout(slot.timer);
    if (slot.suppressed > 0) {
      logger[slot.level](slot.event, {
        reason: slot.reason,
        suppressed: slot.suppressed,
        interval_ms: intervalMs,
      });
    }
  };
  return {
    counts,
    log(level, event, reason, fields = {}) {
      const key = `${event}:${reason}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      logger.countDrop?.(event, reason);
      const slot = slots.get(key);
      if (slot) {
        slot.suppressed++;
        return;
      }
      logger[level](event, { ...fields, reason });
      const timer = setTimeout(() => summarise(key), intervalMs);
      timer.unref();
      slots.set(key, { level, event, reason, suppressed: 0, timer });
    },
    flush() {
      for (const key of [...slots.keys()]) summarise(key);
    },
  };
}
