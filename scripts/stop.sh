#!/usr/bin/env bash
# Stops the node or the HAProxy front (scripts/start-cluster.sh) on one port
# (default TTS_PORT or 7860), or, with --all, every front and then every node
# this checkout started. Only processes recorded in PID files and verified
# to be ours (tts-node, or HAProxy running our rendered configuration) are
# signalled. Each port is stopped under its lock (run/tts-node-PORT.lock), so
# a stop waits for a start in progress to finish.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = "--all" ]; then
  # The front first: clients then get a refused connection, not a front
  # whose nodes are going away.
  for p in $(recorded_fronts); do
    lock_port "$p"
    stop_front "$p"
  done
  for p in $(recorded_ports); do
    lock_port "$p"
    stop_port "$p"
  done
else
  port=${1:-${TTS_PORT:-7860}}
  lock_port "$port"
  if [ -f "$(front_pidfile_for "$port")" ]; then
    stop_front "$port"
  elif [ ! -f "$(pidfile_for "$port")" ]; then
    echo "port $port: no node recorded"
  fi
  # Behind a front: no new request goes to it; start.sh puts it back.
  [ -f "$(pidfile_for "$port")" ] && front_node_state "$port" maint
  stop_port "$port"
fi
