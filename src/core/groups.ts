/** One `groups/group` block of fence_virt.conf: the static permission map (docs/protocol.md §13). */
export interface GroupConfig {
  name: string;
  /** Requester ids: IPs (multicast, tcp) or CIDs (vsock). */
  ips: string[];
  /** Targets, and requester UUIDs for serial. */
  uuids: string[];
}
