#!/usr/bin/env bash
# Tests of scripts/start.sh, stop.sh and status.sh with real processes: the
# release node, the default voice, real ports. scripts/test.sh runs it after
# `cargo build --release -p tts-node`; it needs that build (in the target
# directory cargo reports, CARGO_TARGET_DIR respected) and the voice
# (scripts/fetch-models.sh).
#
#   tests/scripts/start_scripts.sh
#
# (a) Two start.sh for one port at once, five rounds: both succeed, exactly
#     one tts-node process has `--port P`, the PID file names it, status.sh
#     reports it running and ready, stop.sh stops it and no process for the
#     port remains. Then a start.sh and a stop.sh at once: afterwards either
#     one node runs and the PID file names it, or none runs and no PID file
#     is left; and a stop.sh issued while a start.sh holds the port's lock
#     waits for it and stops the node it started.
# (b) start.sh with CARGO_TARGET_DIR set to another directory (seeded with a
#     copy of the real target/release, so only tts-node is ever compiled):
#     the node runs from that directory and answers /readyz, the real
#     target's binary is left alone; after a source file of tts-node is
#     touched, start.sh rebuilds tts-node (and nothing else) there and serves
#     the new binary. The file's modification time is restored afterwards
#     (when its contents are unchanged), so the real target stays fresh.
#
# Ports come from 7873-7899 (below the kernel's ephemeral range, so no
# outgoing connection takes them), PID and log files from a temporary run
# directory; whatever happens, the nodes this test started are stopped.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# The test's own settings, whatever the caller's environment says.
unset TTS_NODE_BIN TTS_HOST TTS_CARGO_FEATURES TTS_VOICE TTS_CACHE_DIR GELF_ENDPOINT GELF_SPOOL_DIR NODE_ID
export TTS_DEVICE=cpu TTS_STOP_TIMEOUT_S=30 TTS_READY_TIMEOUT_S=120 CARGO_TERM_COLOR=never
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tts-start-scripts.XXXXXX")
export TTS_RUN_DIR=$tmp/run
run_dir=$TTS_RUN_DIR
mkdir -p "$run_dir"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs_since() { # secs_since START_MS → "1.23"
  local d=$(($(now_ms) - $1))
  printf '%d.%02d' $((d / 1000)) $((d % 1000 / 10))
}
test_start=$(now_ms)

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# PIDs of tts-node processes whose command line has `--port PORT` (exact
# arguments), read from /proc independently of the scripts' own checks.
node_pids() {
  local d pids=()
  for d in /proc/[0-9]*; do
    [ "$(cat "$d/comm" 2>/dev/null)" = tts-node ] || continue
    if tr '\0' '\n' <"$d/cmdline" 2>/dev/null \
      | awk -v port="$1" 'prev == "--port" && $0 == port { found = 1 } { prev = $0 } END { exit !found }'; then
      pids+=("${d#/proc/}")
    fi
  done
  echo "${pids[*]}"
}

# True when PID was started by this test (its environment names our run dir).
ours() {
  tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | grep -qxF "TTS_RUN_DIR=$run_dir"
}

ready() { curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$1/readyz"; }

# Shows a script's output when an assertion about it fails.
show() {
  local f
  for f in "$@"; do
    echo "--- $f" >&2
    cat "$f" >&2
  done
}

background=()
touched=""
cleanup() {
  local status=$? pid p
  for pid in "${background[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${background[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/stop.sh --all >/dev/null 2>&1 || true
  for p in "${ports[@]}"; do
    for pid in $(node_pids "$p"); do
      if ours "$pid"; then
        echo "cleanup: killing tts-node PID $pid on port $p" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
  done
  if [ -n "$touched" ] && [ "$(sha256sum <"$touched")" = "$(cat "$tmp/touched.sha256")" ]; then
    touch -r "$tmp/touched.mtime" "$touched"
  fi
  rm -rf "$tmp"
  exit "$status"
}
ports=()
trap cleanup EXIT
trap 'exit 130' INT TERM

voice=$root/cache_hub/piper/en_US-joe-medium/en_US-joe-medium.onnx
[ -f "$voice" ] || fail "$voice is missing: run scripts/fetch-models.sh"
command -v flock >/dev/null || fail "flock (util-linux) is missing"

# Two free ports below the ephemeral range.
for p in $(seq 7873 7899); do
  if ! port_in_use 127.0.0.1 "$p" && [ -z "$(node_pids "$p")" ]; then
    ports+=("$p")
  fi
  [ "${#ports[@]}" -eq 2 ] && break
done
[ "${#ports[@]}" -eq 2 ] || fail "no two free ports in 7873-7899"
port_a=${ports[0]}
port_b=${ports[1]}
echo "== scripts test: ports $port_a and $port_b, run directory $run_dir"

# Exactly one node on PORT, named by the PID file, reported running and ready.
expect_one_node() {
  local port=$1 what=$2 pids recorded out
  pids=$(node_pids "$port")
  [ -n "$pids" ] || fail "$what: no tts-node process with --port $port"
  [ "$(wc -w <<<"$pids")" -eq 1 ] || fail "$what: $(wc -w <<<"$pids") tts-node processes with --port $port (PIDs $pids)"
  recorded=$(cat "$(pidfile_for "$port")" 2>/dev/null || true)
  [ "$recorded" = "$pids" ] || fail "$what: the PID file says '${recorded}', the running node is PID $pids"
  ready "$port" || fail "$what: /readyz on port $port does not answer 200"
  out=$(scripts/status.sh "$port") || fail "$what: status.sh exited non-zero: $out"
  grep -q "running, PID $pids, ready" <<<"$out" || fail "$what: status.sh says '$out'"
}

# No node on PORT, no PID file, status.sh says not running.
expect_no_node() {
  local port=$1 what=$2 pids out
  pids=$(node_pids "$port")
  [ -z "$pids" ] || fail "$what: tts-node processes with --port $port remain (PIDs $pids)"
  [ ! -e "$(pidfile_for "$port")" ] || fail "$what: the PID file of port $port remains"
  if out=$(scripts/status.sh "$port"); then
    fail "$what: status.sh exited 0 with no node: $out"
  fi
  grep -q "not running" <<<"$out" || fail "$what: status.sh says '$out'"
}

# (a) Concurrent starts.
t=$(now_ms)
for round in 1 2 3 4 5; do
  r=$(now_ms)
  TTS_PORT=$port_a scripts/start.sh >"$tmp/a$round-1.out" 2>&1 &
  s1=$!
  TTS_PORT=$port_a scripts/start.sh >"$tmp/a$round-2.out" 2>&1 &
  s2=$!
  background=("$s1" "$s2")
  wait "$s1" || { show "$tmp/a$round-1.out"; fail "(a) round $round: the first start.sh failed"; }
  wait "$s2" || { show "$tmp/a$round-2.out"; fail "(a) round $round: the second start.sh failed"; }
  background=()
  expect_one_node "$port_a" "(a) round $round, two starts at once"
  pid=$(node_pids "$port_a")
  scripts/stop.sh "$port_a" >"$tmp/a$round-stop.out" 2>&1 || { show "$tmp/a$round-stop.out"; fail "(a) round $round: stop.sh failed"; }
  expect_no_node "$port_a" "(a) round $round, after stop.sh"
  echo "   (a) round $round: two starts -> one node (PID $pid), stopped: $(secs_since "$r") s"
done
# A start and a stop at once (the stop usually takes the lock first, while
# the start builds), then a stop issued while a start holds the lock: it must
# wait for that start and stop its node.
for round in 1 2; do
  r=$(now_ms)
  TTS_PORT=$port_a scripts/start.sh >"$tmp/s$round-0.out" 2>&1 || { show "$tmp/s$round-0.out"; fail "(a) start and stop, round $round: start.sh failed"; }
  TTS_PORT=$port_a scripts/start.sh >"$tmp/s$round-1.out" 2>&1 &
  s1=$!
  background=("$s1")
  if [ "$round" = 2 ]; then
    for _ in $(seq 100); do
      port_busy "$port_a" && break
      sleep 0.1
    done
    port_busy "$port_a" || fail "(a) start and stop, round 2: start.sh never took the lock of port $port_a"
  fi
  scripts/stop.sh "$port_a" >"$tmp/s$round-2.out" 2>&1 &
  s2=$!
  background+=("$s2")
  wait "$s1" || { show "$tmp/s$round-1.out"; fail "(a) start and stop, round $round: start.sh failed"; }
  wait "$s2" || { show "$tmp/s$round-2.out"; fail "(a) start and stop, round $round: stop.sh failed"; }
  background=()
  if [ -e "$(pidfile_for "$port_a")" ]; then
    [ "$round" = 1 ] || { show "$tmp/s$round-1.out" "$tmp/s$round-2.out"; fail "(a) a stop issued during a start did not stop the started node"; }
    expect_one_node "$port_a" "(a) start and stop at once, round $round (start last)"
    outcome="start last, one node"
    scripts/stop.sh "$port_a" >/dev/null
  else
    outcome="stop last, no node"
  fi
  expect_no_node "$port_a" "(a) start and stop at once, round $round"
  [ "$round" = 1 ] || outcome="stop issued during the start waited for it: $outcome"
  echo "   (a) start and stop at once, round $round: $outcome: $(secs_since "$r") s"
done
echo "(a) concurrent starts and stops on one port: PASS in $(secs_since "$t") s"

# (b) CARGO_TARGET_DIR elsewhere, and a rebuild after a source change.
t=$(now_ms)
real_target=$(cargo_target_dir)
real_bin=$real_target/release/tts-node
[ -x "$real_bin" ] || fail "$real_bin is missing: run cargo build --release -p tts-node first"
real_ino=$(stat -c %i "$real_bin")
seed=$tmp/target
mkdir -p "$seed"
r=$(now_ms)
cp -a --reflink=auto "$real_target/release" "$seed/release"
seed=$(cd "$seed" && pwd -P)
echo "   (b) copied $real_target/release to $seed/release: $(secs_since "$r") s"

r=$(now_ms)
CARGO_TARGET_DIR=$seed TTS_PORT=$port_b scripts/start.sh >"$tmp/b1.out" 2>&1 || { show "$tmp/b1.out"; fail "(b) start.sh with CARGO_TARGET_DIR=$seed failed"; }
if grep -q '^ *Compiling ' "$tmp/b1.out"; then
  show "$tmp/b1.out"
  fail "(b) cargo did not treat the copied target directory as fresh: $(grep '^ *Compiling ' "$tmp/b1.out" | awk '{print $2}' | tr '\n' ' ')"
fi
expect_one_node "$port_b" "(b) start with CARGO_TARGET_DIR"
pid1=$(node_pids "$port_b")
exe1=$(readlink "/proc/$pid1/exe")
[ "$exe1" = "$seed/release/tts-node" ] || fail "(b) the node runs $exe1, not $seed/release/tts-node"
ino1=$(stat -L -c %i "/proc/$pid1/exe")
echo "   (b) start.sh with CARGO_TARGET_DIR: nothing compiled, node PID $pid1 runs $exe1: $(secs_since "$r") s"

touched=$root/tts-node/src/main.rs
sha256sum <"$touched" >"$tmp/touched.sha256"
touch -r "$touched" "$tmp/touched.mtime"
touch "$touched"
r=$(now_ms)
CARGO_TARGET_DIR=$seed TTS_PORT=$port_b scripts/start.sh >"$tmp/b2.out" 2>&1 || { show "$tmp/b2.out"; fail "(b) start.sh after touching $touched failed"; }
rebuild_s=$(secs_since "$r")
compiled=$(grep '^ *Compiling ' "$tmp/b2.out" | awk '{print $2}' | sort -u | tr '\n' ' ')
[ "$compiled" = "tts-node " ] || { show "$tmp/b2.out"; fail "(b) after touching $touched cargo compiled '${compiled}', expected tts-node only"; }
expect_one_node "$port_b" "(b) start after a source change"
pid2=$(node_pids "$port_b")
[ "$pid2" != "$pid1" ] || fail "(b) the node was not replaced (PID $pid1)"
exe2=$(readlink "/proc/$pid2/exe")
ino2=$(stat -L -c %i "/proc/$pid2/exe")
[ "$exe2" = "$seed/release/tts-node" ] || fail "(b) the rebuilt node runs $exe2, not $seed/release/tts-node"
[ "$ino2" != "$ino1" ] || fail "(b) the node after the source change runs the same binary (inode $ino1) as before"
[ "$ino2" = "$(stat -c %i "$seed/release/tts-node")" ] || fail "(b) the node does not run the binary now in $seed/release"
[ "$(stat -c %i "$real_bin")" = "$real_ino" ] || fail "(b) $real_bin was rebuilt; the builds were to go to $seed"
echo "   (b) touched $touched: start.sh rebuilt tts-node only and serves the new binary (PID $pid2): $rebuild_s s"
touch -r "$tmp/touched.mtime" "$touched"
touched=""
scripts/stop.sh "$port_b" >/dev/null
expect_no_node "$port_b" "(b) after stop.sh"
echo "(b) CARGO_TARGET_DIR and rebuild on start: PASS in $(secs_since "$t") s"

# (c) fetch-models.sh --indextts2 without a reachable hub: a clear message in
# seconds, exit 1, nothing built or written.
t=$(now_ms)
if HF_HUB_OFFLINE=1 TTS_CACHE_DIR="$tmp/cache" scripts/fetch-models.sh --indextts2 >"$tmp/c.out" 2>&1; then
  show "$tmp/c.out"
  fail "(c) fetch-models.sh --indextts2 succeeded with HF_HUB_OFFLINE=1"
fi
grep -q "cannot download IndexTTS2" "$tmp/c.out" || { show "$tmp/c.out"; fail "(c) no clear message"; }
[ ! -e "$tmp/cache" ] || fail "(c) fetch-models.sh --indextts2 wrote $tmp/cache"
[ "$(( $(now_ms) - t ))" -lt 5000 ] || fail "(c) the offline failure took $(secs_since "$t") s"
echo "(c) fetch-models.sh --indextts2 offline: fails fast with a message: PASS in $(secs_since "$t") s"

echo "scripts test: PASS in $(secs_since "$test_start") s"
