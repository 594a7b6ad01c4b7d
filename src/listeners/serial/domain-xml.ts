/**
 * Finds the guest sockets the serial listener connects to (docs/protocol.md §10.4) in a domain's live XML:
 * `<serial type='unix'>` (mode serial) or `<channel type='unix'>` (mode vmchannel) inside
 * `<devices>`, each with `<source mode='bind' path='P'/>`. A deliberately small extraction for
 * libvirt's own well-formed output: attribute order and quote style do not matter.
 */
import { posix } from 'node:path';

export type SerialMode = 'serial' | 'vmchannel';

const ATTRIBUTE = /([A-Za-z_][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (whole, name: string) => {
    const lower = name.toLowerCase();
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16));
    if (lower.startsWith('#')) return String.fromCodePoint(parseInt(lower.slice(1), 10));
    return ENTITIES[lower] ?? whole;
  });
}

export function parseAttributes(tagText: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const match of tagText.matchAll(ATTRIBUTE)) {
    const [, name, doubleQuoted, singleQuoted] = match;
    if (name !== undefined)
      attributes.set(name, decodeEntities(doubleQuoted ?? singleQuoted ?? ''));
  }
  return attributes;
}

/** Each `<name …>…</name>` element (not self-closing ones: they have no source) as start tag and body. */
function elements(xml: string, name: string): { start: string; body: string }[] {
  const pattern = new RegExp(`<${name}(\\s[^>]*)?(?<!/)>([\\s\\S]*?)</${name}\\s*>`, 'g');
  return Array.from(xml.matchAll(pattern), (m) => ({ start: m[1] ?? '', body: m[2] ?? '' }));
}

function startTags(xml: string, name: string): string[] {
  return Array.from(xml.matchAll(new RegExp(`<${name}(\\s[^>]*?)?/?>`, 'g')), (m) => m[1] ?? '');
}

function devicesSection(xml: string): string {
  const withoutComments = xml.replace(/<!--[\s\S]*?-->/g, '');
  return elements(withoutComments, 'devices')
    .map((d) => d.body)
    .join('\n');
}

/** Unix socket paths QEMU listens on for this mode, in document order, without repeats. */
export function findGuestSockets(xml: string, mode: SerialMode): string[] {
  const element = mode === 'serial' ? 'serial' : 'channel';
  const paths: string[] = [];
  for (const device of elements(devicesSection(xml), element)) {
    if (parseAttributes(device.start).get('type') !== 'unix') continue;
    for (const source of startTags(device.body, 'source')) {
      const attributes = parseAttributes(source);
      const path = attributes.get('path');
      if (attributes.get('mode') === 'bind' && path && !paths.includes(path)) paths.push(path);
    }
  }
  return paths;
}

/** The `path` filter: P must lie directly in the directory (leading/trailing slashes ignored). */
export function inSocketDirectory(socketPath: string, directory: string | undefined): boolean {
  if (directory === undefined || directory === '') return true;
  const trim = (text: string): string => text.replace(/^\/+|\/+$/g, '');
  return trim(posix.dirname(socketPath)) === trim(directory);
}
