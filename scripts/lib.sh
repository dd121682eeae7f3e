# Shared helpers for the node scripts (sourced, not run).
# shellcheck shell=bash

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir=${TTS_RUN_DIR:-$root/run}
# shellcheck disable=SC2034 # used by the scripts that source this file
node_bin=${TTS_NODE_BIN:-$root/target/release/tts-node}

pidfile_for() { echo "$run_dir/tts-node-$1.pid"; }
logfile_for() { echo "$run_dir/tts-node-$1.log"; }

# True when PID is a live tts-node process started for PORT (checked through
# /proc, so a reused PID of another program is never signalled).
is_our_node() {
  local pid=$1 port=$2
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "tts-node" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--port $port "
}

# Stops the node recorded for PORT: SIGTERM, wait, then SIGKILL. Prints what it did.
stop_port() {
  local port=$1 pidfile pid waited=0 limit=${TTS_STOP_TIMEOUT_S:-30}
  pidfile=$(pidfile_for "$port")
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if ! is_our_node "$pid" "$port"; then
    echo "port $port: stale PID file (PID ${pid:-none} is not our tts-node); removing it"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  while is_our_node "$pid" "$port" && [ "$waited" -lt $((limit * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if is_our_node "$pid" "$port"; then
    echo "port $port: PID $pid did not stop within ${limit}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pidfile"
  echo "port $port: stopped PID $pid"
}

# Ports that have a PID file.
recorded_ports() {
  local f
  for f in "$run_dir"/tts-node-*.pid; do
    [ -e "$f" ] || continue
    f=${f##*/tts-node-}
    echo "${f%.pid}"
  done
}

# True when something accepts connections on HOST:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}
