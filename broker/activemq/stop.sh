#!/usr/bin/env bash
# Stops a broker started by start.sh, by the pid in STATEDIR/broker.pid (SIGKILL after 30 s).
#   broker/activemq/stop.sh STATEDIR [TERM|KILL]
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
[ $# -ge 1 ] || { echo "usage: $0 STATEDIR [TERM|KILL]" >&2; exit 2; }
stop_pid "$(realpath -m "$1")" "${2:-TERM}"
