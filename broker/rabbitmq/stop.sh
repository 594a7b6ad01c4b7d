#!/usr/bin/env bash
# Stops a broker started by start.sh, by pid only: beam.smp first, then epmd.
#   broker/rabbitmq/stop.sh STATEDIR [TERM|KILL] [--keep-epmd]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 STATEDIR [TERM|KILL] [--keep-epmd]" >&2; exit 2; }
statedir=$1
signal=${2:-TERM}
keep_epmd=${3:-}

wait_gone() { # wait_gone PID SECONDS
  local pid=$1 i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

if [ -f "$statedir/beam.pid" ]; then
  pid=$(cat "$statedir/beam.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$signal" "$pid" 2>/dev/null || true
    wait_gone "$pid" 30 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; }
  fi
  rm -f "$statedir/beam.pid"
fi
if [ "$keep_epmd" != --keep-epmd ] && [ -f "$statedir/epmd.pid" ]; then
  pid=$(cat "$statedir/epmd.pid")
  kill -TERM "$pid" 2>/dev/null || true
  wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$statedir/epmd.pid"
fi
