//! The UnifiedVoice GPT's transformer (`indextts/gpt/model_v2.py`): prompt
//! assembly, autoregressive decoding of mel codes with a KV cache and the
//! reference's logits processing, and the second pass that yields the latent
//! s2mel consumes. The conditioning inputs come from
//! [`super::gpt_conditioning`].
//!
//! Layout of the prompt (batch 1): `[speech latents + emotion vector (32),
//! speed embedding 1, speed embedding 0, start_text, text…, stop_text]`, then
//! mel tokens from `start_mel`. The transformer is GPT-2 (pre-norm, GELU with
//! the tanh approximation, no position embeddings of its own) followed by
//! `ln_f`, then UnifiedVoice's `final_norm` and `mel_head`.
//!
//! Quirks kept:
//! - text tokens equal to `start_text_token` or `stop_text_token` are dropped
//!   from the prompt (`prepare_gpt_inputs`);
//! - during decoding the k-th generated code (k ≥ 1) gets mel position k + 1
//!   (`get_fixed_embedding(attention_mask.shape[1] - mel_len)`), position 1 is
//!   never used; the latent pass uses positions 0, 1, 2, … as in training;
//! - the repetition penalty (÷ or × 10) also covers the prompt's ids: the
//!   placeholder id 1 and `start_mel_token`.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use super::weights::{layer_norm, linear};
use super::{Error, Result};

/// The `gpt` section of config.yaml (transformer and vocabulary).
#[derive(Debug, Clone, PartialEq)]
pub struct GptConfig {
    /// Width (1280).
    pub model_dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Text vocabulary (the embedding has one more row).
    pub number_text_tokens: usize,
    /// Mel-code vocabulary, start and stop included.
    pub number_mel_codes: usize,
    /// Start-of-mel token.
    pub start_mel_token: u32,
    /// Stop-of-mel token.
    pub stop_mel_token: u32,
    /// Start-of-text token.
    pub start_text_token: u32,
    /// Stop-of-text token.
    pub stop_text_token: u32,
    /// Longest mel sequence (the mel position table has `+ 3` rows).
    pub max_mel_tokens: usize,
    /// Longest text (the text position table has `+ 2` rows).
    pub max_text_tokens: usize,
}

impl GptConfig {
    /// The official IndexTTS2 settings.
    pub fn indextts2() -> Self {
        Self {
            model_dim: 1280,
            heads: 20,
            layers: 24,
            number_text_tokens: 12000,
            number_mel_codes: 8194,
            start_mel_token: 8192,
            stop_mel_token: 8193,
            start_text_token: 0,
            stop_text_token: 1,
            max_mel_tokens: 1815,
            max_text_tokens: 600,
        }
    }
}

/// How the next code is chosen from the logits (`generation_kwargs` of
/// `infer`). `top_k = 1` with one beam makes decoding deterministic, as does
/// beam search without sampling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Keep the `top_k` largest (0: all).
    pub top_k: usize,
    /// Nucleus mass.
    pub top_p: f32,
    /// Temperature.
    pub temperature: f32,
    /// Repetition penalty (on every id seen, prompt ids included).
    pub repetition_penalty: f32,
    /// Most codes to generate.
    pub max_mel_tokens: usize,
    /// Beams (1: no beam search).
    pub num_beams: usize,
    /// Sample (the reference always does); `false` picks the best
    /// candidates instead (deterministic beam search).
    pub do_sample: bool,
    /// Finished beams' scores are divided by `length^length_penalty`.
    pub length_penalty: f32,
}

impl Default for Sampling {
    /// `infer`'s defaults.
    fn default() -> Self {
        Self {
            top_k: 30,
            top_p: 0.8,
            temperature: 0.8,
            repetition_penalty: 10.0,
            max_mel_tokens: 1500,
            num_beams: 3,
            do_sample: true,
            length_penalty: 0.0,
        }
    }
}

impl Sampling {
    /// Deterministic greedy decoding (`top_k = 1`, one beam).
    pub fn greedy() -> Self {
        Self {
            top_k: 1,
            num_beams: 1,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone)]
struct Block {
    ln_1: candle_nn::LayerNorm,
    c_attn: candle_nn::Linear,
    c_proj: candle_nn::Linear,
    ln_2: candle_nn::LayerNorm,
    c_fc: candle_nn::Linear,
    mlp_proj: candle_nn::Linear,
}

/// GPT-2's `Conv1D`: weight stored `[in, out]`.
fn conv1d_linear(vb: &VarBuilder, cin: usize, cout: usize) -> Result<candle_nn::Linear> {
    // A transposed view: `Linear` multiplies by its transpose, the stored layout.
    let w = vb.get((cin, cout), "weight")?.t()?;
    Ok(candle_nn::Linear::new(w, Some(vb.get(cout, "bias")?)))
}

/// Keys and values of every layer, `[1, heads, t, head_dim]`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    kv: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.kv
            .first()
            .and_then(|e| e.as_ref())
            .and_then(|(k, _)| k.dim(2).ok())
            .unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps, for each entry of `rows` (u32 indices), that sequence of the
    /// batch: the beams' reordering (and the prompt's expansion to every
    /// beam).
    pub fn select(&mut self, rows: &Tensor) -> Result<()> {
        for (k, v) in self.kv.iter_mut().flatten() {
            *k = k.index_select(rows, 0)?;
            *v = v.index_select(rows, 0)?;
        }
        Ok(())
    }
}

/// The result of decoding.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The codes, without the stop token.
    pub codes: Vec<u32>,
    /// Whether the stop token ended decoding (else `max_mel_tokens` did).
    pub stopped: bool,
    /// The raw logits of every step (`[number_mel_codes]`), the stop step
    /// included.
    pub logits: Vec<Tensor>,
}

/// The UnifiedVoice transformer with its embeddings and heads.
#[derive(Debug, Clone)]
pub struct UnifiedVoiceGpt {
    text_embedding: Tensor,
    mel_embedding: Tensor,
    text_pos: Tensor,
    mel_pos: Tensor,
    speed_emb: Tensor,
    blocks: Vec<Block>,
    ln_f: candle_nn::LayerNorm,
    final_norm: candle_nn::LayerNorm,
    mel_head: candle_nn::Linear,
    cfg: GptConfig,
}

impl UnifiedVoiceGpt {
    /// Loads the transformer, embeddings and `mel_head` of `gpt.pth`.
    pub fn load(vb: &VarBuilder, cfg: &GptConfig) -> Result<Self> {
        let d = cfg.model_dim;
        if cfg.heads == 0 || d.checked_rem(cfg.heads) != Some(0) {
            return Err(Error::Config(format!("GPT: unusable settings {cfg:?}")));
        }
        let blocks = (0..cfg.layers)
            .map(|i| {
                let b = vb.pp(format!("gpt.h.{i}"));
                Ok(Block {
                    ln_1: layer_norm(&b.pp("ln_1"), d, 1e-5)?,
                    c_attn: conv1d_linear(&b.pp("attn.c_attn"), d, 3 * d)?,
                    c_proj: conv1d_linear(&b.pp("attn.c_proj"), d, d)?,
                    ln_2: layer_norm(&b.pp("ln_2"), d, 1e-5)?,
                    c_fc: conv1d_linear(&b.pp("mlp.c_fc"), d, 4 * d)?,
                    mlp_proj: conv1d_linear(&b.pp("mlp.c_proj"), 4 * d, d)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            text_embedding: vb.get((cfg.number_text_tokens + 1, d), "text_embedding.weight")?,
            mel_embedding: vb.get((cfg.number_mel_codes, d), "mel_embedding.weight")?,
            text_pos: vb.get(
                (cfg.max_text_tokens + 2, d),
                "text_pos_embedding.emb.weight",
            )?,
            mel_pos: vb.get((cfg.max_mel_tokens + 3, d), "mel_pos_embedding.emb.weight")?,
            speed_emb: vb.get((2, d), "speed_emb.weight")?,
            blocks,
            ln_f: layer_norm(&vb.pp("gpt.ln_f"), d, 1e-5)?,
            final_norm: layer_norm(&vb.pp("final_norm"), d, 1e-5)?,
            mel_head: linear(&vb.pp("mel_head"), d, cfg.number_mel_codes, true)?,
            cfg: cfg.clone(),
        })
    }

    fn rows(table: &Tensor, ids: &[u32], what: &str) -> Result<Tensor> {
        let n = table.dim(0)?;
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= n) {
            return Err(Error::Config(format!(
                "{what} {bad} is outside its table of {n}"
            )));
        }
        let idx = Tensor::new(ids, table.device())?;
        Ok(table.index_select(&idx, 0)?)
    }

    fn positions(table: &Tensor, start: usize, len: usize, what: &str) -> Result<Tensor> {
        if start + len > table.dim(0)? {
            return Err(Error::Config(format!(
                "{what} position {} is beyond the table of {}",
                start + len - 1,
                table.dim(0)?
            )));
        }
        Ok(table.narrow(0, start, len)?)
    }

    /// `conds_latent`: `[latent + emo_vec, speed 1, speed 0]`, `[1, 34, d]`.
    fn conditioning(&self, speech_latent: &Tensor, emo_vec: &Tensor) -> Result<Tensor> {
        let lat = speech_latent.broadcast_add(&emo_vec.unsqueeze(1)?)?;
        let half = self.speed_emb.narrow(0, 1, 1)?.unsqueeze(0)?;
        let zero = self.speed_emb.narrow(0, 0, 1)?.unsqueeze(0)?;
        Ok(Tensor::cat(&[&lat, &half, &zero], 1)?)
    }

    /// The text part, `[start_text, text…, stop_text]` with positions.
    fn text(&self, tokens: &[u32]) -> Result<Tensor> {
        let c = &self.cfg;
        let mut ids = vec![c.start_text_token];
        ids.extend(
            tokens
                .iter()
                .copied()
                .filter(|&t| t != c.start_text_token && t != c.stop_text_token),
        );
        ids.push(c.stop_text_token);
        let emb = Self::rows(&self.text_embedding, &ids, "text token")?;
        let pos = Self::positions(&self.text_pos, 0, ids.len(), "text")?;
        Ok((emb + pos)?.unsqueeze(0)?)
    }

    /// The decoding prompt (`prepare_gpt_inputs`): `[1, 34 + len + 2, d]`.
    pub fn prompt(&self, speech_latent: &Tensor, emo_vec: &Tensor, text: &[u32]) -> Result<Tensor> {
        Ok(Tensor::cat(
            &[
                &self.conditioning(speech_latent, emo_vec)?,
                &self.text(text)?,
            ],
            1,
        )?)
    }

    /// Runs the transformer over `x` `[b, s, d]` after the cached positions
    /// (the cache holds `b` sequences, or is empty); returns the states after
    /// `ln_f`.
    pub fn transformer(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let (b, s, d) = x.dims3()?;
        let h = self.cfg.heads;
        let hd = d / h;
        if cache.kv.len() != self.blocks.len() {
            cache.kv = vec![None; self.blocks.len()];
        }
        let past = cache.len();
        let mask = if s > 1 {
            let total = past + s;
            let m: Vec<f32> = (0..s)
                .flat_map(|i| {
                    (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            Some(Tensor::from_vec(m, (1, 1, s, total), x.device())?)
        } else {
            None
        };
        let mut x = x.clone();
        for (block, slot) in self.blocks.iter().zip(cache.kv.iter_mut()) {
            let a = block.c_attn.forward(&block.ln_1.forward(&x)?)?;
            let split = |i: usize| -> Result<Tensor> {
                Ok(a.narrow(2, i * d, d)?
                    .reshape((b, s, h, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let (q, mut k, mut v) = (split(0)?, split(1)?, split(2)?);
            if let Some((pk, pv)) = slot.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
            let mut w = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
            if let Some(m) = &mask {
                w = w.broadcast_add(m)?;
            }
            let w = candle_nn::ops::softmax_last_dim(&w)?;
            let y = w.matmul(&v)?.transpose(1, 2)?.reshape((b, s, d))?;
            x = (x + block.c_proj.forward(&y)?)?;
            let m = block
                .mlp_proj
                .forward(&block.c_fc.forward(&block.ln_2.forward(&x)?)?.gelu()?)?;
            x = (x + m)?;
        }
        Ok(self.ln_f.forward(&x)?)
    }

    /// Raw mel logits of the last position of each sequence, `[b, codes]`.
    fn last_logits_batch(&self, states: &Tensor) -> Result<Tensor> {
        let s = states.dim(1)?;
        let last = states.narrow(1, s - 1, 1)?;
        Ok(self
            .mel_head
            .forward(&self.final_norm.forward(&last)?)?
            .squeeze(1)?)
    }

    /// Raw mel logits of the last position of `states` (`final_norm`, `mel_head`).
    fn last_logits(&self, states: &Tensor) -> Result<Tensor> {
        let s = states.dim(1)?;
        let last = states.narrow(1, s - 1, 1)?;
        Ok(self
            .mel_head
            .forward(&self.final_norm.forward(&last)?)?
            .flatten_all()?)
    }

    /// Decodes mel codes after `prompt` ([`Self::prompt`]). `uniform` gives
    /// the random numbers of sampling (in `[0, 1)`); with `top_k = 1` it is
    /// not called.
    pub fn generate(
        &self,
        prompt: &Tensor,
        sampling: &Sampling,
        uniform: &mut dyn FnMut() -> f32,
    ) -> Result<Decoded> {
        if sampling.num_beams > 1 {
            return self.beam_search(prompt, sampling, uniform);
        }
        let c = &self.cfg;
        let mut cache = KvCache::default();
        let start = (Self::rows(&self.mel_embedding, &[c.start_mel_token], "mel code")?
            + Self::positions(&self.mel_pos, 0, 1, "mel")?)?
        .unsqueeze(0)?;
        let states = self.transformer(&Tensor::cat(&[prompt, &start], 1)?, &mut cache)?;
        let mut logits = self.last_logits(&states)?;
        // Ids the repetition penalty sees: the placeholder prompt ids and the start token.
        let mut seen = vec![false; c.number_mel_codes];
        seen[1 % c.number_mel_codes] = true;
        seen[c.start_mel_token as usize % c.number_mel_codes] = true;
        let mut out = Decoded {
            codes: Vec::new(),
            stopped: false,
            logits: Vec::new(),
        };
        for k in 1..=sampling.max_mel_tokens {
            out.logits.push(logits.clone());
            let code = choose(&logits, &seen, sampling, uniform)?;
            if code == c.stop_mel_token {
                out.stopped = true;
                break;
            }
            out.codes.push(code);
            if k == sampling.max_mel_tokens {
                break;
            }
            seen[code as usize] = true;
            let emb = (Self::rows(&self.mel_embedding, &[code], "mel code")?
                + Self::positions(&self.mel_pos, k + 1, 1, "mel")?)?
            .unsqueeze(0)?;
            let states = self.transformer(&emb, &mut cache)?;
            logits = self.last_logits(&states)?;
        }
        Ok(out)
    }

    /// Beam search as transformers' `generate` runs it for
    /// `inference_speech` (`num_beams > 1`): per beam, log-softmax, the
    /// repetition penalty on the beam's own ids, then (when sampling)
    /// temperature, top-k and top-p keeping at least two candidates; the
    /// beam's score added; `2 × num_beams` candidates over all beams, drawn
    /// without replacement from their softmax or the best ones; those ending
    /// in the stop code (or at `max_mel_tokens`) among the first
    /// `num_beams` join the finished list (scores divided by
    /// `length^length_penalty`), the best unfinished continue; it ends when
    /// no running beam can beat the worst finished one. The best finished
    /// sequence is returned; `logits` holds the best running beam's raw
    /// logits per step.
    fn beam_search(
        &self,
        prompt: &Tensor,
        sampling: &Sampling,
        uniform: &mut dyn FnMut() -> f32,
    ) -> Result<Decoded> {
        const NEG: f32 = -1.0e9;
        let c = &self.cfg;
        let beams = sampling.num_beams;
        let keep = 2 * beams;
        let vocab = c.number_mel_codes;
        let stop = c.stop_mel_token;
        let mut cache = KvCache::default();
        let start = (Self::rows(&self.mel_embedding, &[c.start_mel_token], "mel code")?
            + Self::positions(&self.mel_pos, 0, 1, "mel")?)?
        .unsqueeze(0)?;
        let states = self.transformer(&Tensor::cat(&[prompt, &start], 1)?, &mut cache)?;
        let first = self.last_logits_batch(&states)?; // [1, vocab]
                                                      // Every beam starts from the prompt; only the first counts at first.
        let expand = Tensor::new(vec![0u32; beams].as_slice(), prompt.device())?;
        cache.select(&expand)?;
        let mut logits = first.index_select(&expand, 0)?; // [beams, vocab]
        let mut running: Vec<Vec<u32>> = vec![Vec::new(); beams];
        let mut running_scores: Vec<f32> =
            (0..beams).map(|b| if b == 0 { 0.0 } else { NEG }).collect();
        let mut finished: Vec<(f32, Vec<u32>, bool)> = vec![(NEG, Vec::new(), false); beams];
        let mut improvable = true;
        let mut trace = Vec::new();
        for step in 0..sampling.max_mel_tokens {
            let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
            trace.push(logits.get(0)?);
            let mut accumulated = Vec::with_capacity(beams * vocab);
            for (b, row) in rows.iter().enumerate() {
                let scores = beam_log_probs(row, &running[b], c, sampling);
                accumulated.extend(scores.iter().map(|&x| x + running_scores[b]));
            }
            let picked = if sampling.do_sample {
                draw_without_replacement(&accumulated, keep, uniform)
            } else {
                best_indices(&accumulated, keep)
            };
            let last = step + 1 == sampling.max_mel_tokens;
            // (score, beam, code, hits a stopping criterion)
            let cands: Vec<(f32, usize, u32, bool)> = picked
                .iter()
                .map(|&i| {
                    let code = (i % vocab) as u32;
                    (accumulated[i], i / vocab, code, code == stop || last)
                })
                .collect();
            // The finished list: the first `beams` candidates that stop
            // (early_stopping is False: a full list stays open).
            let mut merged = finished.clone();
            for (n, &(score, b, code, hit)) in cands.iter().enumerate() {
                let len = (step + 1) as f32;
                let mut f = score / len.powf(sampling.length_penalty);
                if !improvable {
                    f += NEG;
                }
                if !(hit && n < beams) {
                    f += NEG;
                }
                let mut seq = running[b].clone();
                seq.push(code);
                merged.push((f, seq, hit && n < beams));
            }
            finished = best_by_score(merged, beams);
            // The running beams: the best candidates that did not stop.
            let mut next: Vec<(f32, usize, u32)> = cands
                .iter()
                .map(|&(score, b, code, hit)| (score + if hit { NEG } else { 0.0 }, b, code))
                .collect();
            stable_sort_desc(&mut next, |x| x.0);
            next.truncate(beams);
            let valid = cands.iter().any(|x| !x.3);
            running = next
                .iter()
                .map(|&(_, b, code)| {
                    let mut seq = running[b].clone();
                    seq.push(code);
                    seq
                })
                .collect();
            running_scores = next.iter().map(|x| x.0).collect();
            // Can a running beam still beat the worst finished one?
            let best_running =
                running_scores[0] / ((step + 1) as f32).powf(sampling.length_penalty);
            let worst_finished = finished.iter().map(|f| f.0).fold(f32::INFINITY, f32::min);
            improvable = improvable
                && finished
                    .iter()
                    .any(|f| best_running > if f.2 { worst_finished } else { NEG });
            if !(improvable && valid) || last {
                break;
            }
            let order: Vec<u32> = next.iter().map(|x| x.1 as u32).collect();
            cache.select(&Tensor::new(order.as_slice(), prompt.device())?)?;
            let codes: Vec<u32> = running.iter().map(|r| r[r.len() - 1]).collect();
            let emb = (Self::rows(&self.mel_embedding, &codes, "mel code")?
                .unsqueeze(1)?
                .broadcast_add(&Self::positions(&self.mel_pos, step + 2, 1, "mel")?)?)
            .contiguous()?;
            let states = self.transformer(&emb, &mut cache)?;
            logits = self.last_logits_batch(&states)?;
        }
        let mut best = finished.into_iter().next().map(|f| f.1).unwrap_or_default();
        let stopped = best.last() == Some(&stop);
        if stopped {
            best.pop();
        }
        Ok(Decoded {
            codes: best,
            stopped,
            logits: trace,
        })
    }

    /// The latent pass (`UnifiedVoice.forward(..., return_latent)`): the
    /// final-normed states of `[start_mel, codes…]` in the sequence
    /// `[conds, start_text, text…, stop_text, start_mel, codes…, stop_mel]`,
    /// `[1, codes, d]`. Unlike the prompt, the text is not filtered here.
    pub fn latent(
        &self,
        speech_latent: &Tensor,
        emo_vec: &Tensor,
        text: &[u32],
        codes: &[u32],
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let mut text_ids = vec![c.start_text_token];
        text_ids.extend_from_slice(text);
        text_ids.push(c.stop_text_token);
        let text_emb = (Self::rows(&self.text_embedding, &text_ids, "text token")?
            + Self::positions(&self.text_pos, 0, text_ids.len(), "text")?)?;
        let mut mel_ids = vec![c.start_mel_token];
        mel_ids.extend_from_slice(codes);
        mel_ids.push(c.stop_mel_token);
        let mel_emb = (Self::rows(&self.mel_embedding, &mel_ids, "mel code")?
            + Self::positions(&self.mel_pos, 0, mel_ids.len(), "mel")?)?;
        let x = Tensor::cat(
            &[
                &self.conditioning(speech_latent, emo_vec)?,
                &text_emb.unsqueeze(0)?,
                &mel_emb.unsqueeze(0)?,
            ],
            1,
        )?;
        let states = self.transformer(&x, &mut KvCache::default())?;
        let s = states.dim(1)?;
        let mel = states.narrow(1, s - mel_ids.len(), codes.len())?;
        Ok(self.final_norm.forward(&mel)?)
    }

    /// The configuration.
    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        self.mel_embedding.device()
    }
}

/// Repetition penalty, temperature, top-k, top-p, then a draw (or the
/// argmax when only one candidate is left).
fn choose(
    logits: &Tensor,
    seen: &[bool],
    s: &Sampling,
    uniform: &mut dyn FnMut() -> f32,
) -> Result<u32> {
    let mut v: Vec<f32> = logits.to_dtype(DType::F32)?.to_vec1()?;
    for (x, &hit) in v.iter_mut().zip(seen) {
        if hit {
            *x = if *x < 0.0 {
                *x * s.repetition_penalty
            } else {
                *x / s.repetition_penalty
            };
        }
    }
    for x in &mut v {
        *x /= s.temperature;
    }
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    let k = if !s.do_sample {
        1
    } else if s.top_k == 0 {
        v.len()
    } else {
        s.top_k.min(v.len())
    };
    // Ties with the k-th value are kept, as in transformers' TopKLogitsWarper.
    let kth = v[order[k - 1]];
    let mut keep: Vec<usize> = order.iter().copied().take_while(|&i| v[i] >= kth).collect();
    if keep.len() == 1 {
        return Ok(keep[0] as u32);
    }
    // Top-p over the kept candidates (smallest set with mass > top_p, at least one).
    let max = v[keep[0]];
    let probs: Vec<f64> = keep.iter().map(|&i| f64::from(v[i] - max).exp()).collect();
    let total: f64 = probs.iter().sum();
    let mut cum = 0.0;
    let mut cut = keep.len();
    for (n, p) in probs.iter().enumerate() {
        cum += p / total;
        if cum > f64::from(s.top_p) {
            cut = n + 1;
            break;
        }
    }
    keep.truncate(cut.max(1));
    let probs = &probs[..keep.len()];
    let total: f64 = probs.iter().sum();
    let u = f64::from(uniform()).clamp(0.0, 1.0 - f64::EPSILON) * total;
    let mut acc = 0.0;
    for (&i, p) in keep.iter().zip(probs) {
        acc += p;
        if u < acc {
            return Ok(i as u32);
        }
    }
    keep.last()
        .map(|&i| i as u32)
        .ok_or_else(|| Error::Config("no candidate left to sample".into()))
}

/// A beam's processed log-probabilities: log-softmax of the raw logits, the
/// repetition penalty on the ids the beam has seen (prompt placeholder 1,
/// the start code, its codes), then when sampling temperature, top-k and
/// top-p, keeping at least two candidates (transformers' warpers with
/// `min_tokens_to_keep = 2` under beam search).
fn beam_log_probs(logits: &[f32], codes: &[u32], c: &GptConfig, s: &Sampling) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&x| (x - max).exp()).sum();
    let log_sum = sum.ln();
    let mut v: Vec<f32> = logits.iter().map(|&x| x - max - log_sum).collect();
    let n = v.len();
    let mut seen = vec![false; n];
    for id in [1, c.start_mel_token].iter().chain(codes) {
        if let Some(x) = seen.get_mut(*id as usize) {
            *x = true;
        }
    }
    for (x, &hit) in v.iter_mut().zip(&seen) {
        if hit {
            *x = if *x < 0.0 {
                *x * s.repetition_penalty
            } else {
                *x / s.repetition_penalty
            };
        }
    }
    if !s.do_sample {
        return v;
    }
    for x in &mut v {
        *x /= s.temperature;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    let k = if s.top_k == 0 {
        n
    } else {
        s.top_k.max(2).min(n)
    };
    let kth = v[order[k - 1]];
    for x in &mut v {
        if *x < kth {
            *x = f32::NEG_INFINITY;
        }
    }
    // Top-p over what is left: drop the least likely while the mass they
    // leave out stays within 1 - top_p, keeping at least two.
    let kept: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| v[i].is_finite())
        .collect();
    let top = v[kept[0]];
    let probs: Vec<f64> = kept.iter().map(|&i| f64::from(v[i] - top).exp()).collect();
    let total: f64 = probs.iter().sum();
    let mut tail = 0.0;
    for (rank, &i) in kept.iter().enumerate().rev() {
        if rank < 2 {
            break;
        }
        tail += probs[rank] / total;
        if tail <= 1.0 - f64::from(s.top_p) {
            v[i] = f32::NEG_INFINITY;
        } else {
            break;
        }
    }
    v
}

/// Indices of the `k` largest finite values, largest first (ties: lower
/// index first).
fn best_indices(v: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_finite()).collect();
    order.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// `k` indices drawn without replacement from `softmax(v)`, in draw order.
fn draw_without_replacement(v: &[f32], k: usize, uniform: &mut dyn FnMut() -> f32) -> Vec<usize> {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut w: Vec<f64> = v.iter().map(|&x| f64::from(x - max).exp()).collect();
    let mut out = Vec::with_capacity(k);
    for _ in 0..k {
        let total: f64 = w.iter().sum();
        if total <= 0.0 {
            break;
        }
        let u = f64::from(uniform()).clamp(0.0, 1.0 - f64::EPSILON) * total;
        let mut acc = 0.0;
        let mut pick = None;
        for (i, &p) in w.iter().enumerate() {
            if p > 0.0 {
                acc += p;
                pick = Some(i);
                if u < acc {
                    break;
                }
            }
        }
        match pick {
            Some(i) => {
                out.push(i);
                w[i] = 0.0;
            }
            None => break,
        }
    }
    out
}

/// The `k` best entries by score (stable: earlier entries win ties, as
/// the finished list comes before the new candidates).
fn best_by_score(mut v: Vec<(f32, Vec<u32>, bool)>, k: usize) -> Vec<(f32, Vec<u32>, bool)> {
    stable_sort_desc(&mut v, |x| x.0);
    v.truncate(k);
    v
}

fn stable_sort_desc<T>(v: &mut [T], key: impl Fn(&T) -> f32) {
    v.sort_by(|a, b| key(b).total_cmp(&key(a)));
}
