#!/usr/bin/env bash
# Starts one TTS node in the background, idempotently: builds the release
# binary from this checkout (every time: a no-op build takes about a second,
# and a stale binary is never started), fetches the English and Mandarin
# voices if missing,
# replaces a node already recorded for the same port, and waits until it is
# ready.
#
#   scripts/start.sh                       # http://127.0.0.1:7860/
#   TTS_PORT=7861 NODE_ID=tts-node-02 GELF_ENDPOINT=tcp://graylog:12201 scripts/start.sh
#
# Settings: every tts-node environment variable (TTS_HOST, TTS_PORT, NODE_ID,
# GELF_ENDPOINT, TTS_CACHE_DIR, TTS_VOICE, TTS_DEVICE, TTS_WORKERS, ...), plus
# TTS_RUN_DIR (PID, log and lock files, default run/), TTS_NODE_BIN (run this
# binary instead of building), TTS_READY_TIMEOUT_S (default 180),
# TTS_CARGO_FEATURES (e.g. hub). With TTS_TLS_CERT/TTS_TLS_KEY the node
# serves HTTPS and readiness is checked over HTTPS (TTS_TLS_CA to verify it;
# TTS_READY_CERT/TTS_READY_KEY when the node asks clients for a certificate).
# TTS_API_KEYS_FILE (and SIGHUP to reload it) and TTS_ALLOW_ANONYMOUS pass
# through; a node on a non-loopback TTS_HOST needs one of them.
# The build goes where cargo puts it
# (CARGO_TARGET_DIR, CARGO_BUILD_TARGET_DIR, .cargo/config.toml).
# On a GPU host: scripts/build-cuda.sh, then TTS_NODE_BIN=dist/cuda/tts-node.
#
# Starts and stops of one port are serialised by run/tts-node-PORT.lock (held
# from stopping the old node until the new one is ready): two starts at once
# leave one node, recorded in the PID file. The build runs before the lock.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$root"

port=${TTS_PORT:-7860}
host=${TTS_HOST:-127.0.0.1}
voice=${TTS_VOICE:-en_US-joe-medium}
cache=${TTS_CACHE_DIR:-$root/cache_hub}
ready_timeout=${TTS_READY_TIMEOUT_S:-180}
mkdir -p "$run_dir"
pidfile=$(pidfile_for "$port")
logfile=$(logfile_for "$port")

command -v curl >/dev/null || "$root/scripts/install-deps.sh" --runtime
node_bin=$(resolve_node_bin)
# The two voices fetch-models.sh installs (English, Mandarin): fetched when
# either is missing, so the node speaks both languages from the first start.
if [ ! -f "$cache/piper/en_US-joe-medium/en_US-joe-medium.onnx" ] || [ ! -f "$cache/fastspeech2/zh_CN-baker/voice.json" ]; then
  TTS_CACHE_DIR="$cache" "$root/scripts/fetch-models.sh"
fi
if [ "$voice" != "en_US-joe-medium" ] && [ ! -d "$cache/piper/$voice" ] && ! find "$cache" -maxdepth 2 -type d -name "$voice" | grep -q .; then
  echo "voice $voice is not in $cache (TTS_VOICE); put a voice directory there" >&2
  exit 1
fi

lock_port "$port"
# Behind a front (scripts/start-cluster.sh): out of rotation until ready.
front_node_state "$port" maint
stop_port "$port"
connect_host=$host
[ "$host" = "0.0.0.0" ] && connect_host=127.0.0.1
if port_in_use "$connect_host" "$port"; then
  echo "port $port is in use by a process this script did not start; not starting" >&2
  exit 1
fi

echo "starting $node_bin on $host:$port (log: $logfile)"
export TTS_CACHE_DIR="$cache"
touch "$logfile"
log_offset=$(stat -c %s "$logfile")
# 9>&-: the node must not inherit the port's lock.
setsid "$node_bin" --host "$host" --port "$port" </dev/null >>"$logfile" 2>&1 9>&- &
pid=$!
write_pidfile "$port" "$pid"

deadline=$((SECONDS + ready_timeout))
until node_readyz "$connect_host" "$port" -o /dev/null 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "tts-node exited during start." >&2
    show_start_failure "$logfile" "$log_offset" >&2
    rm -f "$pidfile"
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "tts-node not ready after ${ready_timeout}s." >&2
    show_start_failure "$logfile" "$log_offset" >&2
    stop_port "$port" >&2
    exit 1
  fi
  sleep 0.2
done
echo "tts-node ready: $(node_scheme)://$connect_host:$port/ (PID $pid)"
front_node_state "$port" ready
