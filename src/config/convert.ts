/**
 * `virtfence config convert`: turns a cluster.conf `<fence_xvmd …/>` element, or an existing
 * fence_virt.conf (e.g. Debian's sample), into a normalised fence_virt.conf, and says what was
 * kept, mapped to a new place, added, or dropped.
 */
import { dumpConfig } from './dump.js';
import { emptyConfig, setConfigValue } from './edit.js';
import { ignoredItems } from './known-keys.js';
import { childrenNamed, lookupBlock, lookupValue } from './lookup.js';
import { parseConfig } from './parser.js';
import { ConfigError, validateConfig } from './schema.js';
import type { ConfigBlock, ConfigNode, ConfigValue } from './tree.js';

export interface ConversionEntry {
  /** Where the setting came from (attribute or key path); absent for added defaults. */
  from?: string;
  /** Where it went; absent when dropped. */
  to?: string;
  /** The value, masked for secrets. */
  value?: string;
  reason?: string;
}

export interface Conversion {
  source: 'cluster.conf' | 'fence_virt.conf';
  tree: ConfigBlock;
  text: string;
  kept: ConversionEntry[];
  mapped: ConversionEntry[];
  added: ConversionEntry[];
  dropped: ConversionEntry[];
}

const SECRET_KEY = /password|secret/i;
/** `a/b/key` → `a/b/@key`, the form lookups and edits take. */
const valuePath = (keyPath: string): string => keyPath.replace(/\/([^/]+)$/, '/@$1');
const shown = (key: string, value: string): string => (SECRET_KEY.test(key) ? '********' : value);

/** cluster.conf `<fence_xvmd>` attributes and where they live in fence_virt.conf. */
const FENCE_XVMD_MAP: Record<string, string> = {
  key_file: 'listeners/multicast/@key_file',
  multicast_address: 'listeners/multicast/@address',
  port: 'listeners/multicast/@port',
  family: 'listeners/multicast/@family',
  auth: 'listeners/multicast/@auth',
  hash: 'listeners/multicast/@hash',
  multicast_interface: 'listeners/multicast/@interface',
  debug: 'fence_virtd/@debug',
};

const XML_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
};

function decodeXml(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (whole, entity: string) => {
    if (entity.startsWith('#x') || entity.startsWith('#X')) {
      return String.fromCodePoint(parseInt(entity.slice(2), 16));
    }
    if (entity.startsWith('#')) return String.fromCodePoint(parseInt(entity.slice(1), 10));
    return XML_ENTITIES[entity.toLowerCase()] ?? whole;
  });
}

/** Attributes of the first `<fence_xvmd>` element, comments ignored. */
export function fenceXvmdAttributes(xml: string): Record<string, string> | undefined {
  const withoutComments = xml.replace(/<!--[\s\S]*?-->/g, '');
  const element = /<fence_xvmd\b((?:[^>"']|"[^"]*"|'[^']*')*)>/.exec(withoutComments);
  if (!element) return undefined;
  const attributes: Record<string, string> = {};
  for (const match of (element[1] ?? '').matchAll(/([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    attributes[match[1] as string] = decodeXml(match[2] ?? match[3] ?? '');
  }
  return attributes;
}

const TOP_ORDER = ['fence_virtd', 'listeners', 'backends', 'groups'];

function finish(
  source: Conversion['source'],
  tree: ConfigBlock,
  parts: Omit<Conversion, 'source' | 'tree' | 'text'>,
): Conversion {
  const rank = (name: string): number => TOP_ORDER.indexOf(name.toLowerCase());
  tree.children.sort((a, b) => rank(a.name) - rank(b.name));
  return { source, tree, text: dumpConfig(tree, { order: 'file' }), ...parts };
}

/** Converts cluster.conf text holding a `<fence_xvmd …/>` element. */
export function convertClusterConf(xml: string, fileName = '<cluster.conf>'): Conversion {
  const attributes = fenceXvmdAttributes(xml);
  if (!attributes) throw new Error(`${fileName}: no <fence_xvmd> element found`);
  const tree = emptyConfig();
  const mapped: ConversionEntry[] = [];
  const dropped: ConversionEntry[] = [];
  const added: ConversionEntry[] = [
    { to: 'fence_virtd/listener', value: 'multicast', reason: 'fence_xvmd served multicast' },
    {
      to: 'fence_virtd/backend',
      value: 'libvirt',
      reason: 'acts on this host only; for migrating guests choose amqp with virtfence config init',
    },
    { to: 'backends/libvirt/uri', value: 'qemu:///system', reason: 'the local hypervisor' },
  ];
  for (const entry of added) setConfigValue(tree, valuePath(entry.to ?? ''), entry.value);
  for (const [name, value] of Object.entries(attributes)) {
    const target = FENCE_XVMD_MAP[name.toLowerCase()];
    if (!target) {
      dropped.push({ from: name, value, reason: 'no equivalent in fence_virtd' });
      continue;
    }
    setConfigValue(tree, target, value);
    mapped.push({ from: name, to: target.replace('/@', '/'), value });
  }
  dropInvalid(tree, mapped, dropped, fileName);
  return finish('cluster.conf', tree, { kept: [], mapped, added, dropped });
}

/** Removes converted values the schema rejects, reporting why; repeats until valid. */
function dropInvalid(
  tree: ConfigBlock,
  mapped: ConversionEntry[],
  dropped: ConversionEntry[],
  fileName: string,
): void {
  for (;;) {
    try {
      validateConfig(tree, fileName);
      return;
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      const removable = error.problems.filter((p) => mapped.some((m) => m.to === p.path));
      if (removable.length === 0) throw error;
      for (const problem of removable) {
        const index = mapped.findIndex((m) => m.to === problem.path);
        const [entry] = mapped.splice(index, 1);
        setConfigValue(tree, valuePath(problem.path), undefined);
        dropped.push({ from: entry?.from, value: entry?.value, reason: problem.message });
      }
    }
  }
}

/** Legacy keys that moved: old path → new path. */
const LEGACY_KEYS: Record<string, string> = {
  'fence_virtd/wait_for_backend': 'fence_virtd/wait_for_init',
  'fence_virtd/name_mode': 'backends/cpg/name_mode',
};

/** Blocks copied in this order; within a block, the effective values in file order. */
const BLOCK_ORDER = [
  'fence_virtd',
  'listeners/multicast',
  'listeners/tcp',
  'listeners/serial',
  'listeners/vsock',
  'backends/libvirt',
  'backends/cpg',
  'backends/amqp',
];

function effectiveValues(block: ConfigBlock, ignored: Set<ConfigNode>): ConfigValue[] {
  return block.children.filter((c): c is ConfigValue => c.kind === 'value' && !ignored.has(c));
}

/** Normalises a fence_virt.conf: no duplicates, no unknown keys, legacy keys moved. */
export function normaliseFenceVirtConf(text: string, fileName = '<fence_virt.conf>'): Conversion {
  const source = parseConfig(text, fileName);
  validateConfig(source, fileName);
  const ignored = ignoredItems(source);
  const ignoredNodes = new Set(ignored.map((i) => i.node));
  const tree = emptyConfig();
  const kept: ConversionEntry[] = [];
  const mapped: ConversionEntry[] = [];
  const dropped: ConversionEntry[] = ignored.map((i) => ({
    from: i.path,
    // Values of unknown keys are not shown: they may be misspelt secrets.
    ...(i.node.kind === 'value' && i.reason !== 'unknown'
      ? { value: shown(i.node.name, i.node.value) }
      : {}),
    reason: i.text,
  }));
  for (const blockPath of BLOCK_ORDER) {
    const block = lookupBlock(source, blockPath);
    if (!block) continue;
    for (const value of effectiveValues(block, ignoredNodes)) {
      const from = `${blockPath}/${value.name.toLowerCase()}`;
      const to = LEGACY_KEYS[from];
      if (to && lookupValue(source, valuePath(to)) === undefined) {
        setConfigValue(tree, valuePath(to), value.value);
        mapped.push({ from, to, value: shown(value.name, value.value) });
      } else if (to) {
        const reason = `${to} is set and takes precedence`;
        dropped.push({ from, value: shown(value.name, value.value), reason });
      } else {
        setConfigValue(tree, `${blockPath}/@${value.name.toLowerCase()}`, value.value);
        kept.push({ from, value: shown(value.name, value.value) });
      }
    }
  }
  copyGroups(source, tree, kept);
  return finish('fence_virt.conf', tree, { kept, mapped, added: [], dropped });
}

function copyGroups(source: ConfigBlock, tree: ConfigBlock, kept: ConversionEntry[]): void {
  const groups = lookupBlock(source, 'groups');
  if (!groups) return;
  const copy: ConfigBlock = {
    kind: 'block',
    name: 'groups',
    value: undefined,
    children: [],
    line: 0,
  };
  for (const group of [...childrenNamed(groups, 'group', 'block')].reverse()) {
    const values = group.children.filter((c): c is ConfigValue => c.kind === 'value');
    const known = values.filter((v) => ['name', 'ip', 'uuid'].includes(v.name.toLowerCase()));
    copy.children.push({
      kind: 'block',
      name: 'group',
      value: group.value,
      line: 0,
      children: known.map((v) => ({ ...v, name: v.name.toLowerCase(), line: 0 })),
    });
    const label = lookupValue(group, '@name') ?? `line ${group.line}`;
    kept.push({
      from: `groups/group (${label})`,
      value: `${known.length} entr${known.length === 1 ? 'y' : 'ies'}`,
    });
  }
  tree.children.push(copy);
}

/** Picks the converter from the content: XML (cluster.conf) or fence_virt.conf. */
export function convertConfig(text: string, fileName: string): Conversion {
  return /^\s*</.test(text)
    ? convertClusterConf(text, fileName)
    : normaliseFenceVirtConf(text, fileName);
}
