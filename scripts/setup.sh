#!/usr/bin/env bash
# Idempotent set-up used by `npm test`, `npm run demo` and `npm run bench`:
# Debian packages, the JVM brokers (scripts/brokers.sh), npm dependencies, the native libvirt addon and the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

APT_PACKAGES=(
  libvirt-dev libvirt-clients libvirt-daemon   # the binding, virsh, a private libvirtd per test host
  fence-virt fence-virtd                       # the C suite: conformance peer and control
  rabbitmq-server                              # the AMQP 1.0 broker for routed fencing
  socat libxml2-utils iproute2 procps          # pty/socket relays, xmllint, netns, ps
  nftables util-linux                          # the leak guard and namespaces of scripts/isolated.sh
  pacemaker-cli-utils docker-compose           # crm_resource/stonith_admin checks, compose validation
  pacemaker prometheus                         # the real fencer (install test), a real Prometheus scrape
  systemd                                      # systemd-analyze checks the shipped unit
  corosync libcpg-dev                          # the cpg backend's addon; three-host corosync tests
  make g++ python3 pkg-config                  # native build
  openjdk-17-jdk-headless maven                # the JVM brokers (scripts/brokers.sh fetches them)
  qemu-system-x86 libvirt-daemon-driver-qemu   # the QEMU tier: real guests under software emulation
  busybox-static cpio lz4                      # the test guest's initramfs (scripts/guest-image.sh)
)

missing_packages() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || printf '%s ' "$p"
  done
}

install_apt() {
  local missing
  missing=$(missing_packages)
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    say "missing Debian packages; install them as root with: apt-get install -y $missing"
    exit 1
  fi
  say "installing Debian packages: $missing"
  if ! { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends $missing >/tmp/virtfence-apt.log 2>&1; }; then
    say "could not install Debian packages ($missing); see /tmp/virtfence-apt.log and install them with: apt-get install -y $missing"
    exit 1
  fi
}

install_npm() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm dependencies (npm ci)"
    npm ci --ignore-scripts --no-audit --no-fund >/tmp/virtfence-npm.log 2>&1 ||
      { say "npm ci failed; see /tmp/virtfence-npm.log"; exit 1; }
  fi
}

newer_than() { # newer_than TARGET SOURCES...: true when a source is newer than the target
  local target=$1; shift
  [ -e "$target" ] || return 0
  [ -n "$(find "$@" -newer "$target" -print -quit 2>/dev/null)" ]
}

build_native() {
  local stale=0 target
  for target in virtfence_libvirt virtfence_sys virtfence_cpg virtfence_vsock; do
    newer_than "build/Release/$target.node" native binding.gyp && stale=1
  done
  if [ "$stale" = 1 ]; then
    say "building the native addons (libvirt, sys, cpg, vsock)"
    [ -d /usr/include/node ] && export npm_config_nodedir=/usr
    npm run --silent build:native >/tmp/virtfence-gyp.log 2>&1 ||
      { say "native build failed (are libvirt-dev and libcpg-dev installed?); see /tmp/virtfence-gyp.log"; exit 1; }
  fi
}

build_ts() {
  if newer_than dist/.built src tsconfig.json tsconfig.build.json package-lock.json; then
    say "compiling TypeScript"
    npm run --silent build:ts
    touch dist/.built
  fi
}

build_guest_image() { # kernel + initramfs for the QEMU tier, once, into .state/qemu-guest(-node)
  bash scripts/guest-image.sh || { say "could not build the QEMU test guest (see above)"; exit 1; }
  # The variant with Node.js and our agent; rebuilt when the agent's compiled code changes.
  nice -n 10 bash scripts/guest-image.sh --with-node ||
    { say "could not build the QEMU test guest with Node.js (see above)"; exit 1; }
}

install_apt
bash scripts/brokers.sh
install_npm
build_native
build_ts
build_guest_image
