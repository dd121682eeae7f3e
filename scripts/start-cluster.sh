#!/usr/bin/env bash
# Starts N nodes and one HAProxy in front of them: clients use one URL,
# http://127.0.0.1:TTS_LB_PORT/ (default 7860), the nodes listen on the ports
# after it (7861 … for N nodes) with node ids NODE_ID_PREFIX-01 … (default
# tts-node), all shipping to GELF_ENDPOINT. Idempotent, as start.sh: a
# second run replaces each node (start.sh) and reloads the front in place
# (HAProxy's master reloads its workers; connections in flight end on the
# old one), never duplicating either.
#
#   GELF_ENDPOINT=tcp://graylog:12201 scripts/start-cluster.sh 3
#
# The front (deploy/haproxy/haproxy.cfg.template, rendered into
# run/haproxy-PORT.cfg): least connections; a node gets traffic once its
# /readyz is 200; each node takes TTS_WORKERS + TTS_QUEUE_SIZE requests at a
# time and the rest wait in the front's queue (TTS_LB_QUEUE_TIMEOUT_S, then
# 503); a request a node refuses before answering (connection refused, or
# 503 QUEUE_FULL / NOT_READY / SHUTTING_DOWN) goes to another node.
# Settings: those of start.sh, plus TTS_LB_PORT, TTS_LB_HOST (default
# 127.0.0.1), TTS_LB_QUEUE_TIMEOUT_S (default 30), HAPROXY (the binary,
# default haproxy; installed with scripts/install-deps.sh --cluster
# when missing).
set -euo pipefail
n=${1:-}
if ! [[ "$n" =~ ^[1-9][0-9]?$ ]]; then
  echo "usage: scripts/start-cluster.sh N   (N from 1 to 99)" >&2
  exit 2
fi
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$root" # a relative TTS_NODE_BIN is relative to the checkout, as in start.sh
haproxy=${HAPROXY:-haproxy}
if ! command -v "$haproxy" >/dev/null && [ -z "${HAPROXY:-}" ]; then
  "$root/scripts/install-deps.sh" --cluster
fi
command -v "$haproxy" >/dev/null || {
  echo "$haproxy is not installed (HAPROXY): scripts/install-deps.sh --cluster installs Debian's" >&2
  exit 1
}
TTS_NODE_BIN=$(resolve_node_bin)
export TTS_NODE_BIN
lb_port=${TTS_LB_PORT:-7860}
lb_host=${TTS_LB_HOST:-127.0.0.1}
prefix=${NODE_ID_PREFIX:-tts-node}
host=${TTS_HOST:-127.0.0.1}
[ "$host" = "0.0.0.0" ] && host=127.0.0.1
servers=""
for ((i = 1; i <= n; i++)); do
  port=$((lb_port + i))
  id=$(printf '%s-%02d' "$prefix" "$i")
  TTS_PORT=$port NODE_ID=$id "$root/scripts/start.sh"
  servers+="    server $id $host:$port"$'\n'
done

# The front: rendered, checked, then started or reloaded, under its port's lock.
lock_port "$lb_port"
cfg=$(front_cfg_for "$lb_port")
pidfile=$(front_pidfile_for "$lb_port")
logfile=$(front_logfile_for "$lb_port")
node_timeout=${TTS_REQUEST_TIMEOUT_S:-60}
python3 - "$root/deploy/haproxy/haproxy.cfg.template" "$cfg.new" <<PY
import sys
text = open(sys.argv[1]).read()
values = {
    "LB_HOST": "$lb_host",
    "LB_PORT": "$lb_port",
    "STATS_SOCKET": "$(front_sock_for "$lb_port")",
    "STATE_FILE": "$(front_state_for "$lb_port")",
    "GLOBAL_MAXCONN": "4096",
    "NODE_TIMEOUT_S": "$node_timeout",
    "TIMEOUT_S": str($node_timeout + 30),
    "QUEUE_TIMEOUT_S": "${TTS_LB_QUEUE_TIMEOUT_S:-30}",
    "NODE_MAXCONN": str(${TTS_WORKERS:-1} + ${TTS_QUEUE_SIZE:-8}),
    "SERVERS": """$servers""".rstrip("\n"),
}
for k, v in values.items():
    text = text.replace("@" + k + "@", v)
open(sys.argv[2], "w").write(text)
PY
"$haproxy" -c -q -f "$cfg.new" || { echo "the rendered HAProxy configuration $cfg.new does not check" >&2; exit 1; }
mv -f "$cfg.new" "$cfg"
pid=$(cat "$pidfile" 2>/dev/null || true)
if is_our_front "$pid" "$lb_port"; then
  echo "reloading the front on $lb_host:$lb_port (HAProxy master PID $pid)"
  front_save_state "$lb_port" || echo "the nodes' state was not saved: the new worker checks each node afresh" >&2
  kill -USR2 "$pid"
else
  rm -f "$pidfile" "$(front_state_for "$lb_port")"
  if port_in_use "$lb_host" "$lb_port"; then
    echo "port $lb_port is in use by a process this script did not start; not starting the front" >&2
    exit 1
  fi
  echo "starting the front on $lb_host:$lb_port (log: $logfile)"
  # -W: master-worker (a reload keeps the listening socket); -db: in the
  # foreground, logging to its stdout (the log file).
  setsid "$haproxy" -W -db -f "$cfg" -p "$pidfile" </dev/null >>"$logfile" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$pidfile"
fi
deadline=$((SECONDS + ${TTS_READY_TIMEOUT_S:-180}))
until curl -fsS --max-time 5 -o /dev/null "http://$lb_host:$lb_port/readyz" 2>/dev/null; do
  if ! is_our_front "$pid" "$lb_port"; then
    echo "HAProxy exited during start; last lines of $logfile:" >&2
    tail -n 20 "$logfile" >&2
    exit 1
  fi
  [ "$SECONDS" -lt "$deadline" ] || { echo "the front is not ready after ${TTS_READY_TIMEOUT_S:-180}s" >&2; exit 1; }
  sleep 0.2
done
echo "cluster ready: http://$lb_host:$lb_port/ in front of $n node(s) (HAProxy master PID $pid)"
