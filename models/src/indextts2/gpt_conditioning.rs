//! The conditioning side of the UnifiedVoice GPT (`indextts/gpt/model_v2.py`):
//! - speaker: a Conformer encoder (wenet style: 2× convolutional subsampling,
//!   relative-position self-attention without the shift, a convolution
//!   module, pre-norm) over `spk_cond_emb`, then a Perceiver resampler to 32
//!   latents of the GPT's width (`speech_conditioning_latent`);
//! - emotion: the same over `emo_cond_emb` with a one-latent Perceiver at
//!   1024 wide, then `emovec_layer` and `emo_layer` (`get_emovec`), and the
//!   pipeline's `merge_emovec(spk, emo, alpha)`.
//!
//! The reference passes the channel count (1024) as the sequences' lengths,
//! so no frame is ever masked; the port has no masks. Weights: `gpt.pth`
//! (`conditioning_encoder.*`, `perceiver_encoder.*`, `emo_conditioning_encoder.*`,
//! `emo_perceiver_encoder.*`, `emovec_layer.*`, `emo_layer.*`).

use candle_core::{Module, Tensor, D};
use candle_nn::VarBuilder;

use super::weights::{depthwise_conv1d, layer_norm, linear};
use super::{Error, Result};

/// A `condition_module` / `emo_condition_module` section of config.yaml.
#[derive(Debug, Clone, PartialEq)]
pub struct ConformerConfig {
    /// Input width (1024, w2v-BERT's, hard-coded by the reference).
    pub input_size: usize,
    /// Width of the encoder.
    pub output_size: usize,
    /// Feed-forward width.
    pub linear_units: usize,
    /// Attention heads (also the Perceiver's).
    pub attention_heads: usize,
    /// Layers.
    pub num_blocks: usize,
    /// Perceiver feed-forward multiplier: any number, as the reference
    /// takes it (the width is [`feed_forward_width`]).
    pub perceiver_mult: f64,
}

/// The `gpt` section of config.yaml, as far as the conditioning goes.
#[derive(Debug, Clone, PartialEq)]
pub struct GptConditioningConfig {
    /// GPT width (1280 in IndexTTS2).
    pub model_dim: usize,
    /// Speaker conditioning.
    pub condition_module: ConformerConfig,
    /// Emotion conditioning.
    pub emo_condition_module: ConformerConfig,
    /// Perceiver latents of the speaker conditioning (32).
    pub condition_num_latent: usize,
}

impl GptConditioningConfig {
    /// The official IndexTTS2 settings.
    pub fn indextts2() -> Self {
        Self {
            model_dim: 1280,
            condition_module: ConformerConfig {
                input_size: 1024,
                output_size: 512,
                linear_units: 2048,
                attention_heads: 8,
                num_blocks: 6,
                perceiver_mult: 2.0,
            },
            emo_condition_module: ConformerConfig {
                input_size: 1024,
                output_size: 512,
                linear_units: 1024,
                attention_heads: 4,
                num_blocks: 4,
                perceiver_mult: 2.0,
            },
            condition_num_latent: 32,
        }
    }
}

const CNN_KERNEL: usize = 15;

#[derive(Debug, Clone)]
struct ConformerLayer {
    norm_mha: candle_nn::LayerNorm,
    q: candle_nn::Linear,
    k: candle_nn::Linear,
    v: candle_nn::Linear,
    out: candle_nn::Linear,
    pos: candle_nn::Linear,
    bias_u: Tensor,
    bias_v: Tensor,
    norm_conv: candle_nn::LayerNorm,
    pw1: candle_nn::Linear,
    dw_w: Tensor,
    dw_b: Tensor,
    conv_norm: candle_nn::LayerNorm,
    pw2: candle_nn::Linear,
    norm_ff: candle_nn::LayerNorm,
    w1: candle_nn::Linear,
    w2: candle_nn::Linear,
    norm_final: candle_nn::LayerNorm,
}

/// A 1×1 convolution stored as `[out, in, 1]`, run as a linear layer.
fn pointwise(vb: &VarBuilder, cin: usize, cout: usize) -> Result<candle_nn::Linear> {
    let w = vb.get((cout, cin, 1), "weight")?.squeeze(2)?;
    Ok(candle_nn::Linear::new(w, Some(vb.get(cout, "bias")?)))
}

/// The Conformer encoder (`ConformerEncoder`, `input_layer="conv2d2"`,
/// `pos_enc_layer_type="rel_pos"`, no macaron, convolution kernel 15).
#[derive(Debug, Clone)]
pub struct Conformer {
    conv_w: Tensor,
    conv_b: Tensor,
    embed_out: candle_nn::Linear,
    layers: Vec<ConformerLayer>,
    after_norm: candle_nn::LayerNorm,
    cfg: ConformerConfig,
}

impl Conformer {
    /// Loads `embed.*`, `encoders.*` and `after_norm.*` under `vb`.
    pub fn load(vb: &VarBuilder, cfg: &ConformerConfig) -> Result<Self> {
        let o = cfg.output_size;
        if cfg.attention_heads == 0 || o.checked_rem(cfg.attention_heads) != Some(0) || o & 1 != 0 {
            return Err(Error::Config(format!(
                "conformer: unusable settings {cfg:?}"
            )));
        }
        let dk = o / cfg.attention_heads;
        let freq = (cfg.input_size - 1) / 2;
        let layers = (0..cfg.num_blocks)
            .map(|i| {
                let l = vb.pp(format!("encoders.{i}"));
                let a = l.pp("self_attn");
                let c = l.pp("conv_module");
                Ok(ConformerLayer {
                    norm_mha: layer_norm(&l.pp("norm_mha"), o, 1e-5)?,
                    q: linear(&a.pp("linear_q"), o, o, true)?,
                    k: linear(&a.pp("linear_k"), o, o, true)?,
                    v: linear(&a.pp("linear_v"), o, o, true)?,
                    out: linear(&a.pp("linear_out"), o, o, true)?,
                    pos: linear(&a.pp("linear_pos"), o, o, false)?,
                    bias_u: a.get((cfg.attention_heads, dk), "pos_bias_u")?,
                    bias_v: a.get((cfg.attention_heads, dk), "pos_bias_v")?,
                    norm_conv: layer_norm(&l.pp("norm_conv"), o, 1e-5)?,
                    pw1: pointwise(&c.pp("pointwise_conv1"), o, 2 * o)?,
                    dw_w: c
                        .get((o, 1, CNN_KERNEL), "depthwise_conv.weight")?
                        .squeeze(1)?,
                    dw_b: c.get(o, "depthwise_conv.bias")?,
                    conv_norm: layer_norm(&c.pp("norm"), o, 1e-5)?,
                    pw2: pointwise(&c.pp("pointwise_conv2"), o, o)?,
                    norm_ff: layer_norm(&l.pp("norm_ff"), o, 1e-5)?,
                    w1: linear(&l.pp("feed_forward.w_1"), o, cfg.linear_units, true)?,
                    w2: linear(&l.pp("feed_forward.w_2"), cfg.linear_units, o, true)?,
                    norm_final: layer_norm(&l.pp("norm_final"), o, 1e-5)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conv_w: vb.get((o, 1, 3, 3), "embed.conv.0.weight")?,
            conv_b: vb.get(o, "embed.conv.0.bias")?,
            embed_out: linear(&vb.pp("embed.out.0"), o * freq, o, true)?,
            layers,
            after_norm: layer_norm(&vb.pp("after_norm"), o, 1e-5)?,
            cfg: cfg.clone(),
        })
    }

    /// wenet's sinusoidal table (`pe`), first `t` rows, in f32 as built.
    fn positions(&self, t: usize, device: &candle_core::Device) -> Result<Tensor> {
        let d = self.cfg.output_size;
        let c = -(10000f64.ln() / d as f64) as f32;
        let div: Vec<f32> = (0..d / 2).map(|i| ((2 * i) as f32 * c).exp()).collect();
        let mut pe = vec![0f32; t * d];
        for p in 0..t {
            for (i, f) in div.iter().enumerate() {
                let a = p as f32 * f;
                pe[p * d + 2 * i] = a.sin();
                pe[p * d + 2 * i + 1] = a.cos();
            }
        }
        Ok(Tensor::from_vec(pe, (1, t, d), device)?)
    }

    /// `[1, t, input_size]` → `[1, (t - 1) / 2, output_size]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, f) = x.dims3()?;
        if b != 1 || f != self.cfg.input_size || t < 3 {
            return Err(Error::Config(format!(
                "conformer expects [1, t ≥ 3, {}], got {:?}",
                self.cfg.input_size,
                x.dims()
            )));
        }
        let o = self.cfg.output_size;
        let y = x
            .unsqueeze(1)?
            .conv2d(&self.conv_w, 0, 2, 1, 1)?
            .broadcast_add(&self.conv_b.reshape((1, o, 1, 1))?)?
            .relu()?; // [1, o, t', f']
        let (_, _, t2, f2) = y.dims4()?;
        let y = y.transpose(1, 2)?.reshape((1, t2, o * f2))?;
        let mut x = (self.embed_out.forward(&y)? * (o as f64).sqrt())?;
        let pos = self.positions(t2, x.device())?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &pos)?;
        }
        Ok(self.after_norm.forward(&x)?)
    }

    fn layer(&self, l: &ConformerLayer, x: &Tensor, pos: &Tensor) -> Result<Tensor> {
        let (_, t, o) = x.dims3()?;
        let h = self.cfg.attention_heads;
        let dk = o / h;
        let a = l.norm_mha.forward(x)?;
        let heads = |y: Tensor| -> Result<Tensor> { Ok(y.reshape((t, h, dk))?) };
        let q = heads(l.q.forward(&a)?)?; // [t, h, dk]
        let k = heads(l.k.forward(&a)?)?.transpose(0, 1)?.contiguous()?;
        let v = heads(l.v.forward(&a)?)?.transpose(0, 1)?.contiguous()?;
        let p = heads(l.pos.forward(pos)?)?.transpose(0, 1)?.contiguous()?;
        let qu = q.broadcast_add(&l.bias_u)?.transpose(0, 1)?.contiguous()?;
        let qv = q.broadcast_add(&l.bias_v)?.transpose(0, 1)?.contiguous()?;
        let ac = qu.matmul(&k.t()?)?;
        let bd = qv.matmul(&p.t()?)?;
        let scores = ((ac + bd)? / (dk as f64).sqrt())?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = probs.matmul(&v)?.transpose(0, 1)?.reshape((1, t, o))?;
        let x = (x + l.out.forward(&y)?)?;

        let c = l.pw1.forward(&l.norm_conv.forward(&x)?)?; // [1, t, 2o]
        let c = c
            .narrow(2, 0, o)?
            .mul(&candle_nn::ops::sigmoid(&c.narrow(2, o, o)?)?)?;
        let pad = (CNN_KERNEL - 1) / 2;
        let c = depthwise_conv1d(&c.transpose(1, 2)?, &l.dw_w, pad, pad)?
            .broadcast_add(&l.dw_b.reshape((1, o, 1))?)?
            .transpose(1, 2)?;
        let c = l.pw2.forward(&l.conv_norm.forward(&c)?.silu()?)?;
        let x = (x + c)?;

        let f =
            l.w2.forward(&l.w1.forward(&l.norm_ff.forward(&x)?)?.silu()?)?;
        Ok(l.norm_final.forward(&(x + f)?)?)
    }
}

#[derive(Debug, Clone)]
struct PerceiverLayer {
    to_q: candle_nn::Linear,
    to_kv: candle_nn::Linear,
    to_out: candle_nn::Linear,
    ff_in: candle_nn::Linear,
    ff_out: candle_nn::Linear,
}

/// The Perceiver resampler (two layers of cross-attention from learned
/// latents to `[latents; context]`, GEGLU feed-forward, RMS norm).
#[derive(Debug, Clone)]
pub struct Perceiver {
    proj_context: Option<candle_nn::Linear>,
    latents: Tensor,
    layers: Vec<PerceiverLayer>,
    gamma: Tensor,
    heads: usize,
    dim: usize,
}

const DIM_HEAD: usize = 64;

/// The Perceiver's feed-forward width, as the reference's `FeedForward`
/// computes it: `int(dim * mult * 2 / 3)`, in floating point (so a float
/// `perceiver_mult` such as 0.09375 works), truncated.
///
/// ```
/// use models::indextts2::gpt_conditioning::feed_forward_width;
/// assert_eq!(feed_forward_width(512, 2.0), 682);
/// assert_eq!(feed_forward_width(512, 0.09375), 32);
/// ```
pub fn feed_forward_width(dim: usize, mult: f64) -> usize {
    (dim as f64 * mult * 2.0 / 3.0) as usize
}
const PERCEIVER_DEPTH: usize = 2;

impl Perceiver {
    /// `PerceiverResampler(dim, dim_context, ff_mult, heads, num_latents)`.
    pub fn load(
        vb: &VarBuilder,
        dim: usize,
        dim_context: usize,
        ff_mult: f64,
        heads: usize,
        num_latents: usize,
    ) -> Result<Self> {
        let inner = DIM_HEAD * heads;
        let ff = feed_forward_width(dim, ff_mult);
        let layers = (0..PERCEIVER_DEPTH)
            .map(|i| {
                let l = vb.pp(format!("layers.{i}"));
                Ok(PerceiverLayer {
                    to_q: linear(&l.pp("0.to_q"), dim, inner, false)?,
                    to_kv: linear(&l.pp("0.to_kv"), dim, 2 * inner, false)?,
                    to_out: linear(&l.pp("0.to_out"), inner, dim, false)?,
                    ff_in: linear(&l.pp("1.0"), dim, 2 * ff, true)?,
                    ff_out: linear(&l.pp("1.2"), ff, dim, true)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            proj_context: if dim_context != dim {
                Some(linear(&vb.pp("proj_context"), dim_context, dim, true)?)
            } else {
                None
            },
            latents: vb.get((num_latents, dim), "latents")?,
            layers,
            gamma: vb.get(dim, "norm.gamma")?,
            heads,
            dim,
        })
    }

    /// `[1, t, dim_context]` → `[1, num_latents, dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = match &self.proj_context {
            Some(p) => p.forward(x)?,
            None => x.clone(),
        };
        let n = self.latents.dim(0)?;
        let h = self.heads;
        let inner = DIM_HEAD * h;
        let mut lat = self.latents.unsqueeze(0)?;
        for l in &self.layers {
            let ctx = Tensor::cat(&[&lat, &x], 1)?;
            let m = ctx.dim(1)?;
            let split = |y: Tensor, len: usize| -> Result<Tensor> {
                Ok(y.reshape((len, h, DIM_HEAD))?
                    .transpose(0, 1)?
                    .contiguous()?)
            };
            let q = split(l.to_q.forward(&lat)?, n)?;
            let kv = l.to_kv.forward(&ctx)?;
            let k = split(kv.narrow(2, 0, inner)?, m)?;
            let v = split(kv.narrow(2, inner, inner)?, m)?;
            let sim = (q.matmul(&k.t()?)? * (DIM_HEAD as f64).powf(-0.5))?;
            let attn = candle_nn::ops::softmax_last_dim(&sim)?;
            let o = attn.matmul(&v)?.transpose(0, 1)?.reshape((1, n, inner))?;
            lat = (l.to_out.forward(&o)? + lat)?;
            let f = l.ff_in.forward(&lat)?;
            let half = f.dim(2)? / 2;
            let g = (f.narrow(2, half, half)?.gelu_erf()? * f.narrow(2, 0, half)?)?;
            lat = (l.ff_out.forward(&g)? + lat)?;
        }
        // RMSNorm: F.normalize(x) * sqrt(dim) * gamma.
        let norm = lat.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
        Ok(lat
            .broadcast_div(&norm)?
            .affine((self.dim as f64).sqrt(), 0.0)?
            .broadcast_mul(&self.gamma)?)
    }
}

/// The GPT's speaker and emotion conditioning.
#[derive(Debug, Clone)]
pub struct GptConditioning {
    spk_encoder: Conformer,
    spk_perceiver: Perceiver,
    emo_encoder: Conformer,
    emo_perceiver: Perceiver,
    emovec_layer: candle_nn::Linear,
    emo_layer: candle_nn::Linear,
}

/// Width of the emotion perceiver (hard-coded by the reference).
const EMO_DIM: usize = 1024;

impl GptConditioning {
    /// Loads the conditioning modules of `gpt.pth` (under `vb`).
    pub fn load(vb: &VarBuilder, cfg: &GptConditioningConfig) -> Result<Self> {
        let (c, e) = (&cfg.condition_module, &cfg.emo_condition_module);
        Ok(Self {
            spk_encoder: Conformer::load(&vb.pp("conditioning_encoder"), c)?,
            spk_perceiver: Perceiver::load(
                &vb.pp("perceiver_encoder"),
                cfg.model_dim,
                c.output_size,
                c.perceiver_mult,
                c.attention_heads,
                cfg.condition_num_latent,
            )?,
            emo_encoder: Conformer::load(&vb.pp("emo_conditioning_encoder"), e)?,
            emo_perceiver: Perceiver::load(
                &vb.pp("emo_perceiver_encoder"),
                EMO_DIM,
                e.output_size,
                e.perceiver_mult,
                e.attention_heads,
                1,
            )?,
            emovec_layer: linear(&vb.pp("emovec_layer"), EMO_DIM, cfg.model_dim, true)?,
            emo_layer: linear(&vb.pp("emo_layer"), cfg.model_dim, cfg.model_dim, true)?,
        })
    }

    /// `get_conditioning`: `spk_cond_emb` `[1, t, 1024]` → `[1, 32, model_dim]`.
    pub fn speech_latent(&self, spk_cond_emb: &Tensor) -> Result<Tensor> {
        self.spk_perceiver
            .forward(&self.spk_encoder.forward(spk_cond_emb)?)
    }

    /// The speaker Conformer alone (`[1, (t - 1) / 2, output_size]`).
    pub fn speaker_encoder(&self) -> &Conformer {
        &self.spk_encoder
    }

    /// `get_emovec`: `emo_cond_emb` `[1, t, 1024]` → `[1, model_dim]`.
    pub fn emo_vec(&self, emo_cond_emb: &Tensor) -> Result<Tensor> {
        let e = self
            .emo_perceiver
            .forward(&self.emo_encoder.forward(emo_cond_emb)?)?
            .squeeze(1)?;
        Ok(self.emo_layer.forward(&self.emovec_layer.forward(&e)?)?)
    }

    /// `merge_emovec`: `base + alpha · (emo − base)` with `base` the
    /// speaker clip's emotion vector.
    pub fn merge_emovec(
        &self,
        spk_cond_emb: &Tensor,
        emo_cond_emb: &Tensor,
        alpha: f64,
    ) -> Result<Tensor> {
        let emo = self.emo_vec(emo_cond_emb)?;
        let base = self.emo_vec(spk_cond_emb)?;
        Ok((&base + ((emo - &base)? * alpha)?)?)
    }
}
