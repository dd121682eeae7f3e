#!/usr/bin/env python3
"""The measuring steps of scripts/gpu-check.sh (standard library only).

  gpu_check.py parity A.wav B.wav [--min-correlation 0.999]
      Prints "CORRELATION SAMPLES_A SAMPLES_B" (Pearson correlation of the
      two 16-bit waveforms over their common length). Exits 3 when the
      correlation is below --min-correlation.

  gpu_check.py node --bin BIN/tts-node --voice VOICE_DIR --device cuda|cpu
                    --requests N --out DIR
      Steps (c) and (d): starts the node with a GELF TCP receiver here,
      sends N requests, checks the completion events' GPU fields and that
      GPU and resident memory do not grow. Prints the results and PASS or
      FAIL; exits 0 on PASS. Writes DIR/node.log, DIR/events.jsonl and
      DIR/memory.tsv.
"""

import argparse
import array
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import wave

BELOW_THRESHOLD = 3

TEXTS = [
    "Hello there, how can I help you today?",
    "Your order has been shipped and will arrive on Tuesday.",
    "The meeting starts in five minutes.",
    "Please hold while I transfer your call.",
    "Thank you for calling, have a nice day.",
    "The temperature outside is twelve degrees.",
]


def read_wav(path):
    with wave.open(path) as w:
        return array.array("h", w.readframes(w.getnframes()))


def parity(args):
    a, b = read_wav(args.a), read_wav(args.b)
    n = min(len(a), len(b))
    ma, mb = sum(a[:n]) / n, sum(b[:n]) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a[:n], b[:n]))
    saa = sum((x - ma) ** 2 for x in a[:n])
    sbb = sum((y - mb) ** 2 for y in b[:n])
    corr = sab / math.sqrt(saa * sbb)
    print(f"{corr:.6f} {len(a)} {len(b)}")
    # The shell script compares the printed value; compare it the same way.
    return 0 if float(f"{corr:.6f}") >= args.min_correlation else BELOW_THRESHOLD


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class GelfReceiver:
    """A GELF TCP input: NUL-delimited JSON frames, kept in memory."""

    def __init__(self):
        self.events, self.lock = [], threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.read, args=(conn,), daemon=True).start()

    def read(self, conn):
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            *frames, buf = buf.split(b"\0")
            with self.lock:
                self.events.extend(json.loads(f) for f in frames if f)


def node(args):
    requests, out, device = args.requests, args.out, args.device
    gelf = GelfReceiver()
    port = free_port()
    cache = os.path.dirname(os.path.dirname(os.path.abspath(args.voice)))
    log = open(os.path.join(out, "node.log"), "w")
    proc = subprocess.Popen([args.bin, "--port", str(port), "--device", device, "--cache-dir", cache,
                             "--node-id", "gpu-check", "--gelf", f"tcp://127.0.0.1:{gelf.port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if urllib.request.urlopen(base + "/readyz", timeout=2).status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            sys.exit("FAIL: the node did not become ready (see node.log)")
        time.sleep(0.2)

    def rss_mib():
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    rss, started, failures = [], time.time(), 0
    for i in range(requests):
        body = json.dumps({"text": TEXTS[i % len(TEXTS)]}).encode()
        req = urllib.request.Request(base + "/api/tts", data=body, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()
        except OSError as e:
            failures += 1
            print(f"request {i}: {e}", file=sys.stderr)
        rss.append(rss_mib())
    elapsed = time.time() - started
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    time.sleep(0.5)
    with gelf.lock, open(os.path.join(out, "events.jsonl"), "w") as f:
        events = list(gelf.events)
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
        proc_mem = [e["_gpu_process_memory_gb"] for e in done if "_gpu_process_memory_gb" in e]
        print(f"    gpu_memory_used_gb min={min(used, default=0):.3f} max={max(used, default=0):.3f}; "
              f"gpu_memory_total_gb {sorted(totals)} (nvidia-smi {total:.2f}); "
              f"gpu_process_memory_gb in {len(proc_mem)} events")
        ok = ok and min(used, default=0) > 0 and all(abs(t - total) < 0.05 for t in totals)
        series, unit = (proc_mem, "GiB process") if len(proc_mem) == len(done) else (used, "GiB device")
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
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description="Measuring steps of scripts/gpu-check.sh.")
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("parity", help="Pearson correlation of two WAV files")
    pp.add_argument("a", help="reference WAV (the CPU's)")
    pp.add_argument("b", help="WAV to compare (the device's)")
    pp.add_argument("--min-correlation", type=float, default=0.999,
                    help=f"exit {BELOW_THRESHOLD} below this (default 0.999)")
    pp.set_defaults(run=parity)
    pn = sub.add_parser("node", help="steps (c) and (d): the node with a GELF receiver")
    pn.add_argument("--bin", required=True, help="the tts-node binary")
    pn.add_argument("--voice", required=True, help="the voice directory (CACHE/piper/NAME)")
    pn.add_argument("--device", required=True, choices=["cuda", "cpu"])
    pn.add_argument("--requests", type=int, required=True)
    pn.add_argument("--out", required=True, help="directory for node.log, events.jsonl, memory.tsv")
    pn.set_defaults(run=node)
    args = p.parse_args()
    sys.exit(args.run(args))


if __name__ == "__main__":
    main()
