# Shared helpers for the node scripts (sourced, not run).
# shellcheck shell=bash

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir=${TTS_RUN_DIR:-$root/run}

pidfile_for() { echo "$run_dir/tts-node-$1.pid"; }
logfile_for() { echo "$run_dir/tts-node-$1.log"; }
lockfile_for() { echo "$run_dir/tts-node-$1.lock"; }

# The directory cargo builds this workspace into, as cargo itself resolves it
# (CARGO_TARGET_DIR, CARGO_BUILD_TARGET_DIR, build.target-dir in
# .cargo/config.toml, else target/).
cargo_target_dir() {
  (cd "$root" && cargo metadata --format-version 1 --no-deps) \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# cargo_build_executable NAME ARGS...: runs `cargo build ARGS...` in the
# workspace (progress and diagnostics on stderr) and prints the path of the
# executable NAME that cargo reports, wherever its target directory and
# target triple put it.
cargo_build_executable() {
  local name=$1 json
  shift
  json=$(cd "$root" && cargo build --message-format=json-render-diagnostics "$@") || return 1
  python3 -c '
import json, sys
name, exe = sys.argv[1], None
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == name and m.get("executable"):
        exe = m["executable"]
if not exe:
    sys.exit(f"cargo reported no executable named {name}")
print(exe)' "$name" <<<"$json"
}

# Builds the release node from this checkout (a no-op when it is up to date;
# TTS_CARGO_FEATURES adds features) and prints the binary's path. Building
# needs espeak-ng's library and headers: installed first when missing.
build_node() {
  local features=()
  [ -n "${TTS_CARGO_FEATURES:-}" ] && features=(--features "$TTS_CARGO_FEATURES")
  command -v cargo >/dev/null || {
    echo "cargo is not installed: install Rust (rustup.rs), or set TTS_NODE_BIN to a built tts-node" >&2
    return 1
  }
  if [ ! -f /usr/include/espeak-ng/speak_lib.h ] || ! command -v cmake >/dev/null; then
    "$root/scripts/install-deps.sh" --runtime >&2
  fi
  echo "building tts-node (cargo build --release -p tts-node${features[*]:+ ${features[*]}})..." >&2
  cargo_build_executable tts-node --release -p tts-node "${features[@]}"
}

# The binary to run: TTS_NODE_BIN when set, else the release node built from
# this checkout (see build_node), so a stale binary is never started.
resolve_node_bin() {
  if [ -n "${TTS_NODE_BIN:-}" ]; then
    [ -x "$TTS_NODE_BIN" ] || { echo "TTS_NODE_BIN=$TTS_NODE_BIN is not an executable file" >&2; return 1; }
    echo "$TTS_NODE_BIN"
  else
    build_node
  fi
}

# Takes the lock of PORT (run/tts-node-PORT.lock) on file descriptor 9 and
# holds it until the script exits or locks another port. Every start and stop
# of a port runs under it, so two scripts never interleave on one port. The
# lock files stay in the run directory: removing one while a script waits on
# it would let a third script take a different lock.
lock_port() {
  local port=$1 lockfile
  lockfile=$(lockfile_for "$port")
  mkdir -p "$run_dir"
  exec 9>>"$lockfile"
  if ! flock -n 9; then
    echo "port $port: waiting for another start or stop of this port to finish" >&2
    flock 9
  fi
}

# True when a start or stop holds the lock of PORT right now. Tries a shared
# lock, which only an exclusive holder refuses (two status checks do not see
# each other as busy). Never creates the lock file.
port_busy() {
  local lockfile
  lockfile=$(lockfile_for "$1")
  [ -e "$lockfile" ] && ! flock -s -n "$lockfile" true
}

# True when PID is a live tts-node process started for PORT (checked through
# /proc: its name, and `--port PORT` as two arguments of its command line), so
# a reused PID of another program is never signalled.
is_our_node() {
  local pid=$1 port=$2
  [[ "$pid" =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "tts-node" ] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null \
    | awk -v port="$port" 'prev == "--port" && $0 == port { found = 1 } { prev = $0 } END { exit !found }'
}

# Records PID for PORT; written whole (rename), so a reader never sees half a file.
write_pidfile() {
  local port=$1 pid=$2 pidfile
  pidfile=$(pidfile_for "$port")
  echo "$pid" >"$pidfile.tmp.$$"
  mv -f "$pidfile.tmp.$$" "$pidfile"
}

# Stops the node recorded for PORT: SIGTERM, wait, then SIGKILL. Prints what
# it did. Callers hold the port's lock (lock_port).
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

# Prints what a failed start left in LOGFILE from byte OFFSET on (this start's
# lines only; the log is appended to): the error lines first — the ERROR
# event, a panic, and the process's `Error:` message with its causes, which a
# backtrace (RUST_BACKTRACE=1) pushes out of the tail — then the last 30 lines.
# A node's /readyz: HTTPS when TTS_TLS_CERT is set, checked against
# TTS_TLS_CA when given (else not verified: a readiness probe of a node on
# this host), with TTS_READY_CERT / TTS_READY_KEY as the client certificate
# when the node asks for one (TTS_TLS_CLIENT_CA). Extra curl arguments go
# before the URL.
node_scheme() {
  if [ -n "${TTS_TLS_CERT:-}" ]; then echo https; else echo http; fi
}
node_readyz() {
  local host=$1 port=$2
  shift 2
  local args=(-fsS --max-time 5)
  if [ -n "${TTS_TLS_CERT:-}" ]; then
    if [ -n "${TTS_TLS_CA:-}" ]; then args+=(--cacert "$TTS_TLS_CA"); else args+=(--insecure); fi
    if [ -n "${TTS_READY_CERT:-}" ]; then args+=(--cert "$TTS_READY_CERT" --key "${TTS_READY_KEY:-$TTS_READY_CERT}"); fi
  fi
  curl "${args[@]}" "$@" "$(node_scheme)://$host:$port/readyz"
}

show_start_failure() {
  local logfile=$1 offset=$2 errors
  errors=$(tail -c +"$((offset + 1))" "$logfile" | awk '
    /ERROR|error_code|panicked/ && events < 5 { print; events++; next }
    /^Error:/ { block = 1; lines = 0 }
    block && /^Stack backtrace:/ { block = 0 }
    block && lines < 12 && NF { print; lines++ }')
  if [ -n "$errors" ]; then
    echo "error lines:"
    echo "$errors"
    echo "---"
  fi
  echo "last lines of $logfile:"
  tail -c +"$((offset + 1))" "$logfile" | tail -n 30
}

# ---------------------------------------------------------------- the front

front_pidfile_for() { echo "$run_dir/haproxy-$1.pid"; }
front_logfile_for() { echo "$run_dir/haproxy-$1.log"; }
front_cfg_for() { echo "$run_dir/haproxy-$1.cfg"; }
# HAProxy's stats socket (admin level, mode 600). A Unix socket path has at
# most 107 bytes: a deep run directory gets one under /tmp, named by a hash
# of it.
front_sock_for() {
  local sock="$run_dir/haproxy-$1.sock"
  if [ "${#sock}" -gt 100 ]; then
    sock="/tmp/tts-front-$(id -u)-$1-$(printf '%s' "$run_dir" | cksum | cut -d' ' -f1).sock"
  fi
  echo "$sock"
}

front_state_for() { echo "$run_dir/haproxy-$1.state"; }

# front_command PORT COMMAND: sends COMMAND to front PORT's stats socket and
# prints the answer. Fails when the socket does not answer.
front_command() {
  python3 - "$(front_sock_for "$1")" "$2" <<'PY'
import socket, sys
try:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sys.argv[1])
    s.sendall(sys.argv[2].encode() + b"\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
except OSError as e:
    sys.exit(f"the stats socket {sys.argv[1]} does not answer: {e}")
sys.stdout.write(data.decode(errors="replace"))
PY
}

# Saves the state of the nodes behind front PORT (up, down, in maintenance)
# where the next HAProxy worker reads it at a reload.
front_save_state() {
  local state
  state=$(front_state_for "$1")
  front_command "$1" "show servers state" >"$state.tmp" && mv -f "$state.tmp" "$state"
}

# Prints a line per node behind front PORT: its name and address, HAProxy's
# view of it (UP, DOWN, MAINT, …, with the last check), the requests it is
# serving and those queued for it, and how many it has served.
front_servers() {
  local stat
  stat=$(front_command "$1" "show stat") || return 1
  python3 - "$stat" <<'PY'
import csv, io, sys
for r in csv.DictReader(io.StringIO(sys.argv[1].lstrip("# "))):
    if r["pxname"] == "nodes" and r["svname"] not in ("BACKEND", "FRONTEND"):
        print(f"{r['svname']} {r['addr']}: {r['status']} (check: {r['check_status']}), "
              f"{r['scur']} in progress, {r['qcur']} queued, {r['stot']} served")
PY
}

# front_node_state PORT STATE: every running front of this checkout that has
# node PORT behind it puts it in STATE: `maint` before the node stops (no
# new request goes to it; those in flight end), `ready` once it is ready
# again (back in rotation). A restarted node is thus never sent a request
# while it loads, even when it binds its port before its health check has
# seen it go down.
front_node_state() {
  local port=$1 state=$2 lb name
  for lb in $(recorded_fronts); do
    is_our_front "$(cat "$(front_pidfile_for "$lb")" 2>/dev/null)" "$lb" || continue
    name=$(awk -v p=":$port" '$1 == "server" && substr($3, length($3) - length(p) + 1) == p { print $2 }' "$(front_cfg_for "$lb")")
    [ -n "$name" ] || continue
    if front_command "$lb" "set server nodes/$name state $state" >/dev/null; then
      echo "front $lb: node $name set to $state"
    fi
  done
}

# True when PID is the HAProxy master this checkout started for front PORT
# (its name, and its configuration file on its command line).
is_our_front() {
  local pid=$1 port=$2
  [[ "$pid" =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "haproxy" ] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$(front_cfg_for "$port")"
}

# Front ports that have a PID file.
recorded_fronts() {
  local f
  for f in "$run_dir"/haproxy-*.pid; do
    [ -e "$f" ] || continue
    f=${f##*/haproxy-}
    echo "${f%.pid}"
  done
}

# Stops the front recorded for PORT (SIGUSR1: a soft stop that lets the
# requests in flight end, then SIGTERM). Callers hold the lock of PORT.
stop_front() {
  local port=$1 pidfile pid waited=0 limit=${TTS_STOP_TIMEOUT_S:-30}
  pidfile=$(front_pidfile_for "$port")
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if ! is_our_front "$pid" "$port"; then
    echo "front $port: stale PID file (PID ${pid:-none} is not our HAProxy); removing it"
    rm -f "$pidfile"
    return 0
  fi
  kill -USR1 "$pid" 2>/dev/null || true
  while is_our_front "$pid" "$port" && [ "$waited" -lt $((limit * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if is_our_front "$pid" "$port"; then
    kill -TERM "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pidfile"
  echo "front $port: stopped HAProxy PID $pid"
}
