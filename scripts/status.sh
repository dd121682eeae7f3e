#!/usr/bin/env bash
# Reports the node on one port (default TTS_PORT or 7860), or all recorded
# nodes with --all: PID, whether it runs, and what /readyz says.
# Exits 0 when every node asked about is running and ready.
# It reads without taking the port's lock; while a start or stop holds it,
# the port is reported as busy (and not ready), since the PID file may be
# about to change.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
host=${TTS_HOST:-127.0.0.1}
[ "$host" = "0.0.0.0" ] && host=127.0.0.1

report() {
  local port=$1 pid ready busy=""
  port_busy "$port" && busy=" (a start or stop of this port is in progress)"
  pid=$(cat "$(pidfile_for "$port")" 2>/dev/null || true)
  if ! is_our_node "$pid" "$port"; then
    echo "port $port: not running$busy"
    return 1
  fi
  if [ -z "$busy" ] && ready=$(curl -fsS --max-time 5 "http://$host:$port/readyz" 2>/dev/null); then
    echo "port $port: running, PID $pid, ready $ready"
  else
    echo "port $port: running, PID $pid, not ready$busy"
    return 1
  fi
}

status=0
if [ "${1:-}" = "--all" ]; then
  ports=$(recorded_ports)
  [ -n "$ports" ] || { echo "no nodes recorded in $run_dir"; exit 1; }
  for p in $ports; do report "$p" || status=1; done
else
  report "${1:-${TTS_PORT:-7860}}" || status=1
fi
exit "$status"
