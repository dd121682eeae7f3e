"""OpenAI's own Python client against a running node: every response format,
streamed and whole, decoded with real decoders.

    .venv/bin/python3 tests/openai_client.py http://127.0.0.1:PORT/v1

Decoders: libsndfile through `soundfile` (WAV, MP3 via mpg123, Ogg Opus) and
the reference `flac` command (FLAC: libsndfile cannot read a FLAC stream of
unknown length). Raw PCM is 16-bit little-endian at the voice's rate.

Checks, for each format: the decoded length is within one codec frame of the
whole WAV's (MP3 streamed: within its encoder delay and padding, about 70 ms,
because the tag that trims them can only be written at the start of a whole
file), the audio is loud (RMS well above silence), and the streaming call
(`with_streaming_response.create(...)`, `iter_bytes()`) got several chunks.
Prints one JSON line per case; exits non-zero on the first failure.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import openai
import soundfile as sf

TEXT = (
    "Hello there. It was a bright cold day in April, and the clocks were striking thirteen. "
    "Winston Smith, his chin nuzzled into his breast, slipped quickly through the glass doors."
)
# Noise off (an extension of the node): the same audio for every request.
QUIET = {"noise_scale": 0, "noise_w": 0}
# One codec frame, in seconds: MP3 (MPEG-2 layer III at 22.05 kHz) 576
# samples, Opus 20 ms, FLAC exact, WAV and PCM exact.
FRAME_S = {"mp3": 576 / 22050, "opus": 0.020, "flac": 0.0, "wav": 0.0, "pcm": 0.0}
MP3_STREAM_SLACK_S = 0.075


def decode(fmt, data):
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2"), 22050
    suffix = {"mp3": ".mp3", "opus": ".ogg", "flac": ".flac", "wav": ".wav"}[fmt]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "audio" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        if fmt == "flac":
            out = os.path.join(d, "decoded.wav")
            subprocess.run(["flac", "-d", "-s", "-f", path, "-o", out], check=True)
            path = out
        x, rate = sf.read(path, dtype="int16")
    return x, rate


def main():
    base = sys.argv[1]
    client = openai.OpenAI(base_url=base, api_key="not-needed")
    ref = client.audio.speech.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="wav",
        extra_body={"stream": False, **QUIET},
    ).content
    ref_x, ref_rate = decode("wav", ref)
    ref_s = len(ref_x) / ref_rate
    for fmt in ["mp3", "opus", "flac", "wav", "pcm"]:
        for streamed in [False, True]:
            if streamed:
                # Streamed is the node's OpenAI default except for FLAC
                # (whole, so that libsndfile reads it): asked for explicitly.
                with client.audio.speech.with_streaming_response.create(
                    model="tts-1", voice="alloy", input=TEXT, response_format=fmt,
                    extra_body={"stream": True, **QUIET},
                ) as r:
                    content_type = r.headers.get("content-type")
                    chunks = list(r.iter_bytes())
                data = b"".join(chunks)
            else:
                r = client.audio.speech.create(
                    model="tts-1", voice="alloy", input=TEXT, response_format=fmt,
                    extra_body={"stream": False, **QUIET},
                )
                content_type = r.response.headers.get("content-type")
                data = r.content
                chunks = [data]
            x, rate = decode(fmt, data)
            seconds = len(x) / rate
            diff = seconds - ref_s
            rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0
            slack = FRAME_S[fmt]
            if fmt == "mp3" and streamed:
                slack = MP3_STREAM_SLACK_S
            report = {
                "format": fmt, "streamed": streamed, "content_type": content_type,
                "chunks": len(chunks), "bytes": len(data), "rate": rate,
                "seconds": round(seconds, 4), "wav_seconds": round(ref_s, 4),
                "diff_ms": round(diff * 1000, 1), "rms": round(rms),
            }
            print(json.dumps(report), flush=True)
            assert abs(diff) <= slack + 1e-9, f"{fmt} streamed={streamed}: length off by {diff * 1000:.1f} ms"
            assert rms > 1000, f"{fmt} streamed={streamed}: RMS {rms:.0f} is near silence"
            if streamed:
                assert len(chunks) >= 2, f"{fmt}: the stream came in {len(chunks)} chunk(s)"
            if fmt in ("wav", "pcm", "flac"):
                assert np.array_equal(x, ref_x), f"{fmt} streamed={streamed}: samples differ from the WAV"


if __name__ == "__main__":
    main()
