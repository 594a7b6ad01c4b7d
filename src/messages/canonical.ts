/**
 * Canonical JSON: the byte string a message signature covers.
 *
 * - Objects: keys sorted by UTF-16 code units (JavaScript's default sort, as RFC 8785 / JCS),
 *   members whose value is `undefined` left out.
 * - Arrays: in order. Strings: JSON.stringify escaping. Numbers: JSON.stringify (ECMAScript
 *   shortest form; our messages only carry integers). true, false, null as usual.
 * - No whitespace anywhere. Encoded as UTF-8.
 * Non-finite numbers, bigints, functions and symbols are refused (they have no JSON form).
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) {
        return (
          '[' + value.map((item) => canonicalJson(item === undefined ? null : item)).join(',') + ']'
        );
      }
      const record = value as Record<string, unknown>;
      const parts: string[] = [];
      for (const key of Object.keys(record).sort()) {
        const item = record[key];
        if (item === undefined) continue;
        parts.push(JSON.stringify(key) + ':' + canonicalJson(item));
      }
      return '{' + parts.join(',') + '}';
    }
    default:
      throw new TypeError(`canonicalJson: cannot encode a ${typeof value}`);
  }
}
