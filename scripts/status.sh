#!/usr/bin/env bash
# Reports the node or the HAProxy front on one port (default TTS_PORT or
# 7860), or every recorded front and node with --all: PID, whether it runs,
# what /readyz says, and for a front the state of each node behind it (from
# HAProxy's stats socket: UP, DOWN, and the requests it holds and queues).
# Exits 0 when everything asked about is running and ready.
# It reads without taking the port's lock; while a start or stop holds it,
# the port is reported as busy (and not ready), since the PID file may be
# about to change.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
host=${TTS_HOST:-127.0.0.1}
[ "$host" = "0.0.0.0" ] && host=127.0.0.1
lb_host=${TTS_LB_HOST:-127.0.0.1}
[ "$lb_host" = "0.0.0.0" ] && lb_host=127.0.0.1

report() {
  local port=$1 pid ready busy=""
  port_busy "$port" && busy=" (a start or stop of this port is in progress)"
  pid=$(cat "$(pidfile_for "$port")" 2>/dev/null || true)
  if ! is_our_node "$pid" "$port"; then
    echo "port $port: not running$busy"
    return 1
  fi
  if [ -z "$busy" ] && ready=$(node_readyz "$host" "$port" 2>/dev/null); then
    echo "port $port: running, PID $pid, ready $ready"
  else
    echo "port $port: running, PID $pid, not ready$busy"
    return 1
  fi
}

report_front() {
  local port=$1 pid busy="" status=0
  port_busy "$port" && busy=" (a start or stop of this port is in progress)"
  pid=$(cat "$(front_pidfile_for "$port")" 2>/dev/null || true)
  if ! is_our_front "$pid" "$port"; then
    echo "front $port: not running$busy"
    return 1
  fi
  if [ -z "$busy" ] && curl -fsS --max-time 5 -o /dev/null "http://$lb_host:$port/readyz" 2>/dev/null; then
    echo "front $port: running, HAProxy master PID $pid, ready (a node behind it answers /readyz)"
  else
    echo "front $port: running, HAProxy master PID $pid, not ready$busy"
    status=1
  fi
  front_servers "$port" | sed 's/^/  /' || status=1
  return "$status"
}

status=0
if [ "${1:-}" = "--all" ]; then
  fronts=$(recorded_fronts)
  ports=$(recorded_ports)
  [ -n "$ports$fronts" ] || { echo "no nodes recorded in $run_dir"; exit 1; }
  for p in $fronts; do report_front "$p" || status=1; done
  for p in $ports; do report "$p" || status=1; done
else
  port=${1:-${TTS_PORT:-7860}}
  if [ -f "$(front_pidfile_for "$port")" ]; then
    report_front "$port" || status=1
  else
    report "$port" || status=1
  fi
fi
exit "$status"
