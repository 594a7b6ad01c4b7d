/**
 * One line describing whatever was thrown or emitted as an error: an Error's message, an AMQP
 * error's condition and description (rhea emits plain objects), otherwise its text.
 */
export function errText(err: unknown): string {
  if (err === undefined || err === null) return 'unknown';
  if (err instanceof Error) return err.message;
  if (typeof err === 'object') {
    const e = err as { condition?: unknown; description?: unknown; message?: unknown };
    if (e.condition !== undefined || e.description !== undefined) {
      return `${toText(e.condition)} ${toText(e.description)}`.trim();
    }
    if (e.message !== undefined) return toText(e.message);
  }
  return toText(err);
}

/** Text of a value of unknown type (log fields, error parts): strings as they are, objects as JSON. */
export function toText(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'symbol':
      return value.toString();
    case 'undefined':
      return '';
    case 'function':
      return value.name;
    case 'object':
      if (value === null) return '';
      try {
        return JSON.stringify(value);
      } catch {
        return Object.prototype.toString.call(value);
      }
  }
}
