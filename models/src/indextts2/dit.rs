//! s2mel's diffusion transformer (`DiT`), the velocity estimator of the flow
//! matching, in the configuration IndexTTS2 uses: the noisy mel, the prompt
//! mel, the content condition and the style are concatenated per frame and
//! merged by a linear layer; a pre-norm transformer (RMS norms modulated by
//! the timestep, rotary positions on adjacent pairs, SwiGLU, U-ViT skips from
//! the first half of the layers to the second) runs over all frames without
//! masking; a long skip with the noisy mel, a WaveNet conditioned on a second
//! timestep embedding, a timestep-modulated final layer and a 1×1
//! convolution give the velocity. Weights: `s2mel.pth` → `net.cfm.estimator.*`.

use candle_core::{Device, Module, Tensor, D};
use candle_nn::VarBuilder;

use super::weights::{linear, weight_maybe_norm, Conv1d, Conv1dSpec};
use super::{Error, Result};

/// The DiT sections of config.yaml (`s2mel.DiT`, `s2mel.wavenet`,
/// `s2mel.style_encoder.dim`, `s2mel.length_regulator.channels`).
#[derive(Debug, Clone, PartialEq)]
pub struct DitConfig {
    /// Transformer width (`DiT.hidden_dim`).
    pub hidden_dim: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Transformer layers (`DiT.depth`).
    pub depth: usize,
    /// Mel bands (`DiT.in_channels`).
    pub in_channels: usize,
    /// Width of the content condition (`DiT.content_dim`).
    pub content_dim: usize,
    /// Style width (`style_encoder.dim`).
    pub style_dim: usize,
    /// U-ViT skip connections.
    pub uvit_skip_connection: bool,
    /// WaveNet width (must equal `hidden_dim`: the reference's final layer is
    /// modulated by the transformer's timestep embedding).
    pub wavenet_hidden_dim: usize,
    /// WaveNet layers.
    pub wavenet_num_layers: usize,
    /// WaveNet kernel (odd).
    pub wavenet_kernel_size: usize,
    /// WaveNet dilation rate.
    pub wavenet_dilation_rate: usize,
}

impl DitConfig {
    /// The official IndexTTS2 settings.
    pub fn indextts2() -> Self {
        Self {
            hidden_dim: 512,
            num_heads: 8,
            depth: 13,
            in_channels: 80,
            content_dim: 512,
            style_dim: 192,
            uvit_skip_connection: true,
            wavenet_hidden_dim: 512,
            wavenet_num_layers: 8,
            wavenet_kernel_size: 5,
            wavenet_dilation_rate: 1,
        }
    }

    /// SwiGLU width of gpt-fast's `ModelArgs`: `find_multiple(int(8 * dim / 3), 256)`.
    pub fn intermediate_size(&self) -> usize {
        let n = 2 * (4 * self.hidden_dim) / 3;
        n.div_ceil(256) * 256
    }
}

/// Sinusoidal timestep embedding (256 frequencies, scale 1000) and an MLP.
#[derive(Debug, Clone)]
struct TimestepEmbedder {
    freqs: Tensor,
    l1: candle_nn::Linear,
    l2: candle_nn::Linear,
}

impl TimestepEmbedder {
    const FREQ: usize = 256;

    fn load(vb: &VarBuilder, hidden: usize) -> Result<Self> {
        let half = Self::FREQ / 2;
        // exp(-ln(10000) * arange(half) / half), in f32 as the buffer is built.
        let c = -(10000f64.ln()) as f32;
        let freqs: Vec<f32> = (0..half)
            .map(|i| (c * i as f32 / half as f32).exp())
            .collect();
        Ok(Self {
            freqs: Tensor::from_vec(freqs, (1, half), vb.device())?,
            l1: linear(&vb.pp("mlp.0"), Self::FREQ, hidden, true)?,
            l2: linear(&vb.pp("mlp.2"), hidden, hidden, true)?,
        })
    }

    /// `t` `[b]` → `[b, hidden]`.
    fn forward(&self, t: &Tensor) -> Result<Tensor> {
        let args = (t.unsqueeze(1)? * 1000.0)?.broadcast_mul(&self.freqs)?;
        let emb = Tensor::cat(&[args.cos()?, args.sin()?], 1)?;
        Ok(self.l2.forward(&self.l1.forward(&emb)?.silu()?)?)
    }
}

/// RMS norm whose output is scaled and shifted by a projection of the
/// condition (`AdaptiveLayerNorm(RMSNorm)`).
#[derive(Debug, Clone)]
struct AdaRmsNorm {
    weight: Tensor,
    project: candle_nn::Linear,
    dim: usize,
}

impl AdaRmsNorm {
    fn load(vb: &VarBuilder, dim: usize) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "norm.weight")?,
            project: linear(&vb.pp("project_layer"), dim, 2 * dim, true)?,
            dim,
        })
    }

    /// `x` `[b, t, d]`, `c` `[b, 1, d]`.
    fn forward(&self, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = x
            .broadcast_mul(&(ms + 1e-5)?.sqrt()?.recip()?)?
            .broadcast_mul(&self.weight)?;
        let wb = self.project.forward(c)?;
        let w = wb.narrow(D::Minus1, 0, self.dim)?;
        let b = wb.narrow(D::Minus1, self.dim, self.dim)?;
        Ok(normed.broadcast_mul(&w)?.broadcast_add(&b)?)
    }
}

#[derive(Debug, Clone)]
struct Block {
    skip_in: Option<candle_nn::Linear>,
    attn_norm: AdaRmsNorm,
    wqkv: candle_nn::Linear,
    wo: candle_nn::Linear,
    ffn_norm: AdaRmsNorm,
    w1: candle_nn::Linear,
    w2: candle_nn::Linear,
    w3: candle_nn::Linear,
}

/// The WaveNet (`WN` with weight-normed `SConv1d`s: reflect padding).
#[derive(Debug, Clone)]
struct WaveNet {
    cond: Conv1d,
    in_layers: Vec<(Conv1d, usize)>,
    res_skip: Vec<Conv1d>,
    hidden: usize,
}

/// Reflect padding of `[b, c, t]` along time, as `SConv1d` pads.
fn reflect_pad_time(x: &Tensor, left: usize, right: usize) -> Result<Tensor> {
    let t = x.dim(2)?;
    if left >= t || right >= t {
        return Err(Error::Config(format!(
            "reflect padding {left}/{right} needs more than {t} frames"
        )));
    }
    let mut parts = Vec::with_capacity(left + right + 1);
    for i in (1..=left).rev() {
        parts.push(x.narrow(2, i, 1)?);
    }
    parts.push(x.clone());
    for i in 1..=right {
        parts.push(x.narrow(2, t - 1 - i, 1)?);
    }
    Ok(Tensor::cat(&parts, 2)?)
}

impl WaveNet {
    fn load(vb: &VarBuilder, cfg: &DitConfig) -> Result<Self> {
        let (h, n, k) = (
            cfg.wavenet_hidden_dim,
            cfg.wavenet_num_layers,
            cfg.wavenet_kernel_size,
        );
        let mut in_layers = Vec::new();
        let mut res_skip = Vec::new();
        let mut dilation = 1usize;
        for i in 0..n {
            in_layers.push((
                Conv1d::load(
                    &vb.pp(format!("in_layers.{i}.conv.conv")),
                    Conv1dSpec::new(h, 2 * h, k)
                        .dilation(dilation)
                        .weight_norm(),
                )?,
                (k - 1) * dilation,
            ));
            let out = if i + 1 < n { 2 * h } else { h };
            res_skip.push(Conv1d::load(
                &vb.pp(format!("res_skip_layers.{i}.conv.conv")),
                Conv1dSpec::new(h, out, 1).weight_norm(),
            )?);
            dilation *= cfg.wavenet_dilation_rate;
        }
        Ok(Self {
            cond: Conv1d::load(
                &vb.pp("cond_layer.conv.conv"),
                Conv1dSpec::new(h, 2 * h * n, 1).weight_norm(),
            )?,
            in_layers,
            res_skip,
            hidden: h,
        })
    }

    /// `x` `[b, h, t]`, `g` `[b, h, 1]`.
    fn forward(&self, x: &Tensor, g: &Tensor) -> Result<Tensor> {
        let h = self.hidden;
        let g = self.cond.forward(g)?;
        let mut x = x.clone();
        let mut out: Option<Tensor> = None;
        let n = self.in_layers.len();
        for (i, ((conv, pad), rs)) in self.in_layers.iter().zip(&self.res_skip).enumerate() {
            let right = pad / 2;
            let xp = reflect_pad_time(&x, pad - right, right)?;
            let x_in = conv.forward(&xp)?;
            let a = x_in.broadcast_add(&g.narrow(1, 2 * h * i, 2 * h)?)?;
            let acts =
                (a.narrow(1, 0, h)?.tanh()? * candle_nn::ops::sigmoid(&a.narrow(1, h, h)?)?)?;
            let rs = rs.forward(&acts)?;
            let skip = if i + 1 < n {
                x = (x + rs.narrow(1, 0, h)?)?;
                rs.narrow(1, h, h)?
            } else {
                rs
            };
            out = Some(match out {
                None => skip,
                Some(o) => (o + skip)?,
            });
        }
        out.ok_or_else(|| Error::Config("WaveNet without layers".into()))
    }
}

/// The DiT velocity estimator.
#[derive(Debug, Clone)]
pub struct Dit {
    cfg: DitConfig,
    t_embedder: TimestepEmbedder,
    t_embedder2: TimestepEmbedder,
    cond_projection: candle_nn::Linear,
    cond_x_merge: candle_nn::Linear,
    blocks: Vec<Block>,
    norm: AdaRmsNorm,
    skip_linear: candle_nn::Linear,
    conv1: candle_nn::Linear,
    wavenet: WaveNet,
    res_projection: candle_nn::Linear,
    final_modulation: candle_nn::Linear,
    final_linear: candle_nn::Linear,
    conv2: Conv1d,
}

impl Dit {
    /// Loads the estimator under `vb` (for `s2mel.pth`,
    /// `vb.pp("net").pp("cfm").pp("estimator")`).
    pub fn load(vb: &VarBuilder, cfg: &DitConfig) -> Result<Self> {
        let (d, heads) = (cfg.hidden_dim, cfg.num_heads);
        if heads == 0
            || d.checked_rem(heads) != Some(0)
            || (d / heads) & 1 != 0
            || cfg.wavenet_hidden_dim != d
            || cfg.wavenet_kernel_size & 1 == 0
            || cfg.wavenet_num_layers == 0
        {
            return Err(Error::Config(format!("DiT: unsupported settings {cfg:?}")));
        }
        let inter = cfg.intermediate_size();
        let tf = vb.pp("transformer");
        let blocks = (0..cfg.depth)
            .map(|i| {
                let b = tf.pp(format!("layers.{i}"));
                Ok(Block {
                    skip_in: if cfg.uvit_skip_connection && i > cfg.depth / 2 {
                        Some(linear(&b.pp("skip_in_linear"), 2 * d, d, true)?)
                    } else {
                        None
                    },
                    attn_norm: AdaRmsNorm::load(&b.pp("attention_norm"), d)?,
                    wqkv: linear(&b.pp("attention.wqkv"), d, 3 * d, false)?,
                    wo: linear(&b.pp("attention.wo"), d, d, false)?,
                    ffn_norm: AdaRmsNorm::load(&b.pp("ffn_norm"), d)?,
                    w1: linear(&b.pp("feed_forward.w1"), d, inter, false)?,
                    w2: linear(&b.pp("feed_forward.w2"), inter, d, false)?,
                    w3: linear(&b.pp("feed_forward.w3"), d, inter, false)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let w = cfg.wavenet_hidden_dim;
        let fl = vb.pp("final_layer.linear");
        let final_linear =
            candle_nn::Linear::new(weight_maybe_norm(&fl, &[w, w])?, Some(fl.get(w, "bias")?));
        Ok(Self {
            t_embedder: TimestepEmbedder::load(&vb.pp("t_embedder"), d)?,
            t_embedder2: TimestepEmbedder::load(&vb.pp("t_embedder2"), w)?,
            cond_projection: linear(&vb.pp("cond_projection"), cfg.content_dim, d, true)?,
            cond_x_merge: linear(
                &vb.pp("cond_x_merge_linear"),
                d + 2 * cfg.in_channels + cfg.style_dim,
                d,
                true,
            )?,
            blocks,
            norm: AdaRmsNorm::load(&tf.pp("norm"), d)?,
            skip_linear: linear(&vb.pp("skip_linear"), d + cfg.in_channels, d, true)?,
            conv1: linear(&vb.pp("conv1"), d, w, true)?,
            wavenet: WaveNet::load(&vb.pp("wavenet"), cfg)?,
            res_projection: linear(&vb.pp("res_projection"), d, w, true)?,
            final_modulation: linear(&vb.pp("final_layer.adaLN_modulation.1"), w, 2 * w, true)?,
            final_linear,
            conv2: Conv1d::load(&vb.pp("conv2"), Conv1dSpec::new(w, cfg.in_channels, 1))?,
            cfg: cfg.clone(),
        })
    }

    /// `cos`/`sin` of the rotary positions, `[t, head_dim / 2]` each (gpt-fast's
    /// `precompute_freqs_cis`, in f32).
    fn rope(&self, t: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let hd = self.cfg.hidden_dim / self.cfg.num_heads;
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / hd as f32))
            .collect();
        let mut cos = Vec::with_capacity(t * hd / 2);
        let mut sin = Vec::with_capacity(t * hd / 2);
        for p in 0..t {
            for f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok((
            Tensor::from_vec(cos, (t, hd / 2), device)?,
            Tensor::from_vec(sin, (t, hd / 2), device)?,
        ))
    }

    /// One velocity: `x`, `prompt_x` `[b, in_channels, t]`, `t` `[b]`, `style`
    /// `[b, style_dim]`, `cond` `[b, t, content_dim]` → `[b, in_channels, t]`.
    pub fn forward(
        &self,
        x: &Tensor,
        prompt_x: &Tensor,
        t: &Tensor,
        style: &Tensor,
        cond: &Tensor,
    ) -> Result<Tensor> {
        let (b, c, n) = x.dims3()?;
        if c != self.cfg.in_channels
            || prompt_x.dims() != x.dims()
            || cond.dims3()? != (b, n, self.cfg.content_dim)
        {
            return Err(Error::Config(format!(
                "DiT inputs: x {:?}, prompt {:?}, cond {:?}",
                x.dims(),
                prompt_x.dims(),
                cond.dims()
            )));
        }
        let t1 = self.t_embedder.forward(t)?; // [b, d]
        let cond = self.cond_projection.forward(cond)?;
        let x_t = x.transpose(1, 2)?;
        let style = style.unsqueeze(1)?.repeat((1, n, 1))?;
        let x_in = Tensor::cat(&[&x_t, &prompt_x.transpose(1, 2)?, &cond, &style], 2)?;
        let mut h = self.cond_x_merge.forward(&x_in)?;
        let c1 = t1.unsqueeze(1)?;
        let (cos, sin) = self.rope(n, x.device())?;
        let mut skips: Vec<Tensor> = Vec::new();
        let half = self.cfg.depth / 2;
        for (i, block) in self.blocks.iter().enumerate() {
            if let Some(skip_in) = &block.skip_in {
                let s = skips
                    .pop()
                    .ok_or_else(|| Error::Config("DiT: U-ViT skip stack empty".into()))?;
                h = skip_in.forward(&Tensor::cat(&[&h, &s], 2)?)?;
            }
            h = self.block(block, &h, &c1, &cos, &sin)?;
            if self.cfg.uvit_skip_connection && i < half {
                skips.push(h.clone());
            }
        }
        let h = self.norm.forward(&h, &c1)?;
        let x_res = self.skip_linear.forward(&Tensor::cat(&[&h, &x_t], 2)?)?;
        let y = self.conv1.forward(&x_res)?.transpose(1, 2)?;
        let t2 = self.t_embedder2.forward(t)?.unsqueeze(2)?;
        let y = self.wavenet.forward(&y, &t2)?.transpose(1, 2)?;
        let y = (y + self.res_projection.forward(&x_res)?)?;
        // Final layer: LayerNorm without affine (eps 1e-6), modulated by t1.
        let w = self.cfg.wavenet_hidden_dim;
        let m = self.final_modulation.forward(&t1.silu()?)?;
        let (shift, scale) = (m.narrow(1, 0, w)?, m.narrow(1, w, w)?);
        let mean = y.mean_keepdim(D::Minus1)?;
        let centred = y.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let y = centred.broadcast_div(&(var + 1e-6)?.sqrt()?)?;
        let y = y
            .broadcast_mul(&(scale + 1.0)?.unsqueeze(1)?)?
            .broadcast_add(&shift.unsqueeze(1)?)?;
        let y = self.final_linear.forward(&y)?.transpose(1, 2)?;
        self.conv2.forward(&y)
    }

    fn block(
        &self,
        b: &Block,
        x: &Tensor,
        c: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<Tensor> {
        let (bs, n, d) = x.dims3()?;
        let heads = self.cfg.num_heads;
        let hd = d / heads;
        let a = b.attn_norm.forward(x, c)?;
        let qkv = b.wqkv.forward(&a)?;
        let split = |i: usize| -> Result<Tensor> {
            Ok(qkv.narrow(2, i * d, d)?.reshape((bs, n, heads, hd))?)
        };
        let q = rotary(&split(0)?, cos, sin)?
            .transpose(1, 2)?
            .contiguous()?;
        let k = rotary(&split(1)?, cos, sin)?
            .transpose(1, 2)?
            .contiguous()?;
        let v = split(2)?.transpose(1, 2)?.contiguous()?;
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = probs.matmul(&v)?.transpose(1, 2)?.reshape((bs, n, d))?;
        let h = (x + b.wo.forward(&y)?)?;
        let f = b.ffn_norm.forward(&h, c)?;
        let f = (b.w1.forward(&f)?.silu()? * b.w3.forward(&f)?)?;
        Ok((h + b.w2.forward(&f)?)?)
    }
}

/// Rotary embedding on adjacent pairs of `x` `[b, t, heads, head_dim]`.
fn rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, t, h, d) = x.dims4()?;
    let pairs = x.reshape((b, t, h, d / 2, 2))?;
    let x0 = pairs.narrow(4, 0, 1)?.squeeze(4)?;
    let x1 = pairs.narrow(4, 1, 1)?.squeeze(4)?;
    let cos = cos.reshape((1, t, 1, d / 2))?;
    let sin = sin.reshape((1, t, 1, d / 2))?;
    let o0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
    let o1 = (x1.broadcast_mul(&cos)? + x0.broadcast_mul(&sin)?)?;
    Ok(Tensor::stack(&[o0, o1], 4)?.reshape((b, t, h, d))?)
}
