# Shared by broker/<name>/start.sh and stop.sh (sourced, not run).
#
# Every broker keeps ALL its state in one folder and is started and stopped by the pid written
# to STATEDIR/broker.pid. Per-cluster users come from VIRTFENCE_BROKER_USERS, a space-separated
# list of USER:PASSWORD:CLUSTER (default "virtfence:virtfence:virtfence": change it); a user may
# use only the addresses of its cluster, virtfence.<CLUSTER>.*.

broker_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "$0: $*" >&2; exit 1; }

# users_each FN: calls FN USER PASSWORD CLUSTER for every configured user.
users_each() {
  local entry user password cluster
  for entry in ${VIRTFENCE_BROKER_USERS:-virtfence:virtfence:virtfence}; do
    IFS=: read -r user password cluster <<<"$entry"
    [ -n "$user" ] && [ -n "$password" ] && [ -n "$cluster" ] ||
      die "VIRTFENCE_BROKER_USERS entry '$entry' is not USER:PASSWORD:CLUSTER"
    [[ $cluster =~ ^[A-Za-z0-9_-]+$ ]] || die "cluster name '$cluster': letters, digits, _ and - only"
    "$1" "$user" "$password" "$cluster"
  done
}

# first_user_url PORT: amqp://USER:PASSWORD@127.0.0.1:PORT for the readiness probe.
first_user_url() {
  local entry user password cluster
  entry=${VIRTFENCE_BROKER_USERS:-virtfence:virtfence:virtfence}
  entry=${entry%% *}
  IFS=: read -r user password cluster <<<"$entry"
  printf 'amqp://%s:%s@%s:%s\n' "$user" "$password" "$(probe_host)" "$1"
}
first_cluster() {
  local entry=${VIRTFENCE_BROKER_USERS:-virtfence:virtfence:virtfence}
  entry=${entry%% *}
  printf '%s\n' "${entry##*:}"
}

# The address the probe connects to: loopback when the broker listens on every address.
probe_host() {
  case "${BIND_ADDRESS:-127.0.0.1}" in
    0.0.0.0) echo 127.0.0.1 ;;
    ::) echo '[::1]' ;;
    *:*) echo "[${BIND_ADDRESS:-}]" ;;
    *) echo "${BIND_ADDRESS:-127.0.0.1}" ;;
  esac
}

broker_home() { # broker_home NAME: the unpacked distribution (scripts/brokers.sh fetches it)
  local home
  home=${VIRTFENCE_BROKER_HOME:-$(bash "$broker_dir/../scripts/brokers.sh" --print "$1")}
  [ -d "$home" ] || die "$home missing: run bash scripts/brokers.sh (or scripts/setup.sh)"
  printf '%s\n' "$home"
}

# render_template TEMPLATE KEY=VALUE…: the template with every @@KEY@@ replaced by its VALUE; a
# value may span lines (a placeholder alone on its line becomes those lines).
render_template() {
  local template=$1 line kv
  shift
  while IFS= read -r line || [ -n "$line" ]; do
    for kv in "$@"; do line=${line//"@@${kv%%=*}@@"/"${kv#*=}"}; done
    printf '%s\n' "${line%$'\n'}"
  done <"$template"
}

refuse_if_running() { # refuse_if_running STATEDIR
  if [ -f "$1/broker.pid" ] && kill -0 "$(cat "$1/broker.pid")" 2>/dev/null; then
    die "a broker already runs from $1 (pid $(cat "$1/broker.pid"))"
  fi
}

# wait_ready STATEDIR URL ADDRESS [CAPABILITY]: a real AMQP connection and link attach.
wait_ready() {
  local pid
  pid=$(cat "$1/broker.pid")
  if ! node "$broker_dir/ready.mjs" "$2" "${READY_TIMEOUT_MS:-60000}" "$3" ${4:+"$4"} --pid "$pid"; then
    echo "$0: broker did not become ready; logs in $1/log" >&2
    stop_pid "$1" KILL
    exit 1
  fi
}

wait_gone() { # wait_gone PID SECONDS
  local pid=$1 i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

stop_pid() { # stop_pid STATEDIR [TERM|KILL]: the pid in STATEDIR/broker.pid, SIGKILL after 30 s
  local pid signal=${2:-TERM}
  [ -f "$1/broker.pid" ] || return 0
  pid=$(cat "$1/broker.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$signal" "$pid" 2>/dev/null || true
    wait_gone "$pid" 30 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; }
  fi
  rm -f "$1/broker.pid"
}
