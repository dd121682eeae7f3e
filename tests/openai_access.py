"""OpenAI's own Python client against a node that requires API keys.

    .venv/bin/python3 tests/openai_access.py BASE_URL CA_FILE|- USER METRICS LIMITED WRONG

BASE_URL is the node's `/v1` (https:// with CA_FILE trusted, or http://
with `-`); the others are API keys: a `user` key, a `metrics` key, a user
key limited to one request per few seconds, and a key the node does not
know. Checks, each printed as one JSON line; exits non-zero on the first
failure:

- the user key synthesises (WAV decoded by libsndfile, loud);
- a FLAC asked for the OpenAI way (no `stream` field) is a whole file that
  libsndfile decodes, as long as the WAV;
- the unknown key raises `AuthenticationError` (401), the metrics key
  `PermissionDeniedError` (403);
- the limited key: a client without retries raises `RateLimitError` (429,
  with Retry-After); the client's own retry (its default) then succeeds,
  after a 429 it saw and waited out.
"""

import io
import json
import sys
import time

import httpx2
import numpy as np
import openai
import soundfile as sf

TEXT = "Keys keep the node for those it serves."
QUIET = {"noise_scale": 0, "noise_w": 0}


def client(base, ca, key, max_retries=2, seen=None):
    hooks = {"response": [lambda r: seen.append(r.status_code)]} if seen is not None else {}
    http = httpx2.Client(verify=ca if ca != "-" else True, event_hooks=hooks, timeout=120)
    return openai.OpenAI(base_url=base, api_key=key, max_retries=max_retries, http_client=http)


def speak(c, fmt="wav"):
    return c.audio.speech.create(
        model="tts-1", voice="alloy", input=TEXT, response_format=fmt, extra_body=QUIET
    ).content


def report(case, **kw):
    print(json.dumps({"case": case, **kw}), flush=True)


def expect(exc_type, fn):
    try:
        fn()
    except exc_type as e:
        return e
    raise SystemExit(f"expected {exc_type.__name__}")


def main():
    base, ca, user, metrics, limited, wrong = sys.argv[1:7]

    wav = speak(client(base, ca, user))
    x, rate = sf.read(io.BytesIO(wav), dtype="int16")
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    assert len(x) > rate // 2 and rms > 300, (len(x), rms)
    report("user key synthesises", samples=len(x), rate=rate, rms=round(rms))

    flac = speak(client(base, ca, user), "flac")
    y, frate = sf.read(io.BytesIO(flac), dtype="int16")
    assert frate == rate and abs(len(y) - len(x)) <= 1, (len(y), len(x))
    report("flac through the client decodes with libsndfile", samples=len(y))

    e = expect(openai.AuthenticationError, lambda: speak(client(base, ca, wrong, 0)))
    assert e.status_code == 401 and e.body["code"] == "UNAUTHORIZED", e.body
    report("unknown key: AuthenticationError", status=e.status_code)

    e = expect(openai.PermissionDeniedError, lambda: speak(client(base, ca, metrics, 0)))
    assert e.status_code == 403 and e.body["code"] == "FORBIDDEN", e.body
    report("metrics key: PermissionDeniedError", status=e.status_code)

    speak(client(base, ca, limited, 0))
    e = expect(openai.RateLimitError, lambda: speak(client(base, ca, limited, 0)))
    retry_after = float(e.response.headers["retry-after"])
    assert e.body["code"] == "RATE_LIMITED" and retry_after >= 1, (e.body, retry_after)
    report("limited key without retries: RateLimitError", retry_after=retry_after)

    seen = []
    started = time.monotonic()
    audio = speak(client(base, ca, limited, 2, seen))
    waited = time.monotonic() - started
    assert seen[0] == 429 and seen[-1] == 200, seen
    assert len(audio) > 1000
    report("limited key with the client's retries: succeeds", statuses=seen, waited_s=round(waited, 2))


if __name__ == "__main__":
    main()
