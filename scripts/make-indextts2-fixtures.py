#!/usr/bin/env python3
"""Golden fixtures for the candle port of IndexTTS2 (stage 1). DEV ONLY.

Nothing in CI runs this script: CI only reads what it wrote under
models/tests/fixtures/indextts2/. Run it again when the fixtures must change.

What it does
  1. Generates random weights deterministically from a seed with the
     generator that models/src/indextts2/rng.rs implements bit for bit
     (splitmix64 on (seed, FNV-1a of the tensor's name, element index); see
     `uniform` below), and writes a complete random checkpoint directory in
     the official layout (config.yaml, gpt.pth, s2mel.pth, bpe.model,
     wav2vec2bert_stats.pt, feat1.pt, feat2.pt) plus the auxiliary models in a
     local Hugging Face cache (facebook/w2v-bert-2.0, amphion/MaskGCT,
     funasr/campplus, nvidia/bigvgan_v2_22khz_80band_256x). Some widths are
     hard-coded by the reference (GPT 1280, w2v-BERT 1024 with >= 18 layers),
     so the directory is ~1.1 GB (w2v-BERT 550 MB, GPT 500 MB): it lives
     outside the repository (--work) and is never committed; the seed
     regenerates it.
  2. Tunes the GPT's stop-token logit bias so that greedy decoding stops after
     a few dozen codes, and pushes the start token's logit down so it is never
     sampled (both are "patches" recorded in generator.json; rng.rs applies
     the same patches).
  3. Runs the reference (indextts2-inference 2.1.1, IndexTTS2.infer) end to end
     with deterministic decoding (top_k=1, num_beams=1), recording each block's
     inputs and outputs through hooks, the per-step GPT logits, the mel codes,
     the flow-matching noise, the mel and the waveform.
  4. Writes the small golden files the Rust tests compare against, a tiny
     BigVGAN and a few file-format samples, and a manifest of the OFFICIAL
     full-size checkpoint's state-dict names and shapes.

Venv (outside the repository, never committed, never needed by CI):
  python3.11 -m venv /work/itts-venv
  /work/itts-venv/bin/pip install torch==2.10.0 torchaudio==2.10.0 \
      transformers==5.2.0 tokenizers==0.22.2 huggingface-hub==1.4.1 \
      accelerate==1.12.0 safetensors==0.7.0 sentencepiece==0.2.1 \
      omegaconf==2.3.0 nemo-text-processing==1.1.0 einops munch \
      librosa==0.11.0 soundfile numpy
  /work/itts-venv/bin/pip install indextts2-inference==2.1.1 --no-deps
  (PyPI's torch pulls the CUDA wheels, several GB; the script runs on CPU.)

Run (from the repository root; ~40 s on 2 cores, half of it writing the
weights; the very first run also builds NeMo's text-normalisation grammars,
~25 s more; --keep reuses the checkpoint, ~25 s):
  /work/itts-venv/bin/python scripts/make-indextts2-fixtures.py \
      --work /work/itts-work
  Options: --seed (default 20250917), --out (default
  models/tests/fixtures/indextts2), --keep (reuse an existing checkpoint).

The official config.yaml the manifest is built from is
index-tts/index-tts checkpoints/config.yaml (the last tracked version,
before commit 0d200c0 untracked it); it is embedded below as OFFICIAL_CONFIG.
The official w2v-BERT 2.0 config is reconstructed from transformers'
Wav2Vec2BertConfig defaults (the hub is not reachable from here), and the
official BigVGAN config is the upstream repository's
indextts/s2mel/modules/bigvgan/config.json (embedded as OFFICIAL_BIGVGAN).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SEED = 20250917

# ---------------------------------------------------------------------------
# The deterministic generator (mirrored by models/src/indextts2/rng.rs)
# ---------------------------------------------------------------------------

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def fnv1a64(text: str) -> int:
    """FNV-1a, 64 bits, over the UTF-8 bytes of `text`."""
    h = 0xCBF29CE484222325
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & M64
    return h


def mix64_int(z: int) -> int:
    """splitmix64's finaliser on a Python int."""
    z &= M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(seed: int, name: str, n: int) -> np.ndarray:
    """n values in [-1, 1), exactly representable in f32.

    key = mix64(seed ^ fnv1a64(name)); for element i (0-based):
    z = mix64(key + (i + 1) * GOLDEN) (mod 2^64); v = (z >> 40) * 2^-23 - 1.
    """
    key = np.uint64(mix64_int(seed ^ fnv1a64(name)))
    out = np.empty(n, dtype=np.float32)
    chunk = 1 << 22
    with np.errstate(over="ignore"):
        for start in range(0, n, chunk):
            idx = np.arange(start + 1, min(n, start + chunk) + 1, dtype=np.uint64)
            z = mix64(key + idx * np.uint64(GOLDEN))
            out[start : start + len(idx)] = (z >> np.uint64(40)).astype(np.float32) * np.float32(
                2.0**-23
            ) - np.float32(1.0)
    return out


def init_rule(name: str, shape: tuple[int, ...]) -> tuple[float, float]:
    """(offset, scale) of a tensor: value = offset + scale * uniform (in f32)."""
    leaf = name.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
    if leaf.endswith("var"):  # BatchNorm running_var, w2v-BERT stats var: positive
        return 1.0, 0.5
    if leaf == "weight_g":  # weight norm magnitudes
        return 1.0, 0.1
    if len(shape) >= 2:  # fan-in rule: variance 1 / fan_in
        fan_in = int(np.prod(shape[1:]))
        return 0.0, math.sqrt(3.0 / fan_in)
    if leaf == "weight":  # 1-D weights are norm scales
        return 1.0, 0.1
    return 0.0, 0.1  # biases, running means, snake alpha/beta, tokens, ...


def gen_tensor(seed: int, name: str, shape: tuple[int, ...], patches=()) -> np.ndarray:
    n = int(np.prod(shape)) if len(shape) else 1
    offset, scale = init_rule(name, shape)
    v = uniform(seed, name, n)
    v = np.float32(offset) + np.float32(scale) * v  # two f32 roundings, as in rng.rs
    for p_name, index, value in patches:
        if p_name == name:
            v[index] = np.float32(value)
    return v.reshape(shape)


# ---------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------

OFFICIAL_CONFIG = """
dataset:
    bpe_model: bpe.model
    sample_rate: 24000
    squeeze: false
    mel:
        sample_rate: 24000
        n_fft: 1024
        hop_length: 256
        win_length: 1024
        n_mels: 100
        mel_fmin: 0
        normalize: false
gpt:
    model_dim: 1280
    max_mel_tokens: 1815
    max_text_tokens: 600
    heads: 20
    use_mel_codes_as_input: true
    mel_length_compression: 1024
    layers: 24
    number_text_tokens: 12000
    number_mel_codes: 8194
    start_mel_token: 8192
    stop_mel_token: 8193
    start_text_token: 0
    stop_text_token: 1
    train_solo_embeddings: false
    condition_type: "conformer_perceiver"
    condition_module:
        output_size: 512
        linear_units: 2048
        attention_heads: 8
        num_blocks: 6
        input_layer: "conv2d2"
        perceiver_mult: 2
    emo_condition_module:
        output_size: 512
        linear_units: 1024
        attention_heads: 4
        num_blocks: 4
        input_layer: "conv2d2"
        perceiver_mult: 2
semantic_codec:
    codebook_size: 8192
    hidden_size: 1024
    codebook_dim: 8
    vocos_dim: 384
    vocos_intermediate_dim: 2048
    vocos_num_layers: 12
s2mel:
    preprocess_params:
        sr: 22050
        spect_params:
            n_fft: 1024
            win_length: 1024
            hop_length: 256
            n_mels: 80
            fmin: 0
            fmax: "None"
    dit_type: "DiT"
    reg_loss_type: "l1"
    style_encoder:
        dim: 192
    length_regulator:
        channels: 512
        is_discrete: false
        in_channels: 1024
        content_codebook_size: 2048
        sampling_ratios: [1, 1, 1, 1]
        vector_quantize: false
        n_codebooks: 1
        quantizer_dropout: 0.0
        f0_condition: false
        n_f0_bins: 512
    DiT:
        hidden_dim: 512
        num_heads: 8
        depth: 13
        class_dropout_prob: 0.1
        block_size: 8192
        in_channels: 80
        style_condition: true
        final_layer_type: 'wavenet'
        target: 'mel'
        content_dim: 512
        content_codebook_size: 1024
        content_type: 'discrete'
        f0_condition: false
        n_f0_bins: 512
        content_codebooks: 1
        is_causal: false
        long_skip_connection: true
        zero_prompt_speech_token: false
        time_as_token: false
        style_as_token: false
        uvit_skip_connection: true
        add_resblock_in_transformer: false
    wavenet:
        hidden_dim: 512
        num_layers: 8
        kernel_size: 5
        dilation_rate: 1
        p_dropout: 0.2
        style_condition: true
gpt_checkpoint: gpt.pth
w2v_stat: wav2vec2bert_stats.pt
s2mel_checkpoint: s2mel.pth
emo_matrix: feat2.pt
spk_matrix: feat1.pt
emo_num: [3, 17, 2, 8, 4, 5, 10, 24]
qwen_emo_path: qwen0.6bemo4-merge/
vocoder:
    type: "bigvgan"
    name: "nvidia/bigvgan_v2_22khz_80band_256x"
version: 2.0
"""

OFFICIAL_BIGVGAN = {
    "resblock": "1",
    "upsample_rates": [4, 4, 2, 2, 2, 2],
    "upsample_kernel_sizes": [8, 8, 4, 4, 4, 4],
    "upsample_initial_channel": 1536,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "use_tanh_at_final": False,
    "use_bias_at_final": False,
    "activation": "snakebeta",
    "snake_logscale": True,
    "num_mels": 80,
    "n_fft": 1024,
    "hop_size": 256,
    "win_size": 1024,
    "sampling_rate": 22050,
    "fmin": 0,
    "fmax": None,
}

# The random checkpoint: the official wiring with small depths and, where the
# reference leaves them free, small widths.
def tiny_config():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(OFFICIAL_CONFIG)
    cfg.gpt.layers = 2
    cfg.gpt.condition_module.output_size = 64
    cfg.gpt.condition_module.linear_units = 64
    cfg.gpt.condition_module.attention_heads = 2
    cfg.gpt.condition_module.num_blocks = 1
    cfg.gpt.emo_condition_module.output_size = 48
    cfg.gpt.emo_condition_module.linear_units = 64
    cfg.gpt.emo_condition_module.attention_heads = 2
    cfg.gpt.emo_condition_module.num_blocks = 1
    cfg.semantic_codec.vocos_dim = 64
    cfg.semantic_codec.vocos_intermediate_dim = 128
    cfg.semantic_codec.vocos_num_layers = 2
    cfg.s2mel.DiT.hidden_dim = 64
    cfg.s2mel.DiT.num_heads = 2
    cfg.s2mel.DiT.depth = 2
    cfg.s2mel.wavenet.hidden_dim = 64
    cfg.s2mel.wavenet.num_layers = 2
    return cfg


TINY_BIGVGAN = dict(OFFICIAL_BIGVGAN, upsample_initial_channel=256)
# A second, very small BigVGAN committed as files (config.json and a
# {"generator": ...} .pt with weight norm) to prove the file-format path.
MICRO_BIGVGAN = dict(
    OFFICIAL_BIGVGAN,
    upsample_rates=[2, 2],
    upsample_kernel_sizes=[4, 4],
    upsample_initial_channel=8,
    resblock_kernel_sizes=[3, 5],
    resblock_dilation_sizes=[[1, 3], [1, 2]],
    num_mels=6,
    use_bias_at_final=True,
)

W2V_TINY = dict(intermediate_size=64, num_hidden_layers=18)

START_MEL, STOP_MEL = 8192, 8193
# The emotion-vector case: 0.1 * 0.7 * 10000 is 699.99..., so the
# reference's truncation to 4 decimals gives 0.0699.
EMO_VECTOR = [0.0, 0.3, 0.0, 0.0, 0.1, 0.0, 0.2, 0.05]
EMO_ALPHA = 0.7
START_BIAS = -30.0
TEXT = "Hi there."


# ---------------------------------------------------------------------------
# Checkpoint construction
# ---------------------------------------------------------------------------


def generated_names(module) -> set[str]:
    """State-dict names the generator fills: every parameter, plus BatchNorm
    running statistics. Other buffers keep the module's own (deterministic)
    values."""
    names = {n for n, _ in module.named_parameters()}
    names |= {n for n, _ in module.named_buffers() if n.endswith(("running_mean", "running_var"))}
    return names


def random_state_dict(module, seed: int, component: str, prefix: str = "", patches=()):
    import torch

    sd = module.state_dict()
    gen = generated_names(module)
    out = {}
    for k, v in sd.items():
        if k in gen:
            full = f"{component}/{prefix}{k}"
            out[k] = torch.from_numpy(gen_tensor(seed, full, tuple(v.shape), patches).copy())
        elif k.endswith("num_batches_tracked"):
            out[k] = torch.zeros_like(v)
        else:
            out[k] = v.detach().clone()
    return out


def hub_dir(hf_home: Path, repo: str) -> Path:
    commit = "0" * 40
    base = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(commit)
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (base / "blobs").mkdir(exist_ok=True)
    return snap


def train_bpe(path: Path):
    import sentencepiece as spm

    words = (
        "HI THERE THIS IS A TEST HELLO WORLD THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG "
        "HOW ARE YOU DOING TODAY MY FRIEND PLEASE CALL STELLA ONE TWO THREE FOUR FIVE"
    ).split()
    rng = np.random.default_rng(0)
    corpus = path.parent / "bpe_corpus.txt"
    with open(corpus, "w") as f:
        for _ in range(3000):
            f.write(" ".join(rng.choice(words, size=8)) + ".\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(path.with_suffix("")),
        vocab_size=120,
        model_type="bpe",
        character_coverage=1.0,
        num_threads=1,
        bos_id=0,
        eos_id=1,
        unk_id=2,
        minloglevel=2,
    )
    corpus.unlink()


def build_checkpoint(seed: int, ckpt: Path, hf_home: Path, patches) -> dict:
    """Writes the random checkpoint; returns {file: state dict} for checks."""
    import safetensors.torch
    import torch
    from omegaconf import OmegaConf
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

    from indextts.gpt.model_v2 import UnifiedVoice
    from indextts.s2mel.modules.bigvgan.bigvgan import BigVGAN
    from indextts.s2mel.modules.bigvgan.env import AttrDict
    from indextts.s2mel.modules.campplus.DTDNN import CAMPPlus
    from indextts.s2mel.modules.commons import MyModel
    from indextts.utils.maskgct.models.codec.kmeans.repcodec_model import RepCodec

    ckpt.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config()
    OmegaConf.save(cfg, ckpt / "config.yaml")
    written = {}

    gpt = UnifiedVoice(**cfg.gpt)
    sd = random_state_dict(gpt, seed, "gpt", patches=patches)
    torch.save(sd, ckpt / "gpt.pth")
    written["gpt"] = sd
    del gpt

    s2mel = MyModel(cfg.s2mel, use_gpt_latent=True)
    net = {}
    for key, mod in s2mel.models.items():
        net[key] = random_state_dict(mod, seed, "s2mel", prefix=f"{key}.")
    torch.save({"net": net}, ckpt / "s2mel.pth")
    written["s2mel"] = net

    stats = {
        "mean": torch.from_numpy(gen_tensor(seed, "w2v_stats/mean", (1024,))),
        "var": torch.from_numpy(gen_tensor(seed, "w2v_stats/var", (1024,))),
    }
    torch.save(stats, ckpt / "wav2vec2bert_stats.pt")
    torch.save(torch.from_numpy(gen_tensor(seed, "feat1", (73, 192))), ckpt / "feat1.pt")
    torch.save(torch.from_numpy(gen_tensor(seed, "feat2", (73, 1280))), ckpt / "feat2.pt")
    train_bpe(ckpt / "bpe.model")
    (ckpt / cfg.qwen_emo_path).mkdir(exist_ok=True)

    # Auxiliary models in a local Hugging Face cache.
    snap = hub_dir(hf_home, "facebook/w2v-bert-2.0")
    wcfg = Wav2Vec2BertConfig(**W2V_TINY)
    w2v = Wav2Vec2BertModel(wcfg)
    w2v.load_state_dict(random_state_dict(w2v, seed, "w2v_bert"))
    w2v.save_pretrained(snap)
    written["w2v_bert"] = {k: v.clone() for k, v in w2v.state_dict().items()}
    (snap / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "feature_extractor_type": "SeamlessM4TFeatureExtractor",
                "feature_size": 80,
                "num_mel_bins": 80,
                "padding_side": "right",
                "padding_value": 1,
                "processor_class": "Wav2Vec2BertProcessor",
                "return_attention_mask": True,
                "sampling_rate": 16000,
                "stride": 2,
            },
            indent=2,
        )
    )
    del w2v

    snap = hub_dir(hf_home, "amphion/MaskGCT")
    codec = RepCodec(cfg=cfg.semantic_codec)
    sd = random_state_dict(codec, seed, "semantic_codec")
    (snap / "semantic_codec").mkdir(exist_ok=True)
    safetensors.torch.save_file(sd, snap / "semantic_codec" / "model.safetensors")
    written["semantic_codec"] = sd

    snap = hub_dir(hf_home, "funasr/campplus")
    camp = CAMPPlus(feat_dim=80, embedding_size=192)
    sd = random_state_dict(camp, seed, "campplus")
    torch.save(sd, snap / "campplus_cn_common.bin")
    written["campplus"] = sd

    snap = hub_dir(hf_home, cfg.vocoder.name)
    voc = BigVGAN(AttrDict(dict(TINY_BIGVGAN)))
    sd = random_state_dict(voc, seed, "bigvgan", patches=patches)
    torch.save({"generator": sd}, snap / "bigvgan_generator.pt")
    (snap / "config.json").write_text(json.dumps(TINY_BIGVGAN, indent=2))
    written["bigvgan"] = sd
    return written


def check_loaded(tts, written):
    """The reference loads some files non-strictly (s2mel's load_checkpoint2
    skips mismatched keys silently): check that every tensor in memory is the
    one the generator wrote."""
    import torch

    pairs = [
        ("gpt", tts.gpt, written["gpt"]),
        ("semantic_codec", tts.semantic_codec, written["semantic_codec"]),
        ("campplus", tts.campplus_model, written["campplus"]),
        ("w2v_bert", tts.semantic_model, written["w2v_bert"]),
    ]
    for key, mod in tts.s2mel.models.items():
        pairs.append((f"s2mel.{key}", mod, written["s2mel"][key]))
    for label, mod, sd in pairs:
        live = mod.state_dict()
        for k, v in sd.items():
            if k not in live:
                if label == "gpt":
                    continue
                raise SystemExit(f"{label}: {k} was written but the model has no such tensor")
            if not torch.equal(live[k].cpu(), v):
                raise SystemExit(f"{label}: {k} differs from the generated tensor after loading")
        # After post_init_gpt2_config the GPT also exposes aliases of its own
        # tensors (gpt.wte = mel_embedding, inference_model.* = the same modules).
        missing = [k for k in live if k not in sd and not k.startswith(("gpt.wte", "inference_model."))]
        if label.startswith("s2mel.cfm"):
            missing = [k for k in missing if not k.endswith(("k_cache", "v_cache"))]
        if missing:
            raise SystemExit(f"{label}: not written: {missing[:5]}")
    # BigVGAN: weight norm is removed at load; compare the folded weights.
    live = tts.bigvgan.state_dict()
    sd = written["bigvgan"]
    for k, v in live.items():
        if k.endswith(".weight") and k[: -len("weight")] + "weight_g" in sd:
            base = k[: -len("weight")]
            g, wv = sd[base + "weight_g"], sd[base + "weight_v"]
            dims = tuple(range(1, wv.dim()))
            w = g * wv / wv.norm(dim=dims, keepdim=True)
            if not torch.allclose(w, v, rtol=1e-6, atol=1e-7):
                raise SystemExit(f"bigvgan: {k} differs after weight-norm removal")
        elif not torch.equal(v, sd[k]):
            raise SystemExit(f"bigvgan: {k} differs after loading")


# ---------------------------------------------------------------------------
# Reference run with hooks
# ---------------------------------------------------------------------------


def make_clip(path: Path, seconds: float = 1.0, sr: int = 22050) -> np.ndarray:
    """A deterministic voiced-like clip: harmonics with a vibrato and an
    envelope, plus a little deterministic noise (uniform from the generator)."""
    import soundfile as sf

    n = int(seconds * sr)
    t = np.arange(n, dtype=np.float64) / sr
    f0 = 140.0 + 20.0 * np.sin(2 * np.pi * 3.0 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum((0.3 / k) * np.sin(k * phase) for k in range(1, 8))
    env = np.minimum(1.0, t / 0.05) * np.minimum(1.0, (seconds - t) / 0.05)
    x = x * env * (0.7 + 0.3 * np.sin(2 * np.pi * 2.0 * t))
    x = x + 0.01 * uniform(1, "clip-noise", n).astype(np.float64)
    x = x.astype(np.float32)
    sf.write(path, x, sr, subtype="FLOAT")
    return x


class Recorder:
    def __init__(self):
        self.rec: dict[str, np.ndarray] = {}
        self.calls: dict[str, int] = {}
        self.logits: list[np.ndarray] = []
        self.in_generate = False
        # A frozen recorder keeps what it has: later runs only fill `extra`.
        self.frozen = False
        self.extra: dict[str, np.ndarray] = {}

    def put(self, name, value):
        import torch

        if self.frozen:
            return
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            value = value.numpy() if value.dtype != torch.bfloat16 else value.float().numpy()
        self.rec[name] = np.ascontiguousarray(value)

    def count(self, key):
        if self.frozen:
            return 0
        n = self.calls.get(key, 0)
        self.calls[key] = n + 1
        return n


def install_hooks(tts, r: Recorder):
    import torch
    import torchaudio

    tts._orig_load_and_cut = tts._load_and_cut_audio

    def load_and_cut(path, secs, verbose=False, sr=None):
        audio, rate = tts._orig_load_and_cut(path, secs, verbose, sr)
        i = r.count("load")
        r.put(f"clip.{['spk', 'emo'][i]}.samples", audio[0])
        return audio, rate

    tts._load_and_cut_audio = load_and_cut

    orig_resample = torchaudio.transforms.Resample.forward

    def resample_forward(self, waveform):
        out = orig_resample(self, waveform)
        if self.orig_freq != self.new_freq:
            r.put(f"resample.{self.orig_freq}_{self.new_freq}.out", out[0])
        return out

    torchaudio.transforms.Resample.forward = resample_forward

    orig_get_emb = tts.get_emb

    def get_emb(input_features, attention_mask):
        out = orig_get_emb(input_features, attention_mask)
        tag = ["spk", "emo"][r.count("w2v")]
        r.put(f"w2v.{tag}.input_features", input_features[0])
        r.put(f"w2v.{tag}.attention_mask", attention_mask[0].to(torch.int64))
        r.put(f"w2v.{tag}.out", out[0])
        return out

    tts.get_emb = get_emb

    orig_quantize = tts.semantic_codec.quantize

    def quantize(x):
        codes, s = orig_quantize(x)
        r.put("codec.quantize.codes", codes[0].to(torch.int64))
        r.put("codec.quantize.out", s[0])
        return codes, s

    tts.semantic_codec.quantize = quantize

    orig_mel = tts.mel_fn

    def mel_fn(x):
        out = orig_mel(x)
        r.put("mel.ref.in", x[0])
        r.put("mel.ref.out", out[0])
        return out

    tts.mel_fn = mel_fn

    orig_fbank = torchaudio.compliance.kaldi.fbank

    def fbank(waveform, **kw):
        out = orig_fbank(waveform, **kw)
        r.put("fbank.in", waveform[0])
        r.put("fbank.out", out)
        return out

    torchaudio.compliance.kaldi.fbank = fbank

    def camp_hook(mod, args, out):
        r.put("campplus.in", args[0][0])
        r.put("campplus.out", out[0])

    tts.campplus_model.register_forward_hook(camp_hook)

    lr = tts.s2mel.models["length_regulator"]
    orig_lr = lr.forward

    def lr_forward(x, ylens=None, n_quantizers=None, f0=None):
        out = orig_lr(x, ylens=ylens, n_quantizers=n_quantizers, f0=f0)
        tag = ["prompt", "infer"][r.count("lr")]
        if tag == "prompt":
            r.put("lr.prompt.in", x[0])  # == codec.quantize.out
        r.put(f"lr.{tag}.ylens", ylens.to(torch.int64))
        r.put(f"lr.{tag}.out", out[0][0])
        return out

    lr.forward = lr_forward

    orig_merge = tts.gpt.merge_emovec

    def merge(*a, **kw):
        out = orig_merge(*a, **kw)
        r.put("gpt.emovec", out[0])
        return out

    tts.gpt.merge_emovec = merge

    orig_infer_speech = tts.gpt.inference_speech

    def inference_speech(speech_condition, text_inputs, *a, **kw):
        if r.frozen:
            r.extra["emo_vec"] = kw["emo_vec"][0].detach().cpu().numpy().copy()
        r.put("gpt.text_tokens", text_inputs[0].to(torch.int64))
        r.in_generate = True
        codes, latent = orig_infer_speech(speech_condition, text_inputs, *a, **kw)
        r.in_generate = False
        r.put("gpt.codes_raw", codes[0].to(torch.int64))
        r.put("gpt.speech_conditioning_latent", latent[0])
        return codes, latent

    tts.gpt.inference_speech = inference_speech

    def head_hook(mod, args, out):
        if r.in_generate and not r.frozen:
            r.logits.append(out[0, -1].detach().cpu().numpy().copy())

    tts.gpt.mel_head.register_forward_hook(head_hook)

    def gpt_fwd_hook(mod, args, kwargs, out):
        if not r.in_generate:
            r.put("gpt.latent", out[0])

    tts.gpt.register_forward_hook(gpt_fwd_hook, with_kwargs=True)

    def gpt_layer_hook(mod, args, out):
        r.put("gpt_layer.out", out[0])

    tts.s2mel.models["gpt_layer"].register_forward_hook(gpt_layer_hook)

    orig_vq2emb = tts.semantic_codec.quantizer.vq2emb

    def vq2emb(vq, n_quantizers=None):
        out = orig_vq2emb(vq, n_quantizers)
        r.put("codec.vq2emb.codes", vq[0, 0].to(torch.int64))
        r.put("codec.vq2emb.out", out[0])
        return out

    tts.semantic_codec.quantizer.vq2emb = vq2emb

    cfm = tts.s2mel.models["cfm"]
    orig_solve = cfm.solve_euler

    def solve_euler(x, x_lens, prompt, mu, style, f0, t_span, inference_cfg_rate=0.5):
        r.put("cfm.noise", x[0].clone())
        r.put("cfm.style", style[0])
        out = orig_solve(x, x_lens, prompt, mu, style, f0, t_span, inference_cfg_rate)
        r.put("cfm.out", out[0])
        return out

    cfm.solve_euler = solve_euler

    def est_hook(mod, args, out):
        if r.count("estimator") == 0:
            x, prompt_x, x_lens, t, style, cond = args[:6]
            r.put("dit.step0.x", x[0])
            r.put("dit.step0.t", t)
            r.put("dit.step0.out", out)

    cfm.estimator.register_forward_hook(est_hook)

    def voc_hook(mod, args, out):
        r.put("bigvgan.in", args[0][0])
        r.put("bigvgan.out", out[0, 0])

    tts.bigvgan.register_forward_hook(voc_hook)

    def undo():
        torchaudio.transforms.Resample.forward = orig_resample
        torchaudio.compliance.kaldi.fbank = orig_fbank

    return undo


def construct(ckpt: Path):
    import indextts.infer_v2 as iv2

    class NoQwen:  # the emotion-from-text model is not exercised
        def __init__(self, *a, **k):
            pass

    iv2.QwenEmotion = NoQwen
    return iv2.IndexTTS2(model_dir=str(ckpt), device="cpu", use_fp16=False)


def run(tts, clip: Path, max_mel_tokens: int):
    import torch

    torch.manual_seed(0)
    return tts.infer(
        spk_audio_prompt=str(clip),
        text=TEXT,
        output_path=None,
        top_k=1,
        num_beams=1,
        max_mel_tokens=max_mel_tokens,
    )


def record_beam_search(ckpt: Path, out: Path):
    """Beam search as UnifiedVoice.inference_speech runs it through
    transformers' generate (num_beams > 1, length_penalty 0, repetition
    penalty 10), deterministic (do_sample=False: infer() hard-codes sampling,
    whose draws a port cannot reproduce), from the inputs of the recorded run
    (pipeline.safetensors). Writes beam.json: the codes per setting."""
    import safetensors.numpy
    import torch

    g = safetensors.numpy.load_file(out / "pipeline.safetensors")
    tts = construct(ckpt)
    spk = torch.from_numpy(g["w2v.spk.out"]).unsqueeze(0)
    emo = torch.from_numpy(g["w2v.emo.out"]).unsqueeze(0)
    emovec = torch.from_numpy(g["gpt.emovec"]).unsqueeze(0)
    text = torch.from_numpy(g["gpt.text_tokens"]).to(torch.int32).unsqueeze(0)
    cases = []
    for beams, max_tokens in [(3, 60), (2, 60), (4, 6)]:
        with torch.no_grad():
            codes, _ = tts.gpt.inference_speech(
                spk,
                text,
                emo,
                cond_lengths=torch.tensor([spk.shape[-1]]),
                emo_cond_lengths=torch.tensor([emo.shape[-1]]),
                emo_vec=emovec,
                do_sample=False,
                num_beams=beams,
                num_return_sequences=1,
                length_penalty=0.0,
                repetition_penalty=10.0,
                max_generate_length=max_tokens,
            )
        cases.append({"num_beams": beams, "max_mel_tokens": max_tokens, "codes": codes[0].tolist()})
        print(f"beam search, {beams} beams, at most {max_tokens}: {codes[0].tolist()}")
    (out / "beam.json").write_text(
        json.dumps({"reference": "indextts2-inference 2.1.1, transformers 5.2.0", "cases": cases}, indent=1)
        + "\n"
    )


def choose_stop_bias(logits: list[np.ndarray], codes: np.ndarray) -> tuple[float, int, float]:
    """Bias for the stop token so that greedy decoding (repetition penalty 10
    on the prompt ids {1, start} and on every generated code) stops at a step
    chosen for the widest margin on both sides."""
    gaps = []
    seen = {1, START_MEL}
    for t, lg in enumerate(logits):
        proc = lg.astype(np.float64).copy()
        for j in seen:
            proc[j] = proc[j] / 10.0 if proc[j] > 0 else proc[j] * 10.0
        stop = proc[STOP_MEL]
        proc[STOP_MEL] = -np.inf
        gaps.append(proc.max() - stop)
        if t < len(codes):
            seen.add(int(codes[t]))
    gaps = np.array(gaps)
    best = None
    for T in range(16, min(36, len(gaps))):
        slack = gaps[:T].min() - gaps[T]
        if best is None or slack > best[0]:
            best = (slack, T)
    slack, T = best
    if slack <= 0.05:
        raise SystemExit(f"no stop step with a usable margin (best slack {slack})")
    bias = round(float(gaps[T] + slack / 2), 3)
    return bias, T, slack


# ---------------------------------------------------------------------------
# Small committed samples
# ---------------------------------------------------------------------------


def write_micro_bigvgan(seed: int, out: Path, rec: dict):
    import torch

    from indextts.s2mel.modules.bigvgan.bigvgan import BigVGAN
    from indextts.s2mel.modules.bigvgan.env import AttrDict

    d = out / "formats" / "bigvgan_micro"
    d.mkdir(parents=True, exist_ok=True)
    voc = BigVGAN(AttrDict(dict(MICRO_BIGVGAN)))
    sd = random_state_dict(voc, seed, "bigvgan_micro")
    torch.save({"generator": sd}, d / "bigvgan_generator.pt")
    (d / "config.json").write_text(json.dumps(MICRO_BIGVGAN, indent=2))
    voc.load_state_dict(sd)
    voc.remove_weight_norm()
    voc.eval()
    mel = torch.from_numpy(gen_tensor(seed, "bigvgan_micro_input", (1, 6, 9)))
    with torch.no_grad():
        wav = voc(mel)
    rec["bigvgan_micro.in"] = mel[0].numpy()
    rec["bigvgan_micro.out"] = wav[0, 0].numpy()
    # The anti-aliasing filters the reference computes (kaiser sinc, 12 taps).
    rec["bigvgan.filter.up"] = voc.resblocks[0].activations[0].upsample.filter[0, 0].numpy()
    rec["bigvgan.filter.down"] = voc.resblocks[0].activations[0].downsample.lowpass.filter[0, 0].numpy()


W2V_SMALL = dict(
    hidden_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=32,
    left_max_position_embeddings=4,
    right_max_position_embeddings=2,
)


def write_w2v_small(seed: int, rec: dict):
    """A small w2v-BERT (free widths, short relative-position window so the
    clamping is exercised) on a clip with an odd number of fbank frames, so
    that the feature extractor pads one frame (value 1, masked)."""
    import torch
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

    model = Wav2Vec2BertModel(Wav2Vec2BertConfig(**W2V_SMALL))
    model.load_state_dict(random_state_dict(model, seed, "w2v_small"))
    model.eval()
    audio = rec["clip.emo.samples"][:8160]  # 49 frames of 25 ms every 10 ms
    fe = SeamlessM4TFeatureExtractor(padding_value=1)
    inputs = fe(torch.from_numpy(audio.copy())[None], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        out = model(
            input_features=inputs["input_features"],
            attention_mask=inputs["attention_mask"],
            output_hidden_states=True,
        )
    rec["w2v_small.samples"] = audio
    rec["w2v_small.input_features"] = inputs["input_features"][0].numpy()
    rec["w2v_small.attention_mask"] = inputs["attention_mask"][0].numpy().astype(np.int64)
    for i, h in enumerate(out.hidden_states):
        rec[f"w2v_small.hidden.{i}"] = h[0].numpy()


DIT_SMALL = dict(hidden_dim=32, num_heads=2, depth=5, content_dim=24, wavenet_hidden_dim=32, wavenet_num_layers=3)


def write_dit_small(seed: int, rec: dict):
    """A DiT deep enough for its U-ViT skips (depth 5: layers 0-1 emit, 3-4
    receive), on random inputs with two different timesteps."""
    import torch

    from indextts.s2mel.modules.diffusion_transformer import DiT

    cfg = tiny_config().s2mel
    d = DIT_SMALL
    cfg.DiT.hidden_dim, cfg.DiT.num_heads, cfg.DiT.depth = d["hidden_dim"], d["num_heads"], d["depth"]
    cfg.DiT.content_dim = d["content_dim"]
    cfg.wavenet.hidden_dim, cfg.wavenet.num_layers = d["wavenet_hidden_dim"], d["wavenet_num_layers"]
    model = DiT(cfg)
    model.load_state_dict(random_state_dict(model, seed, "dit_small"))
    model.setup_caches(max_batch_size=2, max_seq_length=64)
    model.eval()
    t = 20

    def inp(name, shape, scale=1.0):
        return torch.from_numpy(gen_tensor(seed, f"dit_small_input/{name}", shape) * np.float32(scale))

    x = inp("x", (2, 80, t), 2.0)
    prompt_x = inp("prompt_x", (2, 80, t), 2.0)
    prompt_x[:, :, 8:] = 0
    style = inp("style", (2, 192))
    cond = inp("cond", (2, t, d["content_dim"]), 2.0)
    tt = torch.tensor([0.25, 0.8])
    with torch.no_grad():
        out = model(x, prompt_x, torch.LongTensor([t]), tt, style, cond)
    for k, v in dict(x=x, prompt_x=prompt_x, style=style, cond=cond, t=tt, out=out).items():
        rec[f"dit_small.{k}"] = v.numpy()


GPT_SMALL = dict(
    model_dim=64,
    heads=4,
    layers=1,
    max_mel_tokens=50,
    max_text_tokens=20,
    number_text_tokens=100,
    number_mel_codes=130,
    start_mel_token=128,
    stop_mel_token=129,
    condition_type="conformer_perceiver",
    condition_module=dict(
        output_size=32, linear_units=48, attention_heads=2, num_blocks=2, input_layer="conv2d2", perceiver_mult=2
    ),
    emo_condition_module=dict(
        output_size=24, linear_units=40, attention_heads=2, num_blocks=1, input_layer="conv2d2", perceiver_mult=2
    ),
)
GPT_SMALL_ALPHA = 0.6


def write_gpt_small(seed: int, rec: dict):
    """The GPT's conditioning (conformer + perceiver for the speaker, conformer
    + one-latent perceiver + two linears for the emotion) at free widths, on
    the pipeline's w2v-BERT embeddings; the lengths passed are the channel
    count (1024), as infer_v2 does, so nothing is masked."""
    import torch

    from indextts.gpt.model_v2 import UnifiedVoice

    model = UnifiedVoice(**GPT_SMALL)
    model.load_state_dict(random_state_dict(model, seed, "gpt_small"))
    model.eval()
    spk = torch.from_numpy(rec["w2v.spk.out"][None].copy())
    emo = torch.from_numpy(rec["w2v.emo.out"][None].copy())
    n = torch.tensor([1024])
    with torch.no_grad():
        enc, _ = model.conditioning_encoder(spk, n)
        latent = model.get_conditioning(spk.transpose(1, 2), n)
        emo_vec = model.get_emovec(emo, n)
        merged = model.merge_emovec(spk, emo, n, n, alpha=GPT_SMALL_ALPHA)
    rec["gpt_small.conformer.out"] = enc[0].numpy()
    rec["gpt_small.speech_conditioning_latent"] = latent[0].numpy()
    rec["gpt_small.emo_vec"] = emo_vec[0].numpy()
    rec["gpt_small.merge_emovec"] = merged[0].numpy()


def write_format_samples(seed: int, out: Path):
    """Tiny files in the official containers: nested {"net": {module: sd}}
    (s2mel.pth), a flat state dict with BatchNorm counters (CAMPPlus .bin) and
    a safetensors file (MaskGCT); values from the generator."""
    import safetensors.torch
    import torch

    d = out / "formats"
    d.mkdir(parents=True, exist_ok=True)

    def g(component, name, shape):
        return torch.from_numpy(gen_tensor(seed, f"{component}/{name}", shape).copy())

    net = {
        "length_regulator": {
            "content_in_proj.weight": g("s2mel", "length_regulator.content_in_proj.weight", (3, 4)),
            "mask_token": g("s2mel", "length_regulator.mask_token", (1, 3)),
        },
        "gpt_layer": {"0.bias": g("s2mel", "gpt_layer.0.bias", (5,))},
    }
    torch.save({"net": net, "iters": 7}, d / "s2mel_nested.pth")
    flat = {
        "head.bn1.weight": g("campplus", "head.bn1.weight", (4,)),
        "head.bn1.running_var": g("campplus", "head.bn1.running_var", (4,)),
        "head.bn1.num_batches_tracked": torch.tensor(0, dtype=torch.int64),
        "head.conv1.weight": g("campplus", "head.conv1.weight", (4, 1, 3, 3)),
    }
    torch.save(flat, d / "campplus_flat.bin")
    st = {
        "quantizer.quantizers.0.codebook.weight": g(
            "semantic_codec", "quantizer.quantizers.0.codebook.weight", (6, 2)
        ),
        "quantizer.quantizers.0.out_project.weight_g": g(
            "semantic_codec", "quantizer.quantizers.0.out_project.weight_g", (3, 1, 1)
        ),
    }
    safetensors.torch.save_file(st, d / "codec.safetensors")


def official_manifest(path: Path):
    """Names and shapes of the official full-size state dicts, built on the
    meta device from the official configs."""
    import torch
    from omegaconf import OmegaConf
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

    from indextts.gpt.model_v2 import UnifiedVoice
    from indextts.s2mel.modules.bigvgan.bigvgan import BigVGAN
    from indextts.s2mel.modules.bigvgan.env import AttrDict
    from indextts.s2mel.modules.campplus.DTDNN import CAMPPlus
    from indextts.s2mel.modules.commons import MyModel
    from indextts.utils.maskgct.models.codec.kmeans.repcodec_model import RepCodec

    cfg = OmegaConf.create(OFFICIAL_CONFIG)
    files = {}

    def shapes(sd):
        return {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()}

    with torch.device("meta"):
        files["gpt.pth"] = shapes(UnifiedVoice(**cfg.gpt).state_dict())
        s2 = MyModel(cfg.s2mel, use_gpt_latent=True)
        files["s2mel.pth"] = {
            f"net.{key}.{k}": v for key, mod in s2.models.items() for k, v in shapes(mod.state_dict()).items()
        }
        files["campplus_cn_common.bin"] = shapes(CAMPPlus(feat_dim=80, embedding_size=192).state_dict())
        files["bigvgan_generator.pt"] = {
            f"generator.{k}": v for k, v in shapes(BigVGAN(AttrDict(dict(OFFICIAL_BIGVGAN))).state_dict()).items()
        }
        files["semantic_codec/model.safetensors"] = shapes(RepCodec(cfg=cfg.semantic_codec).state_dict())
        files["w2v-bert-2.0/model.safetensors"] = shapes(Wav2Vec2BertModel(Wav2Vec2BertConfig()).state_dict())
    files["wav2vec2bert_stats.pt"] = {"mean": [[1024], "float32"], "var": [[1024], "float32"]}
    files["feat1.pt"] = {"": [[73, 192], "float32"]}
    files["feat2.pt"] = {"": [[73, 1280], "float32"]}
    manifest = {
        "source": "index-tts/index-tts checkpoints/config.yaml (last tracked version); "
        "BigVGAN: upstream indextts/s2mel/modules/bigvgan/config.json; "
        "w2v-BERT 2.0: transformers 5.2.0 Wav2Vec2BertConfig defaults (reconstructed, not fetched)",
        "reference": "indextts2-inference 2.1.1",
        "files": files,
        "params": {
            f: int(sum(int(np.prod(s)) for s, dt in v.values() if dt.startswith("float"))) for f, v in files.items()
        },
    }
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--work", type=Path, default=Path("/work/itts-work"))
    ap.add_argument("--out", type=Path, default=REPO / "models/tests/fixtures/indextts2")
    ap.add_argument("--keep", action="store_true", help="reuse the checkpoint under --work")
    ap.add_argument(
        "--beam-only",
        action="store_true",
        help="only (re)record beam.json from an existing checkpoint and pipeline.safetensors",
    )
    args = ap.parse_args()

    t0 = time.time()
    work = args.work.resolve()
    ckpt, hf_home = work / "checkpoints", work / "hf"
    os.environ["HF_HOME"] = str(hf_home)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TQDM_DISABLE"] = "1"
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    seed = args.seed
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.beam_only:
        record_beam_search(ckpt, out)
        return

    # Patches: single elements set after generation. The start token's logit
    # is pushed down; the final BigVGAN convolution's weight-norm gain is made
    # small so that random weights do not drive the waveform into the clamp.
    patches = [("gpt/mel_head.bias", START_MEL, START_BIAS), ("bigvgan/conv_post.weight_g", 0, 0.02)]
    meta_path = work / "generator-state.json"
    if args.keep and meta_path.exists() and json.loads(meta_path.read_text())["seed"] == seed:
        state = json.loads(meta_path.read_text())
        patches = [tuple(p) for p in state["patches"]]
        written = None
        print("reusing", ckpt)
    else:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        written = build_checkpoint(seed, ckpt, hf_home, patches)
        print(f"checkpoint written in {time.time() - t0:.1f} s")

        # Probe: greedy decoding without a stop bias, to place the stop.
        tts = construct(ckpt)
        check_loaded(tts, written)
        probe = Recorder()
        make_clip(work / "clip.wav")
        undo = install_hooks(tts, probe)
        run(tts, work / "clip.wav", 60)
        undo()
        codes = probe.rec["gpt.codes_raw"]
        bias, stop_at, slack = choose_stop_bias(probe.logits, codes)
        print(f"stop bias {bias} (stops after {stop_at} codes, slack {slack:.3f})")
        patches.append(("gpt/mel_head.bias", STOP_MEL, bias))
        sd = written["gpt"]
        sd["mel_head.bias"][STOP_MEL] = float(bias)
        torch.save(sd, ckpt / "gpt.pth")
        meta_path.write_text(json.dumps({"seed": seed, "patches": patches}))
        del tts

    clip = work / "clip.wav"
    if not clip.exists():
        make_clip(clip)
    t1 = time.time()
    tts = construct(ckpt)
    if written is not None:
        check_loaded(tts, written)
    r = Recorder()
    install_hooks(tts, r)
    t2 = time.time()
    sr, wav = run(tts, clip, 1500)
    t3 = time.time()
    print(f"reference: load {t2 - t1:.1f} s, infer {t3 - t2:.1f} s")
    rec = r.rec
    rec["final.wav_i16"] = wav[:, 0].astype(np.int16)

    # An emotion vector instead of an emotion clip: only the vector the GPT
    # receives is kept (decoding cut after two codes).
    r.frozen = True
    torch.manual_seed(0)
    tts.infer(
        spk_audio_prompt=str(clip),
        text=TEXT,
        output_path=None,
        emo_vector=EMO_VECTOR,
        emo_alpha=EMO_ALPHA,
        top_k=1,
        num_beams=1,
        max_mel_tokens=2,
    )
    rec["emo_vector.emo_vec"] = r.extra["emo_vec"]
    rec["gpt.logits"] = np.stack(r.logits)
    codes = rec["gpt.codes_raw"]
    stop_idx = np.nonzero(codes == STOP_MEL)[0]
    if len(stop_idx) == 0:
        raise SystemExit("decoding did not stop")

    # Margins of greedy decoding (how robust the codes are to small errors).
    margins = []
    seen = {1, START_MEL}
    for t, lg in enumerate(r.logits):
        proc = lg.astype(np.float64).copy()
        for j in seen:
            proc[j] = proc[j] / 10.0 if proc[j] > 0 else proc[j] * 10.0
        top2 = np.sort(proc)[-2:]
        margins.append(top2[1] - top2[0])
        if t < len(codes):
            seen.add(int(codes[t]))

    write_micro_bigvgan(seed, out, rec)
    write_w2v_small(seed, rec)
    write_dit_small(seed, rec)
    write_gpt_small(seed, rec)
    write_format_samples(seed, out)

    import safetensors.numpy

    tensors = {}
    for k, v in sorted(rec.items()):
        v = np.asarray(v)
        if v.dtype == np.float64:
            v = v.astype(np.float32)
        if v.dtype == np.int32:
            v = v.astype(np.int64)
        tensors[k] = np.ascontiguousarray(v)
    safetensors.numpy.save_file(tensors, out / "pipeline.safetensors")

    # Reference values of the generator for rng.rs's unit test.
    samples = []
    for comp_name, shape in [
        ("campplus/head.conv1.weight", (32, 1, 3, 3)),
        ("bigvgan/conv_pre.weight_g", (256, 1, 1)),
        ("s2mel/length_regulator.model.1.weight", (512,)),
        ("campplus/xvector.tdnn.nonlinear.batchnorm.running_var", (128,)),
        ("gpt/mel_head.bias", (8194,)),
        ("s2mel/length_regulator.content_in_proj.bias", (512,)),
        ("bigvgan/conv_post.weight_g", (1, 1, 1)),
        ("w2v_stats/var", (1024,)),
    ]:
        full = gen_tensor(seed, comp_name, shape, patches).reshape(-1)
        idx = {0, 1, 2, len(full) // 2, len(full) - 1} | ({START_MEL, STOP_MEL} if "mel_head" in comp_name else set())
        idx = sorted(i for i in idx if i < len(full))
        samples.append(
            {
                "name": comp_name,
                "shape": list(shape),
                "offset_scale": list(init_rule(comp_name, shape)),
                "indices": idx,
                "values": [float(full[i]) for i in idx],
                "bits": [int(np.float32(full[i]).view(np.uint32)) for i in idx],
            }
        )
    raw = uniform(seed, "campplus/head.conv1.weight", 4)
    cfg = tiny_config()
    from omegaconf import OmegaConf

    (out / "generator.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "patches": [list(p) for p in patches],
                "uniform_head_campplus_conv1": [int(np.float32(x).view(np.uint32)) for x in raw],
                "fnv1a64": {"campplus/head.conv1.weight": str(fnv1a64("campplus/head.conv1.weight"))},
                "samples": samples,
            },
            indent=1,
        )
        + "\n"
    )
    (out / "checkpoint.json").write_text(
        json.dumps(
            {
                "reference": "indextts2-inference 2.1.1",
                "seed": seed,
                "text": TEXT,
                "config_yaml": OmegaConf.to_container(cfg),
                "bigvgan": TINY_BIGVGAN,
                "bigvgan_micro": MICRO_BIGVGAN,
                "w2v_bert": W2V_TINY,
                "w2v_small": W2V_SMALL,
                "dit_small": DIT_SMALL,
                "gpt_small": dict(GPT_SMALL, merge_alpha=GPT_SMALL_ALPHA),
                "emo_vector": {"vector": EMO_VECTOR, "alpha": EMO_ALPHA},
                "decoding": {"top_k": 1, "num_beams": 1, "repetition_penalty": 10.0, "torch_seed": 0},
                "codes": int(stop_idx[0]),
                "min_greedy_margin": float(np.min(margins[: int(stop_idx[0]) + 1])),
            },
            indent=1,
        )
        + "\n"
    )
    official_manifest(out / "manifest.json")
    del tts
    record_beam_search(ckpt, out)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"codes {int(stop_idx[0])}, min greedy margin {min(margins):.2e}")
    print(f"fixtures: {total / 1e6:.2f} MB in {out}; total {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
