#!/usr/bin/env bash
# guest-image.sh [--with-node] [OUT_DIR]: builds the tiny guest the QEMU tests boot under software emulation.
#
#   OUT_DIR/vmlinuz        Debian's cloud kernel (linux-image-cloud-amd64's current version)
#   OUT_DIR/initramfs.lz4  busybox-static, the real C fence_virt and fence_xvm with the libraries
#                          ldd names (plus the NSS modules they load at run time), the virtio
#                          modules, and an /init that runs a command loop on the console;
#                          with --with-node also Node.js and our compiled agent (/opt/virtfence)
#
# Idempotent: nothing is rebuilt while OUT_DIR/stamp matches this script and the inputs.
# Default OUT_DIR: .state/qemu-guest or .state/qemu-guest-node (git-ignored); the kernel package
# is kept in .state/qemu-kernel. Needs apt-get (download only, no install), dpkg-deb,
# busybox-static, cpio, lz4, socat and fence-virt.
set -euo pipefail
cd "$(dirname "$0")/.."
with_node=0
if [ "${1:-}" = --with-node ]; then with_node=1; shift; fi
default_out=.state/qemu-guest
[ "$with_node" = 1 ] && default_out=.state/qemu-guest-node
out=${1:-$default_out}
say() { printf 'guest-image: %s\n' "$*" >&2; }

kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
  awk '/Depends: linux-image-[0-9].*-cloud-amd64$/ { print $2; exit }')
if [ -z "$kernel_pkg" ]; then
  say "cannot find the kernel behind linux-image-cloud-amd64 (run apt-get update)"
  exit 1
fi
for tool in busybox cpio lz4 dpkg-deb socat /usr/sbin/fence_virt /usr/sbin/fence_xvm; do
  command -v "$tool" >/dev/null || { say "missing $tool"; exit 1; }
done

inputs=("$0" /usr/sbin/fence_virt /usr/sbin/fence_xvm "$(command -v busybox)")
if [ "$with_node" = 1 ]; then
  [ -f dist/agents/main.js ] || { say "dist/ is not built (npm run build:ts)"; exit 1; }
  inputs+=("$(command -v node)" package.json bin/fence_xvm $(find dist/agents dist/protocol dist/net dist/util dist/config -type f -name '*.js' | sort))
fi
stamp="$kernel_pkg $with_node $(sha256sum "${inputs[@]}" | sha256sum | cut -c1-16)"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.lz4" ]; then
  exit 0
fi

say "building the QEMU test guest ($kernel_pkg) in $out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The kernel: downloaded once, never installed.
debs=.state/qemu-kernel
mkdir -p "$debs"
if ! ls "$debs/$kernel_pkg"_*.deb >/dev/null 2>&1; then
  (cd "$debs" && apt-get download -q "$kernel_pkg" >/dev/null 2>"$work/apt.err") ||
    { say "apt-get download $kernel_pkg failed: $(cat "$work/apt.err")"; exit 1; }
fi
dpkg-deb -x "$(ls "$debs/$kernel_pkg"_*.deb | head -n 1)" "$work/kernel"
version=${kernel_pkg#linux-image-}
cp "$work/kernel/boot/vmlinuz-$version" "$work/vmlinuz"

# The root: a merged-/usr layout like the host's, so library paths ldd prints are valid.
root="$work/root"
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,lib/modules,dev,proc,sys,tmp,run,etc/cluster,var}
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
ln -s ../run "$root/var/run"

cp "$(command -v busybox)" "$root/usr/bin/busybox"
for applet in $(busybox --list); do
  [ -e "$root/usr/bin/$applet" ] || ln -s busybox "$root/usr/bin/$applet"
done

copy_with_libraries() { # copy_with_libraries FILE...: each file and every library ldd names
  local file lib
  for file in "$@"; do
    mkdir -p "$root$(dirname "$file")"
    cp -L "$file" "$root$file"
    for lib in $(ldd "$file" | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
      [ -e "$root$lib" ] && continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
}
copy_with_libraries /usr/sbin/fence_virt /usr/sbin/fence_xvm
# socat: the in-guest stand-in for guestfwd (fence_virt vmchannel TCP -> virtio-serial port).
copy_with_libraries /usr/bin/socat
# NSS loads its software token at run time (dlopen), which ldd does not show.
for lib in libsoftokn3.so libfreebl3.so libfreeblpriv3.so libnssdbm3.so libsqlite3.so.0; do
  [ -e "/usr/lib/x86_64-linux-gnu/$lib" ] && copy_with_libraries "/usr/lib/x86_64-linux-gnu/$lib"
done
for chk in /usr/lib/x86_64-linux-gnu/lib{softokn3,freebl3,freeblpriv3,nssdbm3}.chk; do
  [ -e "$chk" ] && cp -L "$chk" "$root$chk"
done

# Our own agent (optional): Node.js and the compiled agent, which imports nothing from node_modules.
if [ "$with_node" = 1 ]; then
  copy_with_libraries "$(readlink -f "$(command -v node)")"
  mkdir -p "$root/opt/virtfence/bin"
  cp package.json "$root/opt/virtfence/"
  cp bin/fence_xvm "$root/opt/virtfence/bin/"
  ln -s fence_xvm "$root/opt/virtfence/bin/fence_virt"
  cp -r dist "$root/opt/virtfence/dist"
  rm -rf "$root/opt/virtfence/dist/"{bench,cli,demo,harness,daemon,backends,amqp,messages,routing,listeners,libvirt}
fi

# virtio is modular in the cloud kernel: the console (virtio-serial) and the NIC.
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console failover net_failover virtio_net"
for m in $modules; do
  ko=$(find "$work/kernel/lib/modules" -name "$m.ko" | head -n 1)
  [ -n "$ko" ] || { say "module $m not found in $kernel_pkg"; exit 1; }
  cp "$ko" "$root/lib/modules/"
done

printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"

cat >"$root/init" <<EOF
#!/bin/sh
# The test guest: no login, no services. The console (ttyS0) runs a command loop the tests
# write to through the console socket; everything it prints lands in the console log.
export PATH=/usr/sbin:/usr/bin HOME=/
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $modules; do insmod /lib/modules/\$m.ko 2>/dev/null; done
ip link set lo up
for arg in \$(cat /proc/cmdline); do
  case \$arg in
    vf.name=*) hostname "\${arg#vf.name=}" ;;
    vf.ip=*) ip link set eth0 up && ip addr add "\${arg#vf.ip=}" dev eth0 && ip route add 224.0.0.0/4 dev eth0 ;;
  esac
done
# Wait (up to 2 s) for the device nodes of the virtio ports.
i=0
while [ \$i -lt 20 ] && [ -d /sys/class/virtio-ports ] && [ -z "\$(ls /dev | grep vport)" ]; do sleep 0.1; i=\$((i + 1)); done
echo "vfguest: ready \$(hostname)"
while true; do
  while read -r line; do eval "\$line"; done </dev/ttyS0 >/dev/ttyS0 2>&1
  sleep 0.2
done
EOF
chmod 755 "$root/init"

# lz4 (legacy frame, as the kernel reads it): under emulation it unpacks faster than gzip.
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | lz4 -l -q -9) >"$work/initramfs.lz4"
mv "$work/vmlinuz" "$out/vmlinuz"
mv "$work/initramfs.lz4" "$out/initramfs.lz4"
printf '%s\n' "$stamp" >"$out/stamp"
say "guest ready: $out/vmlinuz ($(du -h "$out/vmlinuz" | cut -f1)), $out/initramfs.lz4 ($(du -h "$out/initramfs.lz4" | cut -f1))"
