#!/usr/bin/env bash
# Checks the Prometheus files in deploy/prometheus/ with promtool, or the
# exposition text a running node serves:
#
#   scripts/check-prometheus.sh                  # prometheus.yml, alerts.yml, alerts.test.yml
#   scripts/check-prometheus.sh --metrics URL    # e.g. http://127.0.0.1:7860/metrics
#
# The first form runs `promtool check config` (which also checks the rule
# files it names; no network needed), `promtool check rules` and
# `promtool test rules` (the alerts' unit tests). The second scrapes URL once
# and runs `promtool check metrics` on the text (format and naming lint);
# it exits non-zero when the scrape fails or promtool reports a problem.
#
# promtool comes from Debian's prometheus package, installed when missing
# (as scripts/install-deps.sh does). On hosts that boot with systemd, that
# package also enables a Prometheus service on :9090.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/deploy/prometheus

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
url=""
case "${1:-}" in
  "") ;;
  --metrics)
    url=${2:-}
    [ -n "$url" ] || { echo "check-prometheus.sh: --metrics needs a URL" >&2; exit 2; }
    [ $# -eq 2 ] || { echo "check-prometheus.sh: too many arguments (see --help)" >&2; exit 2; }
    ;;
  -h|--help) usage; exit 0 ;;
  *) echo "check-prometheus.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

if ! command -v promtool >/dev/null; then
  echo "== apt-get install prometheus (for promtool)"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

if [ -n "$url" ]; then
  command -v curl >/dev/null || { echo "check-prometheus.sh: curl is missing: scripts/install-deps.sh --runtime" >&2; exit 1; }
  metrics=$(curl -fsS --max-time 10 "$url") || { echo "check-prometheus.sh: could not scrape $url" >&2; exit 1; }
  [ -n "$metrics" ] || { echo "check-prometheus.sh: $url answered with no metrics" >&2; exit 1; }
  echo "== promtool check metrics < $url ($(grep -c -v '^#' <<<"$metrics") samples)"
  promtool check metrics <<<"$metrics"
  echo "   OK"
  exit 0
fi

cd "$dir"
echo "== $(promtool --version 2>&1 | head -n 1)"
echo "== promtool check config deploy/prometheus/prometheus.yml"
promtool check config prometheus.yml
echo "== promtool check rules deploy/prometheus/alerts.yml"
promtool check rules alerts.yml
echo "== promtool test rules deploy/prometheus/alerts.test.yml"
promtool test rules alerts.test.yml
