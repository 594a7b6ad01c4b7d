/** The permission source for a TCP peer (docs/protocol.md §8): its numeric IP, IPv4-mapped IPv6 shown as IPv4. */
export function peerSource(remoteAddress: string | undefined): string | undefined {
  if (remoteAddress === undefined) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remoteAddress);
  return mapped ? mapped[1] : remoteAddress;
}
