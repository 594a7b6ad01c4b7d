/**
 * Canonical JSON: the byte string a message signature covers.
 *
 * - Objects: keys sorted by UTF-16 code units (JavaScript's default sort, as RFC 8785 / JCS),
 *   members whose value is `undefined` left out.
 * - Arrays: in order. Strings: JSON.stringify escaping. Numbers: JSON.stringify (ECMAScript
 *   shortest form; our messages only carry integers). true, false, null as usual.
 * - No whitespace anywhere. Encoded as UTF-8.
 * Non-finite numbers, bigints, functions and symbols are refused (they have no JSON form).
 * Nesting deeper than MAX_CANONICAL_DEPTH is refused with a CanonicalDepthError before the
 * stack can overflow (receivers check the depth of the raw text first, see sign.ts).
 */
export const MAX_CANONICAL_DEPTH = 64;

export class CanonicalDepthError extends TypeError {
  constructor() {
    super(`canonicalJson: nested deeper than ${MAX_CANONICAL_DEPTH} levels`);
  }
}

export function canonicalJson(value: unknown, depth = 0): string {
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
      if (depth >= MAX_CANONICAL_DEPTH) throw new CanonicalDepthError();
      if (Array.isArray(value)) {
        return (
          '[' +
          value
            .map((item) => canonicalJson(item === undefined ? null : item, depth + 1))
            .join(',') +
          ']'
        );
      }
      const record = value as Record<string, unknown>;
      const parts: string[] = [];
      for (const key of Object.keys(record).sort()) {
        const item = record[key];
        if (item === undefined) continue;
        parts.push(JSON.stringify(key) + ':' + canonicalJson(item, depth + 1));
      }
      return '{' + parts.join(',') + '}';
    }
    default:
      throw new TypeError(`canonicalJson: cannot encode a ${typeof value}`);
  }
}
