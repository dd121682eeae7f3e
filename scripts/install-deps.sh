#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine (idempotent, quick
# when everything is already there):
#   - curl (the node scripts), Debian's chromium (the web page test),
#   - playwright-core in tests/browser (drives chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs npm)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "== apt-get install ${need_apt[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "== npm install (tests/browser)"
  (cd tests/browser && npm install --no-audit --no-fund --silent)
fi
