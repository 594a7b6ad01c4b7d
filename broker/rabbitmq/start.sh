#!/usr/bin/env bash
# Starts a private RabbitMQ 3.x (Debian rabbitmq-server) with the AMQP 1.0 plugin, as root
# or any user, without systemd, with ALL state in STATEDIR.
#
#   broker/rabbitmq/start.sh STATEDIR [AMQP_PORT=5672] [DIST_PORT=AMQP_PORT+20000] [EPMD_PORT=4369]
#
# Env: BIND_ADDRESS (default 127.0.0.1), READY_TIMEOUT_MS (default 60000),
#      VIRTFENCE_CLUSTER + VIRTFENCE_HOSTS ("h1 h2 …"): add one least-privilege user per host
#      (host-users.mjs); their generated passwords go to STATEDIR/passwords/HOST (mode 0600).
# No anonymous access. Writes STATEDIR/beam.pid and STATEDIR/epmd.pid; prints the operator's AMQP
# URL (user virtfence) when the broker accepts a real AMQP connection and link attach.
# Stop with broker/rabbitmq/stop.sh STATEDIR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
[ $# -ge 1 ] || { echo "usage: $0 STATEDIR [AMQP_PORT] [DIST_PORT] [EPMD_PORT]" >&2; exit 2; }
statedir=$(realpath -m "$1")
port=${2:-5672}
dist=${3:-$((port + 20000))}
epmd_port=${4:-${ERL_EPMD_PORT:-4369}}
address=${BIND_ADDRESS:-127.0.0.1}
server=/usr/lib/rabbitmq/bin/rabbitmq-server
[ -x "$server" ] || { echo "$0: $server not found (apt-get install rabbitmq-server)" >&2; exit 1; }

if [ -f "$statedir/beam.pid" ] && kill -0 "$(cat "$statedir/beam.pid")" 2>/dev/null; then
  echo "$0: a broker already runs from $statedir (pid $(cat "$statedir/beam.pid"))" >&2
  exit 1
fi

mkdir -p "$statedir/mnesia" "$statedir/log" "$statedir/home"
sed -e "s|@@ADDRESS@@|$address|g" -e "s|@@PORT@@|$port|g" -e "s|@@STATEDIR@@|$statedir|g" \
  "$here/rabbitmq.conf.template" >"$statedir/rabbitmq.conf"
cp "$here/definitions.json" "$statedir/definitions.json"
if [ -n "${VIRTFENCE_HOSTS:-}" ]; then
  mkdir -p "$statedir/passwords" && chmod 0700 "$statedir/passwords"
  # shellcheck disable=SC2086 # one argument per host
  node "$here/host-users.mjs" "$statedir/definitions.json" "${VIRTFENCE_CLUSTER:-virtfence}" \
    $VIRTFENCE_HOSTS | while IFS='=' read -r host password; do
    (umask 077 && printf '%s\n' "$password" >"$statedir/passwords/$host")
  done
fi
echo '[].' >"$statedir/advanced.config"
echo '[rabbitmq_amqp1_0].' >"$statedir/enabled_plugins"

# epmd: started by us on its own port so its pid is known (an epmd that erl starts itself
# daemonises and cannot be stopped by pid). Loopback only, whatever BIND_ADDRESS is: this node
# clusters with nobody, and epmd always binds loopback too (asked for 0.0.0.0 as well, it
# clashes with its own loopback socket and exits).
epmd_address=127.0.0.1
if ! { [ -f "$statedir/epmd.pid" ] && kill -0 "$(cat "$statedir/epmd.pid")" 2>/dev/null; }; then
  setsid epmd -port "$epmd_port" -address "$epmd_address" </dev/null >"$statedir/log/epmd.log" 2>&1 &
  echo $! >"$statedir/epmd.pid"
fi

# `detached=1` makes the script exec erl in place: the pid we get is the beam.smp pid.
env -i PATH="$PATH" LANG=C.UTF-8 LC_ALL=C.UTF-8 \
  HOME="$statedir/home" \
  detached=1 \
  RABBITMQ_CONF_ENV_FILE="$statedir/rabbitmq-env.conf.absent" \
  RABBITMQ_CONFIG_FILE="$statedir/rabbitmq.conf" \
  RABBITMQ_ADVANCED_CONFIG_FILE="$statedir/advanced.config" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$statedir/enabled_plugins" \
  RABBITMQ_MNESIA_BASE="$statedir/mnesia" \
  RABBITMQ_LOG_BASE="$statedir/log" \
  RABBITMQ_PID_FILE="$statedir/rabbit.pid" \
  RABBITMQ_NODENAME=rabbit@localhost \
  RABBITMQ_NODE_IP_ADDRESS="$address" \
  RABBITMQ_NODE_PORT="$port" \
  RABBITMQ_DIST_PORT="$dist" \
  ERL_EPMD_PORT="$epmd_port" \
  ERL_EPMD_ADDRESS="$epmd_address" \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
  setsid "$server" </dev/null >"$statedir/log/stdout.log" 2>&1 &
echo $! >"$statedir/beam.pid"

url="amqp://$(probe_host):$port"
# the probe logs in with the operator account of definitions.json
if ! node "$here/../ready.mjs" "amqp://virtfence:virtfence@$(probe_host):$port" "${READY_TIMEOUT_MS:-60000}" --pid "$(cat "$statedir/beam.pid")"; then
  echo "$0: broker did not become ready; log: $statedir/log" >&2
  "$here/stop.sh" "$statedir" KILL || true
  exit 1
fi
echo "$url"
