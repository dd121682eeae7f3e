#!/usr/bin/env bash
# The project's one test command: installs what the tests need, then runs
# every test of the workspace (unit, integration, end-to-end, doc tests).
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p e2e     # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/install-deps.sh ]; then
  scripts/install-deps.sh
fi
if [ -x scripts/fetch-models.sh ]; then
  scripts/fetch-models.sh
fi

export CARGO_TERM_COLOR=never
echo "== shellcheck scripts/*.sh .ci/run tests/scripts/*.sh"
.venv/bin/shellcheck -x scripts/*.sh .ci/run tests/scripts/*.sh
echo "== scripts/check-prometheus.sh (deploy/prometheus: config, rules, alert unit tests)"
scripts/check-prometheus.sh
echo "== cargo build --release -p tts-node (the binary the end-to-end tests start)"
cargo build --release -p tts-node
echo "== tests/scripts/start_scripts.sh (start/stop/status with real processes)"
tests/scripts/start_scripts.sh
echo "== cargo test --workspace (unit, integration, end-to-end and doc tests)"
cargo test --workspace "$@"
