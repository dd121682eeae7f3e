#!/usr/bin/env bash
# The GPU checks of the CUDA build, in one run on a GPU host:
#   (a) parity: the voice on CUDA against the same binary on the CPU, noise
#       off — Pearson correlation of the waveforms, must be ≥ 0.999;
#   (b) real-time factor on the GPU, a short and a long text (median of
#       --repeat runs in one process, after a first run that loads kernels);
#   (c) the node on the GPU shipping GELF to a receiver here: every
#       "Audio generation completed" event must carry gpu_memory_used_gb > 0
#       and gpu_memory_total_gb equal to what nvidia-smi reports;
#   (d) REQUESTS requests (default 1000): the node's GPU memory (NVML, from
#       the events) and resident memory (/proc) must not grow between the
#       second tenth of the run (the first warms allocators up) and the last.
# Needs python3 (standard library only; the measuring steps are in
# scripts/gpu_check.py) and, for --device cuda, nvidia-smi.
#
#   scripts/gpu-check.sh [--bin dist/cuda] [--voice cache_hub/piper/en_US-joe-medium]
#                        [--device cuda|cpu] [--requests 1000] [--out gpu-check]
#
# `--device cpu` runs the same steps on the CPU (the parity step then compares
# the CPU with itself, and (c) expects no GPU fields): it is how this script is
# checked on machines without a GPU. Results: OUT/summary.txt, OUT/events.jsonl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/scripts

bin=$root/dist/cuda
voice=$root/cache_hub/piper/en_US-joe-medium
device=cuda
requests=1000
out=$root/gpu-check
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --voice) voice=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$device" in cuda|cpu) ;; *) echo "gpu-check.sh: --device must be cuda or cpu" >&2; exit 2 ;; esac
for f in "$bin/tts-node" "$bin/synth" "$voice/en_US-joe-medium.onnx"; do
  [ -e "$f" ] || { echo "gpu-check.sh: $f is missing (scripts/build-cuda.sh, scripts/fetch-models.sh)" >&2; exit 1; }
done
mkdir -p "$out"
summary=$out/summary.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
fail() { say "FAIL: $*"; exit 1; }

say "# gpu-check $(date -u +%FT%TZ) device=$device bin=$bin"
if [ "$device" = cuda ]; then
  say "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
fi

short="Hello there, how can I help you today?"
long="The node reads the text, splits it into sentences, turns each sentence into phonemes with espeak, \
and runs the voice on the device it was started on. Every request is logged to Graylog with its node, \
its request id, how long it took, how many characters it had, which voice spoke it, how long the audio is, \
and how much GPU memory the node was using. Platform engineers search those fields to find which node \
fails, since when, and why, without logging in to the machine."

# (a) parity, noise off, same binary on both devices.
"$bin/synth" --voice "$voice" --device cpu --text "$long" --noise-scale 0 --noise-w 0 --out "$out/parity-cpu.wav" >/dev/null
"$bin/synth" --voice "$voice" --device "$device" --text "$long" --noise-scale 0 --noise-w 0 --out "$out/parity-$device.wav" >/dev/null
parity_rc=0
python3 "$here/gpu_check.py" parity --min-correlation 0.999 "$out/parity-cpu.wav" "$out/parity-$device.wav" >"$out/parity.txt" || parity_rc=$?
[ "$parity_rc" -eq 0 ] || [ "$parity_rc" -eq 3 ] || exit "$parity_rc" # 3: below the threshold
read -r corr len_cpu len_dev <"$out/parity.txt"
say "(a) parity $device vs cpu, noise off: correlation=$corr samples cpu=$len_cpu $device=$len_dev"
[ "$parity_rc" -eq 0 ] || fail "correlation $corr < 0.999"

# (b) real-time factor, short and long text.
for which in short long; do
  text=$short
  [ "$which" = long ] && text=$long
  last=$("$bin/synth" --voice "$voice" --device "$device" --text "$text" --repeat 6 --out "$out/rtf-$which.wav" | tail -n 1)
  say "(b) rtf $which (${#text} chars, median of runs 1-6): $last"
done

# (c) and (d): the node with a GELF receiver.
python3 "$here/gpu_check.py" node --bin "$bin/tts-node" --voice "$voice" --device "$device" \
  --requests "$requests" --out "$out" | tee -a "$summary"
