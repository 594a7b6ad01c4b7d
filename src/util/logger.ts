/**
 * Structured logging: one JSON object per line, or a readable line in foreground mode.
 * Callers never pass key material or digests; field names that look like secrets are refused.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | undefined | null>;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /key$|secret|password|digest|hash_value|challenge/i;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: 'json' | 'text';
  write?: (line: string) => void;
  base?: LogFields;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = ORDER[options.level ?? 'info'];
  const format = options.format ?? 'json';
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const base = options.base ?? {};

  function emit(lvl: LogLevel, event: string, fields: LogFields = {}): void {
    if (ORDER[lvl] < level) return;
    const clean: LogFields = {};
    for (const [k, v] of Object.entries({ ...base, ...fields })) {
      if (v === undefined) continue;
      clean[k] = SECRET_FIELD.test(k) ? '[redacted]' : v;
    }
    const time = new Date().toISOString();
    if (format === 'json') {
      write(JSON.stringify({ time, level: lvl, event, ...clean }));
    } else {
      const rest = Object.entries(clean)
        .map(([k, v]) => `${k}=${typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : v}`)
        .join(' ');
      write(`${time} ${lvl.toUpperCase().padEnd(5)} ${event}${rest ? ' ' + rest : ''}`);
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
