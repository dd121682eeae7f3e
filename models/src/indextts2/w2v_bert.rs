//! w2v-BERT 2.0 (`facebook/w2v-bert-2.0`), the semantic feature extractor of
//! IndexTTS2: its input features ([`features`], transformers'
//! `SeamlessM4TFeatureExtractor`) and the conformer encoder ([`W2vBert`],
//! transformers' `Wav2Vec2BertModel`), run up to the hidden state the
//! pipeline uses (`hidden_states[17]`, the output of the 17th layer), then
//! normalised with `wav2vec2bert_stats.pt` ([`SemanticStats`]).
//!
//! Quirk kept: the feature extractor pads an odd number of fbank frames with
//! one frame of `padding_value` (1 in w2v-BERT 2.0's preprocessor config) and
//! masks it; the masked frame is still part of the output the pipeline uses.

use std::f64::consts::PI;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use super::weights::{depthwise_conv1d, layer_norm, linear};
use super::{Error, Result};

// ---------------------------------------------------------------------------
// SeamlessM4T feature extractor
// ---------------------------------------------------------------------------

/// Input features of w2v-BERT and their attention mask.
#[derive(Debug, Clone)]
pub struct W2vFeatures {
    /// `[1, frames / 2, 160]`: pairs of consecutive 80-bin log-mel frames,
    /// each bin normalised to zero mean and unit variance over the clip.
    pub features: Tensor,
    /// `[1, frames / 2]` (u8): 0 for the stacked frame that holds the padding.
    pub mask: Tensor,
    /// Number of unmasked (stacked) frames.
    pub valid: usize,
}

const N_FFT: usize = 512;
const WIN: usize = 400;
const HOP: usize = 160;
const N_MELS: usize = 80;

fn kaldi_mel(f: f64) -> f64 {
    1127.0 * (1.0 + f / 700.0).ln()
}

/// transformers' `mel_filter_bank(257, 80, 20, 8000, 16000, norm=None,
/// mel_scale="kaldi", triangularize_in_mel_space=True)`, `[257][80]` in f64.
fn seamless_mel_filters() -> Vec<[f64; N_MELS]> {
    let (lo, hi) = (kaldi_mel(20.0), kaldi_mel(8000.0));
    let n = N_MELS + 2;
    let step = (hi - lo) / (n - 1) as f64;
    let mels: Vec<f64> = (0..n)
        .map(|i| if i == n - 1 { hi } else { lo + i as f64 * step })
        .collect();
    let width = 16_000.0 / ((N_FFT / 2) as f64 * 2.0);
    (0..=N_FFT / 2)
        .map(|k| {
            let f = kaldi_mel(width * k as f64);
            let mut row = [0f64; N_MELS];
            for (i, r) in row.iter_mut().enumerate() {
                let down = -(mels[i] - f) / (mels[i + 1] - mels[i]);
                let up = (mels[i + 2] - f) / (mels[i + 2] - mels[i + 1]);
                *r = 0f64.max(down.min(up));
            }
            row
        })
        .collect()
}

/// `SeamlessM4TFeatureExtractor(padding_value)(samples, sampling_rate=16000)`
/// for one 16 kHz clip: Kaldi-style log-mel fbank in f64 (samples scaled to
/// 16-bit range, DC removal, pre-emphasis 0.97, Povey window, FFT 512, the
/// spectrum rounded to complex64 as transformers stores it, floor
/// 1.192092955078125e-7), per-bin normalisation (unbiased variance, + 1e-7),
/// padding to an even number of frames, and stacking of frame pairs.
pub fn features(samples: &[f32], padding_value: f32, device: &Device) -> Result<W2vFeatures> {
    if samples.len() < WIN {
        return Err(Error::Config(format!(
            "w2v-BERT features need at least {WIN} samples, got {}",
            samples.len()
        )));
    }
    let frames = 1 + (samples.len() - WIN) / HOP;
    if frames < 2 {
        return Err(Error::Config("w2v-BERT features need two frames".into()));
    }
    let filters = seamless_mel_filters();
    let window: Vec<f64> = (0..WIN)
        .map(|i| {
            let h = 0.5 - 0.5 * (2.0 * PI * i as f64 / (WIN - 1) as f64).cos();
            h.powf(0.85)
        })
        .collect();
    let mut feats = vec![0f32; frames * N_MELS];
    let mut re = vec![0f64; N_FFT];
    let mut im = vec![0f64; N_FFT];
    for t in 0..frames {
        re.fill(0.0);
        im.fill(0.0);
        let frame = &samples[t * HOP..t * HOP + WIN];
        for (r, &s) in re.iter_mut().zip(frame) {
            *r = f64::from(s) * 32768.0;
        }
        let mean = re[..WIN].iter().sum::<f64>() / WIN as f64;
        for r in &mut re[..WIN] {
            *r -= mean;
        }
        for i in (1..WIN).rev() {
            re[i] -= 0.97 * re[i - 1];
        }
        re[0] *= 1.0 - 0.97;
        for (r, w) in re[..WIN].iter_mut().zip(&window) {
            *r *= w;
        }
        crate::audio::features::fft(&mut re, &mut im);
        let power: Vec<f64> = (0..=N_FFT / 2)
            .map(|k| {
                // Stored as complex64, then |x|² in f64.
                let (a, b) = (f64::from(re[k] as f32), f64::from(im[k] as f32));
                let mag = a.hypot(b);
                mag * mag
            })
            .collect();
        for m in 0..N_MELS {
            let e: f64 = filters.iter().zip(&power).map(|(f, p)| f[m] * p).sum();
            feats[t * N_MELS + m] = e.max(1.192_092_955_078_125e-7).ln() as f32;
        }
    }
    // Per-bin normalisation over the clip, in f32 as numpy computes it.
    for m in 0..N_MELS {
        let col: Vec<f32> = (0..frames).map(|t| feats[t * N_MELS + m]).collect();
        let mut sum = 0f32;
        for &v in &col {
            sum += v;
        }
        let mean = sum / frames as f32;
        let mut ss = 0f32;
        for &v in &col {
            let d = v - mean;
            ss += d * d;
        }
        let std = (ss / (frames - 1) as f32 + 1e-7).sqrt();
        for (t, &v) in col.iter().enumerate() {
            feats[t * N_MELS + m] = (v - mean) / std;
        }
    }
    let padded = frames.next_multiple_of(2);
    feats.resize(padded * N_MELS, padding_value);
    let stacked = padded / 2;
    let valid = frames / 2;
    let mask: Vec<u8> = (0..stacked).map(|i| u8::from(i < valid)).collect();
    Ok(W2vFeatures {
        features: Tensor::from_vec(feats, (1, stacked, 2 * N_MELS), device)?,
        mask: Tensor::from_vec(mask, (1, stacked), device)?,
        valid,
    })
}

// ---------------------------------------------------------------------------
// The conformer encoder
// ---------------------------------------------------------------------------

/// The w2v-BERT settings the encoder needs (`config.json` of the model).
#[derive(Debug, Clone, PartialEq)]
pub struct W2vBertConfig {
    /// Width.
    pub hidden_size: usize,
    /// Layers to load and run (the pipeline needs 17 of w2v-BERT 2.0's 24).
    pub layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Depthwise convolution kernel (causal padding).
    pub conv_depthwise_kernel_size: usize,
    /// Relative-key positions to the left.
    pub left_max_position_embeddings: usize,
    /// Relative-key positions to the right.
    pub right_max_position_embeddings: usize,
    /// Input width (80 mel bins × stride 2).
    pub feature_projection_input_dim: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
}

impl W2vBertConfig {
    /// `facebook/w2v-bert-2.0` (transformers' `Wav2Vec2BertConfig` defaults),
    /// run up to `hidden_states[17]` as IndexTTS2 does.
    pub fn w2v_bert_2_indextts2() -> Self {
        Self {
            hidden_size: 1024,
            layers: 17,
            num_attention_heads: 16,
            intermediate_size: 4096,
            conv_depthwise_kernel_size: 31,
            left_max_position_embeddings: 64,
            right_max_position_embeddings: 8,
            feature_projection_input_dim: 160,
            layer_norm_eps: 1e-5,
        }
    }
}

#[derive(Debug, Clone)]
struct FeedForward {
    up: candle_nn::Linear,
    down: candle_nn::Linear,
}

impl FeedForward {
    fn load(vb: &VarBuilder, cfg: &W2vBertConfig) -> Result<Self> {
        Ok(Self {
            up: linear(
                &vb.pp("intermediate_dense"),
                cfg.hidden_size,
                cfg.intermediate_size,
                true,
            )?,
            down: linear(
                &vb.pp("output_dense"),
                cfg.intermediate_size,
                cfg.hidden_size,
                true,
            )?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.down.forward(&self.up.forward(x)?.silu()?)?)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    ffn1_norm: candle_nn::LayerNorm,
    ffn1: FeedForward,
    attn_norm: candle_nn::LayerNorm,
    q: candle_nn::Linear,
    k: candle_nn::Linear,
    v: candle_nn::Linear,
    out: candle_nn::Linear,
    distance: Tensor,
    conv_norm: candle_nn::LayerNorm,
    pw1: Tensor,
    dw: Tensor,
    dw_norm: candle_nn::LayerNorm,
    pw2: Tensor,
    ffn2_norm: candle_nn::LayerNorm,
    ffn2: FeedForward,
    final_norm: candle_nn::LayerNorm,
}

/// The w2v-BERT encoder (feature projection and conformer layers).
#[derive(Debug, Clone)]
pub struct W2vBert {
    proj_norm: candle_nn::LayerNorm,
    proj: candle_nn::Linear,
    layers: Vec<Layer>,
    cfg: W2vBertConfig,
}

impl W2vBert {
    /// Loads `feature_projection.*` and `encoder.layers.{0..layers}.*` under `vb`.
    pub fn load(vb: &VarBuilder, cfg: &W2vBertConfig) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        if cfg.num_attention_heads == 0
            || h.checked_rem(cfg.num_attention_heads) != Some(0)
            || cfg.conv_depthwise_kernel_size & 1 == 0
        {
            return Err(Error::Config(format!(
                "w2v-BERT: unusable settings {cfg:?}"
            )));
        }
        let head = h / cfg.num_attention_heads;
        let positions = cfg.left_max_position_embeddings + cfg.right_max_position_embeddings + 1;
        let layers = (0..cfg.layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layers.{i}"));
                let a = l.pp("self_attn");
                let c = l.pp("conv_module");
                Ok(Layer {
                    ffn1_norm: layer_norm(&l.pp("ffn1_layer_norm"), h, eps)?,
                    ffn1: FeedForward::load(&l.pp("ffn1"), cfg)?,
                    attn_norm: layer_norm(&l.pp("self_attn_layer_norm"), h, eps)?,
                    q: linear(&a.pp("linear_q"), h, h, true)?,
                    k: linear(&a.pp("linear_k"), h, h, true)?,
                    v: linear(&a.pp("linear_v"), h, h, true)?,
                    out: linear(&a.pp("linear_out"), h, h, true)?,
                    distance: a.get((positions, head), "distance_embedding.weight")?,
                    conv_norm: layer_norm(&c.pp("layer_norm"), h, eps)?,
                    pw1: c.get((2 * h, h, 1), "pointwise_conv1.weight")?,
                    dw: c
                        .get(
                            (h, 1, cfg.conv_depthwise_kernel_size),
                            "depthwise_conv.weight",
                        )?
                        .squeeze(1)?,
                    dw_norm: layer_norm(&c.pp("depthwise_layer_norm"), h, eps)?,
                    pw2: c.get((h, h, 1), "pointwise_conv2.weight")?,
                    ffn2_norm: layer_norm(&l.pp("ffn2_layer_norm"), h, eps)?,
                    ffn2: FeedForward::load(&l.pp("ffn2"), cfg)?,
                    final_norm: layer_norm(&l.pp("final_layer_norm"), h, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let fp = vb.pp("feature_projection");
        Ok(Self {
            proj_norm: layer_norm(&fp.pp("layer_norm"), cfg.feature_projection_input_dim, eps)?,
            proj: linear(
                &fp.pp("projection"),
                cfg.feature_projection_input_dim,
                h,
                true,
            )?,
            layers,
            cfg: cfg.clone(),
        })
    }

    /// The hidden states `hidden_states[0..=layers]` (`[1, t, hidden]` each:
    /// the projected features, then each layer's output) for `features`
    /// `[1, t, 160]` and an optional mask `[1, t]` (u8, 0 = padding).
    pub fn forward(&self, features: &Tensor, mask: Option<&Tensor>) -> Result<Vec<Tensor>> {
        let (b, t, f) = features.dims3()?;
        if b != 1 || f != self.cfg.feature_projection_input_dim || t == 0 {
            return Err(Error::Config(format!(
                "w2v-BERT expects [1, t, {}], got {:?}",
                self.cfg.feature_projection_input_dim,
                features.dims()
            )));
        }
        let mut x = self.proj.forward(&self.proj_norm.forward(features)?)?;
        // Masked frames: zeroed before the layers and before each
        // convolution, and excluded as attention keys.
        let (keep, bias) = match mask {
            Some(m) if m.dims() == [1, t] => {
                let keep = m.to_dtype(DType::F32)?.reshape((1, t, 1))?;
                let all = keep.sum_all()?.to_scalar::<f32>()?;
                if all as usize == t {
                    (None, None)
                } else {
                    let bias = ((1.0 - m.to_dtype(DType::F32)?)? * f64::from(f32::MIN))?
                        .reshape((1, 1, t))?;
                    (Some(keep), Some(bias))
                }
            }
            Some(m) => {
                return Err(Error::Config(format!(
                    "w2v-BERT mask {:?} does not match {t} frames",
                    m.dims()
                )))
            }
            None => (None, None),
        };
        if let Some(k) = &keep {
            x = x.broadcast_mul(k)?;
        }
        let distance = self.distance_index(t, x.device())?;
        let mut states = vec![x.clone()];
        for layer in &self.layers {
            x = self.layer(layer, &x, keep.as_ref(), bias.as_ref(), &distance)?;
            states.push(x.clone());
        }
        Ok(states)
    }

    /// `[t, t]` (u32): the relative-key row of each (query, key) pair,
    /// `clamp(key - query, -left, right) + left`.
    fn distance_index(&self, t: usize, device: &Device) -> Result<Tensor> {
        let (left, right) = (
            self.cfg.left_max_position_embeddings as i64,
            self.cfg.right_max_position_embeddings as i64,
        );
        let idx: Vec<u32> = (0..t as i64)
            .flat_map(|l| (0..t as i64).map(move |r| ((r - l).clamp(-left, right) + left) as u32))
            .collect();
        Ok(Tensor::from_vec(idx, (t, t), device)?)
    }

    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        keep: Option<&Tensor>,
        bias: Option<&Tensor>,
        distance: &Tensor,
    ) -> Result<Tensor> {
        let (_, t, h) = x.dims3()?;
        let heads = self.cfg.num_attention_heads;
        let d = h / heads;
        let x = ((l.ffn1.forward(&l.ffn1_norm.forward(x)?)? * 0.5)? + x)?;

        // Self-attention with relative-key position scores.
        let a = l.attn_norm.forward(&x)?;
        let split = |y: Tensor| -> Result<Tensor> {
            Ok(y.reshape((t, heads, d))?.transpose(0, 1)?.contiguous()?)
        };
        let q = split(l.q.forward(&a)?)?; // [H, t, d]
        let k = split(l.k.forward(&a)?)?;
        let v = split(l.v.forward(&a)?)?;
        let scale = (d as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? / scale)?;
        // q · E[p] for every relative position p, then picked per (query, key).
        let positions = l.distance.dim(0)?;
        let qe = q
            .reshape((heads * t, d))?
            .matmul(&l.distance.t()?)?
            .reshape((heads, t, positions))?;
        let idx = distance
            .unsqueeze(0)?
            .broadcast_as((heads, t, t))?
            .contiguous()?;
        let rel = qe.gather(&idx, 2)?;
        let mut scores = (scores + (rel / scale)?)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = probs.matmul(&v)?.transpose(0, 1)?.reshape((1, t, h))?;
        let x = (l.out.forward(&y)? + x)?;

        // Convolution module (GLU, causal depthwise convolution, swish).
        let mut c = l.conv_norm.forward(&x)?;
        if let Some(k) = keep {
            c = c.broadcast_mul(k)?;
        }
        let c = c.transpose(1, 2)?.conv1d(&l.pw1, 0, 1, 1, 1)?; // [1, 2h, t]
        let c = c
            .narrow(1, 0, h)?
            .mul(&candle_nn::ops::sigmoid(&c.narrow(1, h, h)?)?)?;
        let c = depthwise_conv1d(&c, &l.dw, l.dw.dim(1)? - 1, 0)?;
        let c = l.dw_norm.forward(&c.transpose(1, 2)?)?.silu()?;
        let c = c
            .transpose(1, 2)?
            .conv1d(&l.pw2, 0, 1, 1, 1)?
            .transpose(1, 2)?;
        let x = (x + c)?;

        let x = ((l.ffn2.forward(&l.ffn2_norm.forward(&x)?)? * 0.5)? + x)?;
        Ok(l.final_norm.forward(&x)?)
    }
}

/// `wav2vec2bert_stats.pt`: the mean and variance the pipeline normalises
/// `hidden_states[17]` with (`(x - mean) / sqrt(var)`).
#[derive(Debug, Clone)]
pub struct SemanticStats {
    mean: Tensor,
    std: Tensor,
}

impl SemanticStats {
    /// Loads `mean` and `var` (`[width]`) under `vb`.
    pub fn load(vb: &VarBuilder, width: usize) -> Result<Self> {
        Ok(Self {
            mean: vb.get(width, "mean")?,
            std: vb.get(width, "var")?.sqrt()?,
        })
    }

    /// `(x - mean) / std` over the last dimension.
    pub fn normalize(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?)
    }
}

/// The pipeline's `get_emb`: hidden state `layer` of `model`, normalised.
pub fn semantic_embedding(
    model: &W2vBert,
    stats: &SemanticStats,
    feats: &W2vFeatures,
    layer: usize,
) -> Result<Tensor> {
    let states = model.forward(&feats.features, Some(&feats.mask))?;
    let h = states.get(layer).ok_or_else(|| {
        Error::Config(format!(
            "hidden state {layer} asked of a w2v-BERT loaded with {} layers",
            states.len() - 1
        ))
    })?;
    stats.normalize(h)
}
