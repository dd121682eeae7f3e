#!/usr/bin/env bash
# The project's one test command: installs what the tests need, then runs
# every test of the workspace (unit, integration, end-to-end, doc tests).
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p e2e     # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase prints when it starts and the whole run how long it took, so a CI
# log shows where the time goes (the budget is 30 minutes on two cores).
phase() { echo "== [$(date -u +%H:%M:%S), +${SECONDS}s] $*"; }
trap 'echo "== scripts/test.sh finished after ${SECONDS}s (exit $?)"' EXIT

phase "scripts/install-deps.sh, scripts/fetch-models.sh"
if [ -x scripts/install-deps.sh ]; then
  scripts/install-deps.sh
fi
if [ -x scripts/fetch-models.sh ]; then
  scripts/fetch-models.sh
fi

export CARGO_TERM_COLOR=never
phase "shellcheck scripts/*.sh .ci/run tests/scripts/*.sh"
.venv/bin/shellcheck -x scripts/*.sh .ci/run tests/scripts/*.sh
phase "scripts/check-prometheus.sh (deploy/prometheus: config, rules, alert unit tests)"
scripts/check-prometheus.sh
phase "cargo build --release -p tts-node (the binary the end-to-end tests start)"
cargo build --release -p tts-node
phase "tests/scripts/start_scripts.sh (start/stop/status with real processes)"
tests/scripts/start_scripts.sh
phase "cargo test --workspace (unit, integration, end-to-end and doc tests)"
cargo test --workspace "$@"
