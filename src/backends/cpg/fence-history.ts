/**
 * Host-fenced evidence from Pacemaker's fencer history (`fence_history = "pacemaker"`).
 *
 * What is trustworthy, and what is not:
 *  - A `fence_event` with status `success`, action `off` or `reboot`, for the host in question,
 *    completed after that host's last heartbeat: a fence device confirmed that the host's power
 *    was cut, so every VM it ran is off. This is evidence; it is applied like `host-fenced`.
 *  - CPG membership (a host left the group, `node-down`), quorum loss, or corosync's own view:
 *    NOT evidence. A network partition, a killed daemon and a powered-off host all look the same
 *    from here, and only the last one makes the host's VMs safe to report off.
 *  - `pending` or `failed` events, and events for other actions (`on`), are never evidence.
 * The host id must equal the host's Pacemaker node name.
 */
import { execFile } from 'node:child_process';

export interface FenceHistoryEvent {
  target: string;
  action: string;
  status: string;
  delegate: string | undefined;
  origin: string | undefined;
  /** ms since the epoch; undefined when absent or not understood. */
  completed: number | undefined;
}

const EVENT = /<fence_event\b([^>]*)\/?>/g;
const ATTR = /([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*"([^"]*)"/g;

function unescapeXml(s: string): string {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/**
 * Pacemaker prints `completed` as a local date and time with an offset, e.g.
 * `2026-11-27 14:03:07 +01:00` (sometimes with fractional seconds). Anything else: undefined.
 */
export function parseCompleted(text: string): number | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?\s*(Z|[+-]\d{2}:?\d{2})?$/.exec(
    text.trim(),
  );
  if (!m) return undefined;
  const zone =
    m[4] === undefined ? 'Z' : m[4] === 'Z' ? 'Z' : m[4].replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
  const ms = Date.parse(`${m[1]}T${m[2]}${(m[3] ?? '').slice(0, 4)}${zone}`);
  return Number.isFinite(ms) ? ms : undefined;
}

/** The `fence_event` elements of `stonith_admin --history … --output-as=xml`. */
export function parseFenceHistory(xml: string): FenceHistoryEvent[] {
  const out: FenceHistoryEvent[] = [];
  for (const m of xml.matchAll(EVENT)) {
    const attrs = new Map<string, string>();
    for (const a of (m[1] ?? '').matchAll(ATTR)) attrs.set(a[1] as string, unescapeXml(a[2] ?? ''));
    const target = attrs.get('target');
    const action = attrs.get('action');
    const status = attrs.get('status');
    if (target === undefined || action === undefined || status === undefined) continue;
    const completed = attrs.get('completed');
    out.push({
      target,
      action,
      status,
      delegate: attrs.get('delegate'),
      origin: attrs.get('origin'),
      completed: completed !== undefined ? parseCompleted(completed) : undefined,
    });
  }
  return out;
}

/** The newest successful power-off (off or reboot) of `node` that completed after `after`. */
export function fencedAfter(
  events: FenceHistoryEvent[],
  node: string,
  after: number,
): FenceHistoryEvent | undefined {
  let best: FenceHistoryEvent | undefined;
  for (const e of events) {
    if (e.target !== node || e.status !== 'success') continue;
    if (e.action !== 'off' && e.action !== 'reboot') continue;
    if (e.completed === undefined || e.completed <= after) continue;
    if (!best || (best.completed ?? 0) < e.completed) best = e;
  }
  return best;
}

export type HistoryRunner = (node: string) => Promise<string>;

/** Runs `stonith_admin --history NODE --output-as=xml` (5 s at most, 1 MiB of output). */
export const stonithAdminHistory: HistoryRunner = (node) =>
  new Promise((resolve, reject) => {
    execFile(
      'stonith_admin',
      ['--history', node, '--output-as=xml'],
      { timeout: 5000, maxBuffer: 1 << 20 },
      (err, stdout) =>
        err
          ? reject(err instanceof Error ? err : new Error('stonith_admin failed'))
          : resolve(stdout),
    );
  });
