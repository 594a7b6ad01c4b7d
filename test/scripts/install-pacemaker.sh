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

head -c 4096 /dev/urandom >"$key"
cat >"$work/fence_virt.conf" <<CONF
fence_virtd { listener = "multicast"; backend = "libvirt"; }
listeners { multicast { key_file = "$key"; address = "225.0.0.12"; port = "1229"; } }
backends { libvirt { uri = "test:///default"; } }
CONF
chmod 600 "$work/fence_virt.conf"
# Our daemon, started through its /usr/sbin launcher with a PATH that holds no node.
env -i PATH=/usr/sbin:/sbin VIRTFENCE_LOG_FORMAT=json /usr/sbin/fence_virtd -F -f "$work/fence_virt.conf" -p "$work/fence_virtd.pid" >"$R/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do grep -q '"event":"started"' "$R/daemon.log" && break; sleep 0.1; done

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

step uninstall vf uninstall
step restored-ls ls -l /usr/sbin/fence_xvm /usr/sbin/fence_virt /usr/sbin/fence_virtd
step restored-diversions dpkg-divert --list '/usr/sbin/fence_*'
step restored-metadata /usr/sbin/fence_xvm -o metadata
step restored-unit ls /etc/systemd/system/fence_virtd.service
exit 0
