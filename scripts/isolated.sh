#!/usr/bin/env bash
# isolated.sh CMD [ARG…]: run CMD in a network namespace and a mount namespace of its own.
#
# The real fence_xvm (and our agent, like it) sends a copy of every request out of every interface
# that has an address. Tests, benchmarks and the demo therefore never run in the machine's own
# network namespace: inside, only loopback (multicast on, 224.0.0.0/4 routed to it) and a veth
# pair for IPv6 multicast exist, and
# /run/netns is a private tmpfs, so the namespaces a test creates (`ip netns add`) are its own.
# Around the run a guard (scripts/guard.nft) counts fence multicast leaving the machine's own
# interfaces; any packet fails the run. Needs root (namespaces, nft).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ "${VIRTFENCE_ISOLATED:-}" = 1 ]; then
  ip link set lo up
  ip link set lo multicast on
  ip route add 224.0.0.0/4 dev lo
  # IPv6 multicast cannot use loopback: a veth pair whose both ends stay in this namespace
  # carries it (the kernel loops a copy back to local members; vfiso1 only sinks the rest).
  ip link add vfiso0 type veth peer name vfiso1
  ip link set vfiso1 up
  ip link set vfiso0 multicast on up
  ip -6 addr add fd00:7f::1/64 dev vfiso0 nodad
  mkdir -p /run/netns
  mount -t tmpfs -o mode=0755 virtfence-netns /run/netns
  exec "$@"
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "isolated.sh: root is needed to create the network namespace tests run in" >&2
  exit 1
fi

table="virtfence_guard_$$"
guard=0
if command -v nft >/dev/null; then
  sed "s/virtfence_guard/$table/" "$here/guard.nft" | nft -f - && guard=1
fi
[ "$guard" = 1 ] || echo "isolated.sh: nft unavailable; running without the leak guard" >&2

rc=0
VIRTFENCE_ISOLATED=1 unshare --net --mount --propagation private -- "$0" "$@" || rc=$?

if [ "$guard" = 1 ]; then
  leaked=$(nft list counters table inet "$table" | awk '/packets/ { for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }')
  nft delete table inet "$table"
  if [ "$leaked" -gt 0 ]; then
    echo "isolated.sh: $leaked fence multicast packet(s) left through the machine's own interfaces" >&2
    exit 1
  fi
  echo "isolation guard: 0 fence multicast packets left the machine's own interfaces" >&2
fi
exit "$rc"
