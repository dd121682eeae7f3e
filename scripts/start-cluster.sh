#!/usr/bin/env bash
# Starts N nodes on consecutive ports from TTS_PORT (default 7860), with node
# ids NODE_ID_PREFIX-01 … (default tts-node), all shipping to GELF_ENDPOINT.
# Builds the release node once (as start.sh does, unless TTS_NODE_BIN is
# set), then starts every node with that binary.
#
#   GELF_ENDPOINT=tcp://graylog:12201 scripts/start-cluster.sh 3
set -euo pipefail
n=${1:-}
if ! [[ "$n" =~ ^[1-9][0-9]?$ ]]; then
  echo "usage: scripts/start-cluster.sh N   (N from 1 to 99)" >&2
  exit 2
fi
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$root" # a relative TTS_NODE_BIN is relative to the checkout, as in start.sh
TTS_NODE_BIN=$(resolve_node_bin)
export TTS_NODE_BIN
base=${TTS_PORT:-7860}
prefix=${NODE_ID_PREFIX:-tts-node}
for ((i = 0; i < n; i++)); do
  TTS_PORT=$((base + i)) NODE_ID=$(printf '%s-%02d' "$prefix" $((i + 1))) "$root/scripts/start.sh"
done
