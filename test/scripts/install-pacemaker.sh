#!/usr/bin/env bash
# install-pacemaker.sh ROOT WORKDIR: in a private mount namespace (the caller runs it under
# `unshare -m`), overlays on /usr/sbin, /etc and /var/lib keep the machine untouched. Installs
# virtfence (guest and host), fences a VM through the real Pacemaker fencer, uninstalls.
# Each step's output and exit code go to WORKDIR/results/NAME.{out,rc}.
set -u
root=$1 work=$2
R=$work/results
mkdir -p "$R" "$work/ov"
mount -t tmpfs virtfence-ov "$work/ov"
for d in /usr/sbin /etc /var/lib; do
  n=$(echo "$d" | tr / _)
  mkdir -p "$work/ov/$n-up" "$work/ov/$n-work"
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$work/ov/$n-up,workdir=$work/ov/$n-work" "$d"
done

# Installed from /opt/virtfence, as the README says, wherever this clone lives: a clone under /tmp
# or /root is hidden by the unit's sandbox, and `install host` refuses it.
mount -t tmpfs virtfence-opt /opt
mkdir /opt/virtfence
mount --bind "$root" /opt/virtfence
root=/opt/virtfence

step() { # step NAME CMD...: output and exit code of one step
  local name=$1; shift
  "$@" >"$R/$name.out" 2>&1
  echo $? >"$R/$name.rc"
}
vf() { node "$root/bin/virtfence" "$@"; }
key=$work/fence_xvm.key

step before-ls ls -l /usr/sbin/fence_xvm /usr/sbin/fence_virt /usr/sbin/fence_virtd
step install-guest vf install guest
step install-host vf install host
step after-ls ls -l /usr/sbin/fence_xvm /usr/sbin/fence_virt /usr/sbin/fence_virtd /usr/sbin/fence_xvm.distrib /usr/sbin/fence_virt.distrib /usr/sbin/fence_virtd.distrib
step diversions dpkg-divert --list '/usr/sbin/fence_*'
step unit cat /etc/systemd/system/fence_virtd.service
# A copy of a launcher elsewhere still runs (absolute paths), with a PATH that holds no node.
cp /usr/sbin/fence_xvm "$work/copied-fence_xvm"
step copied env -i PATH=/nonexistent "$work/copied-fence_xvm" -o metadata

# The unit's configuration paths, in the overlay: /etc/fence_virt.conf and a key in /etc/cluster.
mkdir -p /etc/cluster
key=/etc/cluster/fence_xvm.key
head -c 4096 /dev/urandom >"$key"
chmod 644 "$key" # loose on purpose: start-up corrects it (ReadWritePaths must allow that)
cat >/etc/fence_virt.conf <<CONF
fence_virtd { listener = "multicast"; backend = "libvirt"; }
listeners { multicast { key_file = "$key"; address = "225.0.0.12"; port = "1229"; } }
backends { libvirt { uri = "test:///default"; } }
CONF
chmod 600 /etc/fence_virt.conf

# systemd cannot run units here (it is not PID 1), so the unit's sandbox is rebuilt by hand from
# what it sets: ProtectSystem=strict (every mount read-only) with ReadWritePaths, RuntimeDirectory,
# PrivateTmp, ProtectHome, PrivateDevices, NoNewPrivileges, CapabilityBoundingSet= (none), UMask,
# Type=notify (a datagram socket for NOTIFY_SOCKET). ExecStart is read from the installed unit.
unit=/etc/systemd/system/fence_virtd.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
sandboxed() {
  exec unshare -m --propagation private bash -c '
    set -e
    mkdir -p /run/fence_virtd && mount -t tmpfs -o mode=0755 runtime /run/fence_virtd
    for rw in /etc/fence_virt.conf /etc/cluster; do mount --bind "$rw" "$rw"; done
    awk "{ print \$2 }" /proc/self/mounts | sort -u | while read -r mp; do
      case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/run/fence_virtd|/etc/fence_virt.conf|/etc/cluster|"$NOTIFY_DIR") continue ;; esac
      mount -o remount,bind,ro "$mp" 2>/dev/null || true
    done
    for t in /tmp /var/tmp; do mount -t tmpfs -o mode=1777 private-tmp "$t"; done
    for h in /home /root; do mount -t tmpfs -o ro,mode=0755 protect-home "$h"; done
    devs=/run/fence_virtd/.dev && mkdir "$devs" && mount -t tmpfs -o mode=0755 private-dev "$devs"
    for d in null zero full random urandom tty; do touch "$devs/$d"; mount --bind "/dev/$d" "$devs/$d"; done
    mount --move "$devs" /dev 2>/dev/null && rmdir /run/fence_virtd/.dev
    umask 077
    export PATH=/usr/sbin:/sbin # the daemon itself gets a PATH without node
    exec /usr/bin/setpriv --no-new-privs --bounding-set -all --inh-caps -all -- "$@"
  ' sandboxed "$@"
}
export NOTIFY_DIR=/var/lib/virtfence-test-notify # in the overlay; not under /tmp (PrivateTmp)
mkdir -p "$NOTIFY_DIR"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
out = open(sys.argv[2], "a")
while True:
    out.write(s.recv(4096).decode().replace("\n", " ") + "\n"); out.flush()
' "$NOTIFY_DIR/notify.sock" "$R/notify.log" &
receiver=$!
for _ in $(seq 50); do [ -S "$NOTIFY_DIR/notify.sock" ] && break; sleep 0.1; done
# Started as the unit would: its ExecStart (with a PATH without node), NOTIFY_SOCKET.
# shellcheck disable=SC2086
env -i PATH=/usr/bin:/usr/sbin NOTIFY_SOCKET="$NOTIFY_DIR/notify.sock" VIRTFENCE_LOG_FORMAT=json \
  /bin/bash -c "$(declare -f sandboxed); sandboxed $exec_start" >"$R/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do grep -q '^READY=1' "$R/notify.log" 2>/dev/null && break; sleep 0.1; done
step key-mode stat -c '%a' "$key"
step sandbox-view sh -c "cat /proc/$daemon/cmdline | tr '\\0' ' '; echo; ls /proc/$daemon/root/run/fence_virtd; ls /proc/$daemon/root/dev; grep -E '^(NoNewPrivs|CapBnd|CapEff)' /proc/$daemon/status; awk '\$2 == \"/\" || \$2 == \"/tmp\" || \$2 == \"/home\" { print \$2, \$4 }' /proc/$daemon/mounts"

# The real fencer, standalone, with a minimal PATH (no /usr/bin: no node, no env).
env -i PATH=/usr/sbin:/sbin PCMK_logfile="$work/pacemaker.log" PCMK_debug=no \
  /usr/lib/pacemaker/pacemaker-fenced -s >"$R/fenced.out" 2>&1 &
fenced=$!
for _ in $(seq 100); do stonith_admin --list-registered >/dev/null 2>&1 && break; sleep 0.1; done

step metadata stonith_admin --metadata --agent fence_xvm
step validate stonith_admin --validate --agent fence_xvm --option "key_file=$key" --option timeout=5
step validate-bad stonith_admin --validate --agent fence_xvm --option "key_file=$key" --option auth=md5
step register stonith_admin --register xvm1 --agent fence_xvm --option "key_file=$key" \
  --option pcmk_host_list=test --option timeout=5 --option retrans=5
step status-before /usr/sbin/fence_xvm -k "$key" -o status -H test -t 5
step fence-off stonith_admin --fence test --timeout 20
step status-after /usr/sbin/fence_xvm -k "$key" -o status -H test -t 5
kill "$fenced" 2>/dev/null; wait "$fenced" 2>/dev/null
kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null
sleep 0.5; kill "$receiver" 2>/dev/null

step uninstall vf uninstall
step restored-ls ls -l /usr/sbin/fence_xvm /usr/sbin/fence_virt /usr/sbin/fence_virtd
step restored-diversions dpkg-divert --list '/usr/sbin/fence_*'
step restored-metadata /usr/sbin/fence_xvm -o metadata
step restored-unit ls /etc/systemd/system/fence_virtd.service
exit 0
