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
# Needs python3 (standard library only) and, for --device cuda, nvidia-smi.
#
#   scripts/gpu-check.sh [--bin dist/cuda] [--voice cache_hub/piper/en_US-joe-medium]
#                        [--device cuda|cpu] [--requests 1000] [--out gpu-check]
#
# `--device cpu` runs the same steps on the CPU (the parity step then compares
# the CPU with itself, and (c) expects no GPU fields): it is how this script is
# checked on machines without a GPU. Results: OUT/summary.txt, OUT/events.jsonl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

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
python3 - "$out/parity-cpu.wav" "$out/parity-$device.wav" >"$out/parity.txt" <<'PY'
import array, math, sys, wave
def read(p):
    with wave.open(p) as w:
        a = array.array("h", w.readframes(w.getnframes()))
    return a
a, b = read(sys.argv[1]), read(sys.argv[2])
n = min(len(a), len(b))
ma, mb = sum(a[:n]) / n, sum(b[:n]) / n
sab = sum((x - ma) * (y - mb) for x, y in zip(a[:n], b[:n]))
saa = sum((x - ma) ** 2 for x in a[:n])
sbb = sum((y - mb) ** 2 for y in b[:n])
print(f"{sab / math.sqrt(saa * sbb):.6f} {len(a)} {len(b)}")
PY
read -r corr len_cpu len_dev <"$out/parity.txt"
say "(a) parity $device vs cpu, noise off: correlation=$corr samples cpu=$len_cpu $device=$len_dev"
python3 -c "import sys; sys.exit(0 if float('$corr') >= 0.999 else 1)" || fail "correlation $corr < 0.999"

# (b) real-time factor, short and long text.
for which in short long; do
  text=$short
  [ "$which" = long ] && text=$long
  last=$("$bin/synth" --voice "$voice" --device "$device" --text "$text" --repeat 6 --out "$out/rtf-$which.wav" | tail -n 1)
  say "(b) rtf $which (${#text} chars, median of runs 1-6): $last"
done

# (c) and (d): the node with a GELF receiver.
python3 - "$bin/tts-node" "$voice" "$device" "$requests" "$out" <<'PY' | tee -a "$summary"
import json, os, signal, socket, subprocess, sys, threading, time, urllib.request
node_bin, voice, device, requests, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

events, lock = [], threading.Lock()
gelf = socket.socket(); gelf.bind(("127.0.0.1", 0)); gelf.listen(4)
def serve():
    while True:
        conn, _ = gelf.accept()
        def read(c):
            buf = b""
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                *frames, buf = buf.split(b"\0")
                with lock:
                    events.extend(json.loads(f) for f in frames if f)
        threading.Thread(target=read, args=(conn,), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()

port = free_port()
cache = os.path.dirname(os.path.dirname(os.path.abspath(voice)))
log = open(os.path.join(out, "node.log"), "w")
node = subprocess.Popen([node_bin, "--port", str(port), "--device", device, "--cache-dir", cache,
                         "--node-id", "gpu-check", "--gelf", f"tcp://127.0.0.1:{gelf.getsockname()[1]}"],
                        stdout=log, stderr=subprocess.STDOUT)
base = f"http://127.0.0.1:{port}"
deadline = time.time() + 120
while True:
    try:
        if urllib.request.urlopen(base + "/readyz", timeout=2).status == 200:
            break
    except OSError:
        pass
    if node.poll() is not None or time.time() > deadline:
        sys.exit("FAIL: the node did not become ready (see node.log)")
    time.sleep(0.2)

def rss_mib():
    with open(f"/proc/{node.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
texts = ["Hello there, how can I help you today?", "Your order has been shipped and will arrive on Tuesday.",
         "The meeting starts in five minutes.", "Please hold while I transfer your call.",
         "Thank you for calling, have a nice day.", "The temperature outside is twelve degrees."]
rss, started, failures = [], time.time(), 0
for i in range(requests):
    body = json.dumps({"text": texts[i % len(texts)]}).encode()
    req = urllib.request.Request(base + "/api/tts", data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
    except OSError as e:
        failures += 1
        print(f"request {i}: {e}", file=sys.stderr)
    rss.append(rss_mib())
elapsed = time.time() - started
node.send_signal(signal.SIGTERM)
node.wait(timeout=60)
time.sleep(0.5)
with lock, open(os.path.join(out, "events.jsonl"), "w") as f:
    for e in events:
        f.write(json.dumps(e) + "\n")
done = [e for e in events if e.get("short_message") == "Audio generation completed"]
print(f"(c) node on {device}: {requests} requests in {elapsed:.1f} s ({requests / elapsed:.1f} req/s), "
      f"{failures} failed, {len(done)} completion events received")
ok = failures == 0 and len(done) == requests
if device == "cuda":
    total = float(subprocess.check_output(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                                          text=True).split()[0]) / 1024
    used = [e.get("_gpu_memory_used_gb", 0) for e in done]
    totals = {round(e.get("_gpu_memory_total_gb", 0), 2) for e in done}
    proc = [e["_gpu_process_memory_gb"] for e in done if "_gpu_process_memory_gb" in e]
    print(f"    gpu_memory_used_gb min={min(used, default=0):.3f} max={max(used, default=0):.3f}; "
          f"gpu_memory_total_gb {sorted(totals)} (nvidia-smi {total:.2f}); "
          f"gpu_process_memory_gb in {len(proc)} events")
    ok = ok and min(used, default=0) > 0 and all(abs(t - total) < 0.05 for t in totals)
    series, unit = (proc, "GiB process") if len(proc) == len(done) else (used, "GiB device")
else:
    leaked = [e for e in done if any(k.startswith("_gpu_memory") for k in e)]
    print(f"    events with GPU fields on the CPU: {len(leaked)} (must be 0)")
    ok = ok and not leaked
    series, unit = [], ""
tenth = max(1, requests // 10)
def median(xs):
    return sorted(xs)[len(xs) // 2] if xs else 0.0
def growth(xs):
    # The first tenth warms the allocators up; compare the second with the last.
    return median(xs[tenth:2 * tenth]), median(xs[-tenth:])
with open(os.path.join(out, "memory.tsv"), "w") as f:
    f.write("request\trss_mib\n")
    f.writelines(f"{i}\t{m:.1f}\n" for i, m in enumerate(rss))
r0, r1 = growth(rss)
print(f"(d) resident memory, median of requests {tenth}-{2 * tenth - 1} and of the last {tenth}: {r0:.0f} -> {r1:.0f} MiB")
ok = ok and r1 <= r0 * 1.05 + 16
if series:
    g0, g1 = growth(series)
    print(f"    GPU memory ({unit}), same windows: {g0:.3f} -> {g1:.3f}")
    ok = ok and g1 <= g0 * 1.02 + 0.0625
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
