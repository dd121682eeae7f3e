//! s2mel's length regulator (`InterpolateRegulator`, continuous input): the
//! semantic features `[b, t, in_channels]` are projected to `channels`,
//! stretched to the target number of mel frames by nearest-neighbour
//! interpolation, and refined by `len(sampling_ratios)` blocks of
//! convolution (kernel 3), group norm (1 group) and Mish, then a 1×1
//! convolution. Output `[b, frames, channels]`, the condition of the flow
//! matching. Weights: `s2mel.pth` → `net.length_regulator.*`.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::weights::{group_norm_1, linear, mish, Conv1d, Conv1dSpec};
use super::{Error, Result};

/// The `s2mel.length_regulator` section of config.yaml (continuous input,
/// one codebook, no f0 and no vector quantisation, as in IndexTTS2).
#[derive(Debug, Clone, PartialEq)]
pub struct LengthRegulatorConfig {
    /// Output (and hidden) channels.
    pub channels: usize,
    /// Input feature size.
    pub in_channels: usize,
    /// Number of convolution blocks (`len(sampling_ratios)`); 0 disables the
    /// interpolation (the reference then truncates instead).
    pub blocks: usize,
}

impl LengthRegulatorConfig {
    /// The official IndexTTS2 settings: 1024 → 512 with four blocks.
    pub fn indextts2() -> Self {
        Self {
            channels: 512,
            in_channels: 1024,
            blocks: 4,
        }
    }
}

#[derive(Debug, Clone)]
struct Block {
    conv: Conv1d,
    norm_w: Tensor,
    norm_b: Tensor,
}

/// The length regulator.
#[derive(Debug, Clone)]
pub struct LengthRegulator {
    proj: candle_nn::Linear,
    blocks: Vec<Block>,
    out: Conv1d,
}

impl LengthRegulator {
    /// Loads `content_in_proj.*` and `model.*` under `vb` (for `s2mel.pth`,
    /// `vb.pp("net").pp("length_regulator")`).
    pub fn load(vb: &VarBuilder, cfg: &LengthRegulatorConfig) -> Result<Self> {
        if cfg.blocks == 0 {
            return Err(Error::Config(
                "a length regulator without sampling ratios (no interpolation) is not supported"
                    .into(),
            ));
        }
        let c = cfg.channels;
        let blocks = (0..cfg.blocks)
            .map(|i| {
                Ok(Block {
                    conv: Conv1d::load(
                        &vb.pp(format!("model.{}", 3 * i)),
                        Conv1dSpec::new(c, c, 3).padding(1),
                    )?,
                    norm_w: vb.pp(format!("model.{}", 3 * i + 1)).get(c, "weight")?,
                    norm_b: vb.pp(format!("model.{}", 3 * i + 1)).get(c, "bias")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            proj: linear(&vb.pp("content_in_proj"), cfg.in_channels, c, true)?,
            blocks,
            out: Conv1d::load(
                &vb.pp(format!("model.{}", 3 * cfg.blocks)),
                Conv1dSpec::new(c, c, 1),
            )?,
        })
    }

    /// `x` `[1, t, in_channels]` stretched to `frames` → `[1, frames, channels]`.
    pub fn forward(&self, x: &Tensor, frames: usize) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        if b != 1 || t == 0 || frames == 0 {
            return Err(Error::Config(format!(
                "length regulator: batch 1, non-empty input and target, got {:?} → {frames}",
                x.dims()
            )));
        }
        let x = self.proj.forward(x)?.transpose(1, 2)?.contiguous()?; // [1, C, t]
        let idx = Tensor::new(nearest_indices(t, frames).as_slice(), x.device())?;
        let mut x = x.index_select(&idx, 2)?;
        for block in &self.blocks {
            x = block.conv.forward(&x)?;
            x = group_norm_1(&x, &block.norm_w, &block.norm_b)?;
            x = mish(&x)?;
        }
        Ok(self.out.forward(&x)?.transpose(1, 2)?.contiguous()?)
    }
}

/// The source index of each output frame of `F.interpolate(mode="nearest")`
/// from `input` to `output` frames, with PyTorch's f32 arithmetic:
/// `min(floor(i * (input / output)), input - 1)`.
pub fn nearest_indices(input: usize, output: usize) -> Vec<u32> {
    if input == output {
        return (0..output as u32).collect();
    }
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|i| ((i as f32 * scale).floor() as usize).min(input - 1) as u32)
        .collect()
}

/// The mel frames the pipeline asks of the length regulator for `codes` GPT
/// codes: `(code_len * 1.72).long()`, an f32 product truncated.
pub fn target_frames(codes: usize) -> usize {
    (codes as f32 * 1.72f32) as usize
}
