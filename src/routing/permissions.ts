/** The static permission map, "groups" (docs/protocol.md §13). Pure. */
import type { GroupConfig } from '../core/groups.js';
import { isUuid } from '../protocol/uuid.js';

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

export class PermissionMap {
  constructor(private readonly groups: readonly GroupConfig[]) {}

  /** No group with any ip or uuid entry means everything is allowed. */
  get enforcing(): boolean {
    return this.groups.some((g) => g.ips.length > 0 || g.uuids.length > 0);
  }

  /**
   * May `source` act on `target`? A UUID source is looked up among `uuid` entries (serial), any
   * other among `ip` entries. `targetName` is the VM name, used only for host-list filtering.
   */
  allows(source: string | undefined, target: string, targetName?: string): boolean {
    if (!this.enforcing) return true;
    if (source === undefined) return false;
    const bySource = isUuid(source)
      ? this.groups.filter((g) => g.uuids.some((u) => same(u, source)))
      : this.groups.filter((g) => g.ips.some((ip) => same(ip, source)));
    return bySource.some((g) =>
      g.uuids.some((u) => same(u, target) || (targetName !== undefined && same(u, targetName))),
    );
  }
}
