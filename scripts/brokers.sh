#!/usr/bin/env bash
# Fetches the official binary distributions of the JVM brokers the tests run (ActiveMQ Artemis,
# ActiveMQ Classic, Qpid Broker-J) from Maven Central with mvn, and unpacks each once into
# .cache/brokers/<name>-<version>/ (git-ignored). Idempotent: a broker already unpacked is kept.
# Called by scripts/setup.sh; `bash scripts/brokers.sh --print NAME` prints a broker's home.
set -euo pipefail
cd "$(dirname "$0")/.."

# name  maven coordinates (group:artifact:version:type:classifier)  folder inside the archive
BROKERS=(
  "artemis org.apache.activemq:apache-artemis:2.40.0:tar.gz:bin apache-artemis-2.40.0"
  "activemq org.apache.activemq:apache-activemq:5.17.6:tar.gz:bin apache-activemq-5.17.6"
  "qpid-broker-j org.apache.qpid:apache-qpid-broker-j:9.2.0:tar.gz:bin qpid-broker/9.2.0"
)
CACHE=${VIRTFENCE_BROKER_CACHE:-$PWD/.cache/brokers}

say() { printf 'brokers: %s\n' "$*" >&2; }

home_of() { # home_of NAME -> the unpacked distribution's top folder
  local entry name coords inner
  for entry in "${BROKERS[@]}"; do
    read -r name coords inner <<<"$entry"
    if [ "$name" = "$1" ]; then
      local version=${coords#*:*:}; version=${version%%:*}
      printf '%s\n' "$CACHE/$name-$version/$inner"
      return 0
    fi
  done
  return 1
}

if [ "${1:-}" = --print ]; then
  home_of "${2:?usage: $0 --print NAME}" || { say "unknown broker ${2}"; exit 2; }
  exit 0
fi

command -v mvn >/dev/null || { say "mvn not found: apt-get install -y maven"; exit 1; }
command -v java >/dev/null || { say "java not found: apt-get install -y openjdk-17-jre-headless"; exit 1; }
mkdir -p "$CACHE"
for entry in "${BROKERS[@]}"; do
  read -r name coords inner <<<"$entry"
  version=${coords#*:*:}; version=${version%%:*}
  dest="$CACHE/$name-$version"
  [ -f "$dest/.unpacked" ] && continue
  say "fetching $coords"
  download="$CACHE/download-$name"
  rm -rf "$download" "$dest"
  mkdir -p "$download" "$dest"
  if ! mvn -B -q dependency:copy -Dartifact="$coords" -DoutputDirectory="$download" \
      >"$CACHE/mvn-$name.log" 2>&1; then
    say "could not fetch $coords from Maven Central; see $CACHE/mvn-$name.log"
    exit 1
  fi
  tar -xzf "$download"/*.tar.gz -C "$dest"
  [ -d "$dest/$inner" ] || { say "$coords: $inner missing from the archive"; exit 1; }
  rm -rf "$download"
  touch "$dest/.unpacked"
done
