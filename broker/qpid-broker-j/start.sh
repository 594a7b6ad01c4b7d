#!/usr/bin/env bash
# Starts Qpid Broker-J for virtfence (profile "qpid-broker-j"), ALL state in STATEDIR.
#
#   broker/qpid-broker-j/start.sh STATEDIR [AMQP_PORT=5672]
#
# Env: BIND_ADDRESS (default 127.0.0.1), READY_TIMEOUT_MS (default 60000),
#      VIRTFENCE_BROKER_USERS ("USER:PASSWORD:CLUSTER …", see broker/lib.sh),
#      TLS_KEYSTORE + TLS_KEYSTORE_PASSWORD (PKCS#12), TLS_PORT [and TLS_ADDRESS]: an AMQPS port too.
# Writes STATEDIR/broker.pid; prints the AMQP URL once a real AMQP attach succeeds.
#
# One virtual host per cluster, named after the cluster (the AMQP open's hostname selects it),
# holding (queues created on first use by a node auto-creation policy):
#   virtfence.<cluster>.events        a fanout exchange (declared: Broker-J cannot create an
#                                     exchange on consume); each
#                                     receiver gets its own temporary queue bound to it,
#                                     deleted when the link detaches;
#   virtfence.<cluster>.req|reply.<h> a queue whose messages live at most 60 s (their own TTL,
#                                     from the request's deadline, is shorter); expired
#                                     messages are discarded (no alternate binding, no DLQ).
# Only a cluster's users may enter its virtual host (rule-based access control, default deny).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
[ $# -ge 1 ] || { echo "usage: $0 STATEDIR [AMQP_PORT]" >&2; exit 2; }
statedir=$(realpath -m "$1")
port=${2:-5672}
address=${BIND_ADDRESS:-127.0.0.1}
home=$(broker_home qpid-broker-j)
refuse_if_running "$statedir"
mkdir -p "$statedir/work" "$statedir/log" "$statedir/tmp"

json_escape() { local s=$1; s=${s//\\/\\\\}; s=${s//\"/\\\"}; printf '%s' "$s"; }
declare -A members=()   # cluster -> its users' ACCESS rules
clusters=() users=''
add_user() { # USER PASSWORD CLUSTER
  local u p c=$3
  u=$(json_escape "$1") p=$(json_escape "$2")
  users+="${users:+,}
      { \"name\": \"$u\", \"type\": \"managed\", \"password\": \"$p\" }"
  [ -n "${members[$c]+x}" ] || clusters+=("$c")
  members[$c]+="{ \"identity\": \"$u\", \"outcome\": \"ALLOW\", \"operation\": \"ALL\", \"objectType\": \"ALL\", \"attributes\": {} }, "
}
users_each add_user

# One virtual host per cluster, named after it: a client reaches it by naming the cluster as the
# hostname of its AMQP open (profile "qpid-broker-j" does), and only the cluster's users may
# enter it. Everything inside (exchange, queues, subscriptions) is then the cluster's alone.
vhost_json() { # CLUSTER
  cat <<JSON
{
  "type": "Memory",
  "nodeAutoCreationPolicies": [
    { "pattern": "virtfence\\\\.$1\\\\.(req|reply)\\\\.[A-Za-z0-9._-]+", "nodeType": "Queue",
      "createdOnPublish": true, "createdOnConsume": true,
      "attributes": { "maximumMessageTtl": 60000, "durable": true } }
  ],
  "exchanges": [ { "name": "virtfence.$1.events", "type": "fanout", "durable": true } ],
  "housekeepingCheckPeriod": 1000,
  "virtualhostaccesscontrolproviders": [ {
    "name": "cluster-$1", "type": "RuleBased", "defaultResult": "DENIED",
    "rules": [ ${members[$1]%, } ]
  } ]
}
JSON
}
nodes=''
for c in "${clusters[@]}"; do
  nodes+="${nodes:+,}
    { \"name\": \"$c\", \"type\": \"Memory\",
      \"virtualHostInitialConfiguration\": \"$(json_escape "$(vhost_json "$c")" | tr '\n' ' ')\" }"
done
aliases='"virtualhostaliases": [ { "name": "byName", "type": "nameAlias" } ]'

tls_port='' keystore=''
if [ -n "${TLS_KEYSTORE:-}" ]; then
  tls_port=",
    { \"name\": \"AMQPS\", \"port\": ${TLS_PORT:?TLS_PORT}, \"bindingAddress\": \"${TLS_ADDRESS:-$address}\",
      \"transports\": [\"SSL\"], \"keyStore\": \"tls\", \"protocols\": [\"AMQP_1_0\"],
      \"tcpNoDelay\": true, \"authenticationProvider\": \"plain\", $aliases }"
  keystore=",
  \"keystores\": [ { \"name\": \"tls\", \"type\": \"FileKeyStore\", \"storeUrl\": \"$TLS_KEYSTORE\",
    \"password\": \"$(json_escape "${TLS_KEYSTORE_PASSWORD:?}")\", \"keyStoreType\": \"PKCS12\" } ]"
fi

cat >"$statedir/config.json" <<JSON
{
  "name": "virtfence",
  "modelVersion": "9.0",
  "authenticationproviders": [ { "name": "plain", "type": "Plain", "secureOnlyMechanisms": [],
    "users": [ $users
  ] } ],
  "brokerloggers": [ { "name": "logfile", "type": "File", "fileName": "$statedir/log/qpid.log",
    "brokerloginclusionrules": [
      { "name": "Root", "type": "NameAndLevel", "level": "WARN", "loggerName": "ROOT" },
      { "name": "Qpid", "type": "NameAndLevel", "level": "INFO", "loggerName": "org.apache.qpid.*" },
      { "name": "Operational", "type": "NameAndLevel", "level": "INFO", "loggerName": "qpid.message.*" } ] } ],
  "ports": [
    { "name": "AMQP", "port": $port, "bindingAddress": "$address", "protocols": [ "AMQP_1_0" ],
      "tcpNoDelay": true, "authenticationProvider": "plain", $aliases }$tls_port
  ]$keystore,
  "virtualhostnodes": [ $nodes
  ]
}
JSON

# -st Memory: the configuration is read from config.json at every start (no stored copy).
QPID_WORK="$statedir/work" setsid java -Xms64m -Xmx384m -XX:MaxDirectMemorySize=256m \
  -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.io.tmpdir="$statedir/tmp" \
  -DQPID_HOME="$home" -DQPID_WORK="$statedir/work" \
  -cp "$home/lib/*:$home/lib/plugins/*:$home/lib/opt/*" \
  org.apache.qpid.server.Main -icp "$statedir/config.json" -st Memory \
  </dev/null >"$statedir/log/stdout.log" 2>&1 &
echo $! >"$statedir/broker.pid"

VIRTFENCE_PROBE_HOSTNAME=$(first_cluster) \
  wait_ready "$statedir" "$(first_user_url "$port")" "virtfence.$(first_cluster).events"
echo "amqp://$(probe_host):$port"
