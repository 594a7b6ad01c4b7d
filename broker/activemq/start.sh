#!/usr/bin/env bash
# Starts ActiveMQ Classic with its AMQP transport for virtfence (profile "activemq"), ALL state
# in STATEDIR.
#
#   broker/activemq/start.sh STATEDIR [AMQP_PORT=5672]
#
# Env: BIND_ADDRESS (default 127.0.0.1), READY_TIMEOUT_MS (default 60000),
#      VIRTFENCE_BROKER_USERS ("USER:PASSWORD:CLUSTER …", see broker/lib.sh),
#      ACTIVEMQ_SHARED: the KahaDB folder; two nodes given the same one form a shared-store
#      master/slave pair (the slave serves once the master dies). ACTIVEMQ_SLAVE=1: do not wait
#      for readiness (a slave opens its port only when it takes over).
#      TLS_KEYSTORE + TLS_KEYSTORE_PASSWORD (PKCS#12), TLS_PORT [and TLS_ADDRESS]: an amqp+ssl connector too.
# Writes STATEDIR/broker.pid; prints the AMQP URL once a real AMQP attach succeeds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
[ $# -ge 1 ] || { echo "usage: $0 STATEDIR [AMQP_PORT]" >&2; exit 2; }
statedir=$(realpath -m "$1")
port=${2:-5672}
address=${BIND_ADDRESS:-127.0.0.1}
home=$(broker_home activemq)
refuse_if_running "$statedir"
mkdir -p "$statedir/conf" "$statedir/data" "$statedir/log" "$statedir/tmp"
store=${ACTIVEMQ_SHARED:-$statedir/data/kahadb}
mkdir -p "$store"

xml_escape() { local s=$1; s=${s//&/&amp;}; s=${s//</&lt;}; s=${s//>/&gt;}; s=${s//\"/&quot;}; printf '%s' "$s"; }
users='' authz=''
add_user() { # USER PASSWORD CLUSTER
  users+="          <authenticationUser username=\"$(xml_escape "$1")\" password=\"$(xml_escape "$2")\" groups=\"cluster-$3\"/>
"
  authz+="              <authorizationEntry queue=\"virtfence.$3.>\" read=\"cluster-$3\" write=\"cluster-$3\" admin=\"cluster-$3\"/>
              <authorizationEntry topic=\"virtfence.$3.>\" read=\"cluster-$3\" write=\"cluster-$3\" admin=\"cluster-$3\"/>
"
}
users_each add_user
extra=''
if [ -n "${TLS_KEYSTORE:-}" ]; then
  extra="      <transportConnector name=\"amqps\" uri=\"amqp+ssl://${TLS_ADDRESS:-$address}:${TLS_PORT:?TLS_PORT}?transport.tcpNoDelay=true\"/>"
fi
render_template "$here/activemq.xml.template" USERS="$users" AUTHZ="$authz" \
  EXTRA_CONNECTORS="$extra" DATA="$statedir/data" STORE="$store" ADDRESS="$address" PORT="$port" \
  >"$statedir/conf/activemq.xml"
cat >"$statedir/conf/log4j2.properties" <<PROPS
rootLogger.level = INFO
rootLogger.appenderRef.logfile.ref = logfile
appender.logfile.type = File
appender.logfile.name = logfile
appender.logfile.fileName = $statedir/log/activemq.log
appender.logfile.layout.type = PatternLayout
appender.logfile.layout.pattern = %d %-5p [%c] %m%n
logger.spring.name = org.springframework
logger.spring.level = WARN
PROPS
tls=()
if [ -n "${TLS_KEYSTORE:-}" ]; then
  tls=(-Djavax.net.ssl.keyStore="$TLS_KEYSTORE" -Djavax.net.ssl.keyStorePassword="$TLS_KEYSTORE_PASSWORD"
    -Djavax.net.ssl.keyStoreType=PKCS12)
fi

setsid java -Xms64m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
  -Dlog4j2.configurationFile="file:$statedir/conf/log4j2.properties" \
  "${tls[@]}" \
  --add-reads=java.xml=java.logging \
  --add-opens java.base/java.security=ALL-UNNAMED --add-opens java.base/java.net=ALL-UNNAMED \
  --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
  --add-opens java.naming/javax.naming.spi=ALL-UNNAMED \
  --add-opens java.base/java.util.concurrent=ALL-UNNAMED \
  --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED \
  -Djava.io.tmpdir="$statedir/tmp" \
  -Dactivemq.classpath="$statedir/conf" -Dactivemq.home="$home" -Dactivemq.base="$statedir" \
  -Dactivemq.conf="$statedir/conf" -Dactivemq.data="$statedir/data" \
  -jar "$home/bin/activemq.jar" start "xbean:file:$statedir/conf/activemq.xml" \
  </dev/null >"$statedir/log/stdout.log" 2>&1 &
echo $! >"$statedir/broker.pid"

if [ -z "${ACTIVEMQ_SLAVE:-}" ]; then
  wait_ready "$statedir" "$(first_user_url "$port")" "topic://virtfence.$(first_cluster).events"
fi
echo "amqp://$(probe_host):$port"
