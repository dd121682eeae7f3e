#!/usr/bin/env python3
"""Reference outputs for the parity tests and the benchmark: runs a Piper
voice's .onnx with onnxruntime, and phonemizes with piper-phonemize.

  onnx_reference.py synth MODEL.onnx NOISE LENGTH NOISE_W THREADS < ids.txt > out.f32
      one line of space-separated phoneme ids per sentence on stdin; writes
      each sentence's audio as: u32 sample count, then float32 samples (LE);
      the last 8 bytes are the total inference seconds (float64).
  onnx_reference.py time MODEL.onnx NOISE LENGTH NOISE_W THREADS < ids.txt
      as synth, but prints one line per sentence: its sample count and its
      inference seconds (for the benchmark).
  onnx_reference.py ids ESPEAK_VOICE ID_MAP.json < sentences.txt
      one sentence per line on stdin; prints piper-phonemize's ids for each
      sentence of each line, lines separated by an empty line.
"""
import json
import struct
import sys
import time


def session(model, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def timed(model, noise, length, noise_w, threads):
    import numpy as np

    sess = session(model, threads)
    scales = np.array([float(noise), float(length), float(noise_w)], dtype=np.float32)
    for line in sys.stdin:
        ids = [int(x) for x in line.split()]
        if not ids:
            continue
        inp = np.array([ids], dtype=np.int64)
        lengths = np.array([len(ids)], dtype=np.int64)
        t0 = time.perf_counter()
        audio = sess.run(None, {"input": inp, "input_lengths": lengths, "scales": scales})[0]
        print(audio.size, time.perf_counter() - t0, flush=True)


def synth(model, noise, length, noise_w, threads):
    import numpy as np

    sess = session(model, threads)
    scales = np.array([float(noise), float(length), float(noise_w)], dtype=np.float32)
    out = sys.stdout.buffer
    total = 0.0
    for line in sys.stdin:
        ids = [int(x) for x in line.split()]
        if not ids:
            continue
        inp = np.array([ids], dtype=np.int64)
        lengths = np.array([len(ids)], dtype=np.int64)
        t0 = time.perf_counter()
        audio = sess.run(None, {"input": inp, "input_lengths": lengths, "scales": scales})[0]
        total += time.perf_counter() - t0
        audio = audio.reshape(-1).astype("<f4")
        out.write(struct.pack("<I", audio.size))
        out.write(audio.tobytes())
    out.write(struct.pack("<d", total))


def ids(voice, id_map_path):
    from piper_phonemize import phonemize_espeak

    id_map = json.load(open(id_map_path))["phoneme_id_map"]
    for line in sys.stdin:
        line = line.rstrip("\n")
        for sentence in phonemize_espeak(line, voice):
            ids = list(id_map["^"]) + list(id_map["_"])
            for p in sentence:
                if p in id_map:
                    ids += id_map[p] + id_map["_"]
            ids += id_map["$"]
            print(" ".join(map(str, ids)))
        print()


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "synth":
        synth(*sys.argv[2:7])
    elif cmd == "time":
        timed(*sys.argv[2:7])
    elif cmd == "ids":
        ids(*sys.argv[2:4])
    else:
        sys.exit(__doc__)
