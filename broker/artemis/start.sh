#!/usr/bin/env bash
# Starts ActiveMQ Artemis for virtfence (profile "artemis") with ALL state in STATEDIR.
#
#   broker/artemis/start.sh STATEDIR [AMQP_PORT=5672]
#
# Env: BIND_ADDRESS (default 127.0.0.1), READY_TIMEOUT_MS (default 60000),
#      VIRTFENCE_BROKER_USERS ("USER:PASSWORD:CLUSTER …", see broker/lib.sh),
#      ARTEMIS_HA = primary | backup (shared-store HA: both nodes given the same ARTEMIS_SHARED
#      folder; the backup takes over when the primary dies), ARTEMIS_SHARED (journal folder),
#      TLS_KEYSTORE + TLS_KEYSTORE_PASSWORD (PKCS#12), TLS_PORT [and TLS_ADDRESS]: an amqps acceptor too.
# Writes STATEDIR/broker.pid; prints the AMQP URL once a real AMQP attach succeeds (a backup
# prints it without waiting: it serves nothing until it takes over).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
[ $# -ge 1 ] || { echo "usage: $0 STATEDIR [AMQP_PORT]" >&2; exit 2; }
statedir=$(realpath -m "$1")
port=${2:-5672}
address=${BIND_ADDRESS:-127.0.0.1}
home=$(broker_home artemis)
refuse_if_running "$statedir"
mkdir -p "$statedir/etc" "$statedir/log" "$statedir/tmp"
data=${ARTEMIS_SHARED:-$statedir/data}
mkdir -p "$data"

: >"$statedir/etc/artemis-users.properties"
: >"$statedir/etc/artemis-roles.properties"
security=''
add_user() { # USER PASSWORD CLUSTER
  printf '%s = %s\n' "$1" "$2" >>"$statedir/etc/artemis-users.properties"
  printf 'cluster-%s = %s\n' "$3" "$1" >>"$statedir/etc/artemis-roles.properties"
  security+="      <security-setting match=\"virtfence.$3.#\">
        <permission type=\"send\" roles=\"cluster-$3\"/>
        <permission type=\"consume\" roles=\"cluster-$3\"/>
        <permission type=\"createAddress\" roles=\"cluster-$3\"/>
        <permission type=\"createNonDurableQueue\" roles=\"cluster-$3\"/>
        <permission type=\"deleteNonDurableQueue\" roles=\"cluster-$3\"/>
        <permission type=\"createDurableQueue\" roles=\"cluster-$3\"/>
      </security-setting>
"
}
users_each add_user

ha='' extra=''
case "${ARTEMIS_HA:-}" in
  '') ;;
  primary) ha='    <ha-policy><shared-store><primary><failover-on-shutdown>true</failover-on-shutdown></primary></shared-store></ha-policy>' ;;
  backup) ha='    <ha-policy><shared-store><backup><allow-failback>false</allow-failback><failover-on-shutdown>true</failover-on-shutdown></backup></shared-store></ha-policy>' ;;
  *) die "ARTEMIS_HA must be primary or backup" ;;
esac
if [ -n "${TLS_KEYSTORE:-}" ]; then
  extra="      <acceptor name=\"amqps\">tcp://${TLS_ADDRESS:-$address}:${TLS_PORT:?TLS_PORT}?protocols=AMQP;tcpNoDelay=true;saslMechanisms=PLAIN;sslEnabled=true;keyStorePath=$TLS_KEYSTORE;keyStorePassword=${TLS_KEYSTORE_PASSWORD:?};keyStoreType=PKCS12</acceptor>"
fi
render_template "$here/broker.xml.template" SECURITY="$security" HA="$ha" \
  EXTRA_ACCEPTORS="$extra" NAME="virtfence-$port" DATA="$data" ADDRESS="$address" PORT="$port" \
  >"$statedir/etc/broker.xml"
cat >"$statedir/etc/bootstrap.xml" <<XML
<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<broker xmlns="http://activemq.apache.org/schema">
  <jaas-security domain="activemq"/>
  <server configuration="file:$statedir/etc/broker.xml"/>
</broker>
XML
cat >"$statedir/etc/management.xml" <<XML
<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<management-context xmlns="http://activemq.apache.org/schema">
  <authorisation><default-access><access method="*" roles="virtfence-admin"/></default-access><role-access><match domain="org.apache.activemq.artemis"><access method="*" roles="virtfence-admin"/></match></role-access></authorisation>
</management-context>
XML
cat >"$statedir/etc/login.config" <<CONF
activemq {
  org.apache.activemq.artemis.spi.core.security.jaas.PropertiesLoginModule required
    reload=false
    org.apache.activemq.jaas.properties.user="artemis-users.properties"
    org.apache.activemq.jaas.properties.role="artemis-roles.properties";
};
CONF
cat >"$statedir/etc/log4j2.properties" <<PROPS
rootLogger.level = INFO
rootLogger.appenderRef.log_file.ref = log_file
appender.log_file.type = File
appender.log_file.name = log_file
appender.log_file.fileName = $statedir/log/artemis.log
appender.log_file.layout.type = PatternLayout
appender.log_file.layout.pattern = %d %-5level [%logger] %msg%n
logger.audit.name = org.apache.activemq.audit
logger.audit.level = OFF
PROPS

# Small heap, quick start: a lab broker for a handful of hosts.
setsid java -Xms64m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
  -Dlog4j2.configurationFile="file:$statedir/etc/log4j2.properties" -Dlog4j2.disableJmx=true \
  -Djava.security.auth.login.config="$statedir/etc/login.config" \
  -Dartemis.home="$home" -Dartemis.instance="$statedir" -Dartemis.instance.etc="$statedir/etc" \
  -Djava.io.tmpdir="$statedir/tmp" -Ddata.dir="$data" \
  --add-opens java.base/jdk.internal.misc=ALL-UNNAMED \
  -classpath "$home/lib/artemis-boot.jar" \
  org.apache.activemq.artemis.boot.Artemis run \
  </dev/null >"$statedir/log/stdout.log" 2>&1 &
echo $! >"$statedir/broker.pid"

if [ "${ARTEMIS_HA:-}" != backup ]; then
  wait_ready "$statedir" "$(first_user_url "$port")" "virtfence.$(first_cluster).events" topic
fi
echo "amqp://$(probe_host):$port"
