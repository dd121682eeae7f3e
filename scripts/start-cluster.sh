#!/usr/bin/env bash
# Starts N nodes on consecutive ports from TTS_PORT (default 7860), with node
# ids NODE_ID_PREFIX-01 … (default tts-node), all shipping to GELF_ENDPOINT.
#
#   GELF_ENDPOINT=tcp://graylog:12201 scripts/start-cluster.sh 3
set -euo pipefail
n=${1:-}
if ! [[ "$n" =~ ^[1-9][0-9]?$ ]]; then
  echo "usage: scripts/start-cluster.sh N   (N from 1 to 99)" >&2
  exit 2
fi
here=$(dirname "$0")
base=${TTS_PORT:-7860}
prefix=${NODE_ID_PREFIX:-tts-node}
for ((i = 0; i < n; i++)); do
  TTS_PORT=$((base + i)) NODE_ID=$(printf '%s-%02d' "$prefix" $((i + 1))) "$here/start.sh"
done
