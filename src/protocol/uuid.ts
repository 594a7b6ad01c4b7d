/** UUID detection as the C suite does it (docs/protocol.md §14.3): 36 chars, 8-4-4-4-12 hex. */
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(text: string): boolean {
  return text.length === 36 && UUID_PATTERN.test(text);
}
