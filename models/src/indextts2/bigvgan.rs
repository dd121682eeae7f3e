//! BigVGAN v2, the vocoder of IndexTTS2 (`nvidia/bigvgan_v2_22khz_80band_256x`):
//! mel `[b, num_mels, frames]` → waveform `[b, 1, frames * prod(upsample_rates)]`
//! in `[-1, 1]`.
//!
//! A convolution, then per stage a transposed convolution followed by the mean
//! of several AMP residual blocks (anti-aliased Snake/SnakeBeta activations:
//! 2× upsampling with a 12-tap Kaiser-windowed sinc, the activation, the same
//! filter to downsample), then an anti-aliased activation, a convolution and
//! a clamp (or tanh). The checkpoint (`bigvgan_generator.pt`,
//! `{"generator": state dict}`) stores weight norm (`weight_g`, `weight_v`);
//! it is folded at load, as the reference's `remove_weight_norm` does. The
//! anti-aliasing filters are computed here, not read.

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::weights::{weight_maybe_norm, Conv1d, Conv1dSpec};
use super::{Error, Result};

fn yes() -> bool {
    true
}

/// The fields of BigVGAN's `config.json` the generator uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BigVganConfig {
    /// Residual block type; only `"1"` (AMPBlock1) works in the reference.
    pub resblock: String,
    /// Upsampling factor of each stage.
    pub upsample_rates: Vec<usize>,
    /// Transposed-convolution kernel of each stage.
    pub upsample_kernel_sizes: Vec<usize>,
    /// Channels after the first convolution (halved by each stage).
    pub upsample_initial_channel: usize,
    /// Kernel of each residual block of a stage.
    pub resblock_kernel_sizes: Vec<usize>,
    /// Dilations of each residual block of a stage.
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    /// `"snake"` or `"snakebeta"`.
    pub activation: String,
    /// Whether the activations' parameters are stored as logarithms.
    pub snake_logscale: bool,
    /// tanh at the end (else a clamp to `[-1, 1]`).
    #[serde(default = "yes")]
    pub use_tanh_at_final: bool,
    /// Whether the last convolution has a bias.
    #[serde(default = "yes")]
    pub use_bias_at_final: bool,
    /// Mel bands of the input.
    pub num_mels: usize,
}

impl BigVganConfig {
    /// Reads a BigVGAN `config.json`.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// `nvidia/bigvgan_v2_22khz_80band_256x` (as in the upstream repository's
    /// copy of its config.json).
    pub fn v2_22khz_80band_256x() -> Self {
        Self {
            resblock: "1".into(),
            upsample_rates: vec![4, 4, 2, 2, 2, 2],
            upsample_kernel_sizes: vec![8, 8, 4, 4, 4, 4],
            upsample_initial_channel: 1536,
            resblock_kernel_sizes: vec![3, 7, 11],
            resblock_dilation_sizes: vec![vec![1, 3, 5], vec![1, 3, 5], vec![1, 3, 5]],
            activation: "snakebeta".into(),
            snake_logscale: true,
            use_tanh_at_final: false,
            use_bias_at_final: false,
            num_mels: 80,
        }
    }

    /// Samples per mel frame.
    pub fn hop(&self) -> usize {
        self.upsample_rates.iter().product()
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(format!("BigVGAN: {what}")));
        if self.resblock != "1" {
            return bad(format!(
                "resblock type {:?} (only \"1\"; the reference's AMPBlock2 returns nothing)",
                self.resblock
            ));
        }
        if self.activation != "snake" && self.activation != "snakebeta" {
            return bad(format!("activation {:?}", self.activation));
        }
        if self.upsample_rates.len() != self.upsample_kernel_sizes.len()
            || self.resblock_kernel_sizes.len() != self.resblock_dilation_sizes.len()
            || self.resblock_kernel_sizes.is_empty()
        {
            return bad("upsample or resblock lists of different lengths".into());
        }
        if self.upsample_initial_channel >> self.upsample_rates.len() == 0 {
            return bad("too few channels for the number of stages".into());
        }
        if self
            .upsample_rates
            .iter()
            .zip(&self.upsample_kernel_sizes)
            .any(|(&u, &k)| u == 0 || k < u)
        {
            return bad("an upsampling kernel is smaller than its rate".into());
        }
        Ok(())
    }
}

/// The 12-tap Kaiser-windowed sinc low-pass of BigVGAN's anti-aliasing
/// (`kaiser_sinc_filter1d(cutoff=0.25, half_width=0.3, kernel_size=12)`),
/// normalised to sum 1.
pub fn kaiser_sinc_filter(cutoff: f64, half_width: f64, kernel_size: usize) -> Vec<f32> {
    let even = kernel_size & 1 == 0;
    let half = (kernel_size / 2) as f64;
    let delta_f = 4.0 * half_width;
    let a = 2.285 * (half - 1.0) * std::f64::consts::PI * delta_f + 7.95;
    let beta = if a > 50.0 {
        0.1102 * (a - 8.7)
    } else if a >= 21.0 {
        0.5842 * (a - 21.0).powf(0.4) + 0.07886 * (a - 21.0)
    } else {
        0.0
    };
    let alpha = (kernel_size as f64 - 1.0) / 2.0;
    let window: Vec<f64> = (0..kernel_size)
        .map(|n| {
            let r = (n as f64 - alpha) / alpha;
            bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta)
        })
        .collect();
    let filter: Vec<f64> = (0..kernel_size)
        .map(|n| {
            let time = if even {
                n as f64 - half + 0.5
            } else {
                n as f64 - half
            };
            let x = 2.0 * cutoff * time;
            let sinc = if x == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            2.0 * cutoff * window[n] * sinc
        })
        .collect();
    let sum: f64 = filter.iter().sum();
    filter.iter().map(|f| (f / sum) as f32).collect()
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..200 {
        term *= q / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Snake (`x + sin²(αx)/α`) or SnakeBeta (`x + sin²(αx)/β`) between a 2×
/// anti-aliased upsampling and downsampling.
#[derive(Debug, Clone)]
struct AntiAliasedSnake {
    /// `[1, C, 1]`, exponentiated when stored as logarithms.
    alpha: Tensor,
    /// `1 / (β + 1e-9)` (or `1 / (α + 1e-9)` for Snake), `[1, C, 1]`.
    inv_beta: Tensor,
    up: Tensor,
    down: Tensor,
}

const AA_TAPS: usize = 12;

impl AntiAliasedSnake {
    fn load(
        vb: &VarBuilder,
        channels: usize,
        cfg: &BigVganConfig,
        filter: &Tensor,
    ) -> Result<Self> {
        let act = vb.pp("act");
        let mut alpha = act.get(channels, "alpha")?;
        if cfg.snake_logscale {
            alpha = alpha.exp()?;
        }
        let beta = if cfg.activation == "snakebeta" {
            let b = act.get(channels, "beta")?;
            if cfg.snake_logscale {
                b.exp()?
            } else {
                b
            }
        } else {
            alpha.clone()
        };
        let inv_beta = (beta + 1e-9)?.recip()?;
        Ok(Self {
            alpha: alpha.reshape((1, channels, 1))?,
            inv_beta: inv_beta.reshape((1, channels, 1))?,
            up: (filter * 2.0)?,
            down: filter.clone(),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        // UpSample1d(2, 12): replicate-pad 5, transposed conv stride 2, ×2, crop 15 per side.
        let pad = AA_TAPS / 2 - 1;
        let xr = x.reshape((b * c, 1, t))?.pad_with_same(2, pad, pad)?;
        let up = xr.conv_transpose1d(&self.up, 0, 0, 2, 1, 1)?;
        let crop = pad * 2 + (AA_TAPS - 2) / 2;
        let up = up.narrow(2, crop, 2 * t)?.reshape((b, c, 2 * t))?;
        let s = up.broadcast_mul(&self.alpha)?.sin()?.sqr()?;
        let y = (up + s.broadcast_mul(&self.inv_beta)?)?;
        // DownSample1d(2, 12): replicate-pad 5 left and 6 right, conv stride 2.
        let y = y
            .reshape((b * c, 1, 2 * t))?
            .pad_with_same(2, AA_TAPS / 2 - 1, AA_TAPS / 2)?;
        let y = y.conv1d(&self.down, 0, 2, 1, 1)?;
        Ok(y.reshape((b, c, t))?)
    }
}

#[derive(Debug, Clone)]
struct AmpBlock {
    convs1: Vec<Conv1d>,
    convs2: Vec<Conv1d>,
    acts: Vec<AntiAliasedSnake>,
}

impl AmpBlock {
    fn load(
        vb: &VarBuilder,
        ch: usize,
        k: usize,
        dilations: &[usize],
        cfg: &BigVganConfig,
        filter: &Tensor,
    ) -> Result<Self> {
        let mut convs1 = Vec::new();
        let mut convs2 = Vec::new();
        for (j, &d) in dilations.iter().enumerate() {
            let spec = Conv1dSpec::new(ch, ch, k)
                .padding((k * d - d) / 2)
                .dilation(d)
                .weight_norm();
            convs1.push(Conv1d::load(&vb.pp(format!("convs1.{j}")), spec)?);
            let spec = Conv1dSpec::new(ch, ch, k)
                .padding((k - 1) / 2)
                .weight_norm();
            convs2.push(Conv1d::load(&vb.pp(format!("convs2.{j}")), spec)?);
        }
        let acts = (0..2 * dilations.len())
            .map(|m| AntiAliasedSnake::load(&vb.pp(format!("activations.{m}")), ch, cfg, filter))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            convs1,
            convs2,
            acts,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (j, (c1, c2)) in self.convs1.iter().zip(&self.convs2).enumerate() {
            let xt = self.acts[2 * j].forward(&x)?;
            let xt = c1.forward(&xt)?;
            let xt = self.acts[2 * j + 1].forward(&xt)?;
            let xt = c2.forward(&xt)?;
            x = (xt + x)?;
        }
        Ok(x)
    }
}

#[derive(Debug, Clone)]
struct Upsample {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

/// The BigVGAN generator.
#[derive(Debug, Clone)]
pub struct BigVgan {
    conv_pre: Conv1d,
    ups: Vec<Upsample>,
    resblocks: Vec<Vec<AmpBlock>>,
    act_post: AntiAliasedSnake,
    conv_post: Conv1d,
    tanh: bool,
    num_mels: usize,
}

impl BigVgan {
    /// Loads the generator's state dict (under `vb`; for the official file,
    /// `vb.pp("generator")`), with or without weight norm.
    pub fn load(vb: &VarBuilder, cfg: &BigVganConfig) -> Result<Self> {
        cfg.validate()?;
        let filter = Tensor::from_vec(
            kaiser_sinc_filter(0.25, 0.3, AA_TAPS),
            (1, 1, AA_TAPS),
            vb.device(),
        )?;
        let c0 = cfg.upsample_initial_channel;
        let conv_pre = Conv1d::load(
            &vb.pp("conv_pre"),
            Conv1dSpec::new(cfg.num_mels, c0, 7)
                .padding(3)
                .weight_norm(),
        )?;
        let mut ups = Vec::new();
        let mut resblocks = Vec::new();
        let mut ch = c0;
        for (i, (&u, &k)) in cfg
            .upsample_rates
            .iter()
            .zip(&cfg.upsample_kernel_sizes)
            .enumerate()
        {
            let (cin, cout) = (c0 >> i, c0 >> (i + 1));
            let uvb = vb.pp(format!("ups.{i}.0"));
            ups.push(Upsample {
                weight: weight_maybe_norm(&uvb, &[cin, cout, k])?,
                bias: uvb.get(cout, "bias")?,
                stride: u,
                padding: (k - u) / 2,
            });
            ch = cout;
            let n = cfg.resblock_kernel_sizes.len();
            let blocks = cfg
                .resblock_kernel_sizes
                .iter()
                .zip(&cfg.resblock_dilation_sizes)
                .enumerate()
                .map(|(j, (&rk, d))| {
                    AmpBlock::load(
                        &vb.pp(format!("resblocks.{}", i * n + j)),
                        ch,
                        rk,
                        d,
                        cfg,
                        &filter,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            resblocks.push(blocks);
        }
        let act_post = AntiAliasedSnake::load(&vb.pp("activation_post"), ch, cfg, &filter)?;
        let mut spec = Conv1dSpec::new(ch, 1, 7).padding(3).weight_norm();
        if !cfg.use_bias_at_final {
            spec = spec.no_bias();
        }
        Ok(Self {
            conv_pre,
            ups,
            resblocks,
            act_post,
            conv_post: Conv1d::load(&vb.pp("conv_post"), spec)?,
            tanh: cfg.use_tanh_at_final,
            num_mels: cfg.num_mels,
        })
    }

    /// Loads `bigvgan_generator.pt` and `config.json` from a directory (the
    /// hub snapshot of `nvidia/bigvgan_v2_22khz_80band_256x`).
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let cfg = BigVganConfig::from_json_file(&dir.join("config.json"))?;
        let vb = super::weights::pth_var_builder(&dir.join("bigvgan_generator.pt"), device)?;
        Self::load(&vb.pp("generator"), &cfg)
    }

    /// `[b, num_mels, frames]` → `[b, 1, frames * hop]`.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let (_, m, _) = mel.dims3()?;
        if m != self.num_mels {
            return Err(Error::Config(format!(
                "BigVGAN expects {} mel bands, got {m}",
                self.num_mels
            )));
        }
        let mut x = self.conv_pre.forward(mel)?;
        for (up, blocks) in self.ups.iter().zip(&self.resblocks) {
            x = x.conv_transpose1d(&up.weight, up.padding, 0, up.stride, 1, 1)?;
            x = x.broadcast_add(&up.bias.reshape((1, (), 1))?)?;
            let mut sum: Option<Tensor> = None;
            for block in blocks {
                let y = block.forward(&x)?;
                sum = Some(match sum {
                    None => y,
                    Some(s) => (s + y)?,
                });
            }
            let sum = sum.ok_or_else(|| Error::Config("BigVGAN stage without blocks".into()))?;
            x = (sum / blocks.len() as f64)?;
        }
        let x = self.act_post.forward(&x)?;
        let x = self.conv_post.forward(&x)?;
        Ok(if self.tanh {
            x.tanh()?
        } else {
            x.clamp(-1f32, 1f32)?
        })
    }
}
