#!/usr/bin/env bash
# Stops the node on one port (default TTS_PORT or 7860), or every node this
# checkout started with --all. Only processes recorded in PID files and
# verified to be tts-node are signalled. Each port is stopped under its lock
# (run/tts-node-PORT.lock), so a stop waits for a start in progress to finish.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = "--all" ]; then
  for p in $(recorded_ports); do
    lock_port "$p"
    stop_port "$p"
  done
else
  port=${1:-${TTS_PORT:-7860}}
  lock_port "$port"
  if [ ! -f "$(pidfile_for "$port")" ]; then
    echo "port $port: no node recorded"
  fi
  stop_port "$port"
fi
