//! MaskGCT's semantic codec (`RepCodec`, `amphion/MaskGCT`
//! `semantic_codec/model.safetensors`), the parts IndexTTS2 runs:
//! - [`SemanticCodec::quantize`]: w2v-BERT features `[b, t, 1024]` → a Vocos
//!   backbone of ConvNeXt blocks → a linear layer → a factorised vector
//!   quantiser (1×1 projection to the codebook width, nearest L2-normalised
//!   codebook entry, projection back) → codes and their embeddings;
//! - [`SemanticCodec::vq2emb`]: codes (the GPT's mel codes) → embeddings.
//!
//! The decoder half of RepCodec is not used at inference and not loaded.

use candle_core::{DType, Module, Tensor, D};
use candle_nn::VarBuilder;

use super::weights::{layer_norm, linear, weight_maybe_norm, Conv1d, Conv1dSpec};
use super::{Error, Result};

/// The `semantic_codec` section of config.yaml.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticCodecConfig {
    /// Codebook entries.
    pub codebook_size: usize,
    /// Input (w2v-BERT) width.
    pub hidden_size: usize,
    /// Codebook width.
    pub codebook_dim: usize,
    /// Backbone width.
    pub vocos_dim: usize,
    /// ConvNeXt hidden width.
    pub vocos_intermediate_dim: usize,
    /// ConvNeXt blocks.
    pub vocos_num_layers: usize,
}

impl SemanticCodecConfig {
    /// The official settings (config.yaml of IndexTTS2).
    pub fn indextts2() -> Self {
        Self {
            codebook_size: 8192,
            hidden_size: 1024,
            codebook_dim: 8,
            vocos_dim: 384,
            vocos_intermediate_dim: 2048,
            vocos_num_layers: 12,
        }
    }
}

#[derive(Debug, Clone)]
struct ConvNeXt {
    dwconv: Conv1d,
    norm: candle_nn::LayerNorm,
    pw1: candle_nn::Linear,
    pw2: candle_nn::Linear,
    gamma: Tensor,
}

impl ConvNeXt {
    fn load(vb: &VarBuilder, dim: usize, inter: usize) -> Result<Self> {
        Ok(Self {
            dwconv: Conv1d::load(
                &vb.pp("dwconv"),
                Conv1dSpec::new(dim, dim, 7).padding(3).groups(dim),
            )?,
            norm: layer_norm(&vb.pp("norm"), dim, 1e-6)?,
            pw1: linear(&vb.pp("pwconv1"), dim, inter, true)?,
            pw2: linear(&vb.pp("pwconv2"), inter, dim, true)?,
            gamma: vb.get(dim, "gamma")?,
        })
    }

    /// `[b, C, t]` → `[b, C, t]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.dwconv.forward(x)?.transpose(1, 2)?;
        let y = self.norm.forward(&y)?;
        let y = self.pw2.forward(&self.pw1.forward(&y)?.gelu_erf()?)?;
        let y = y.broadcast_mul(&self.gamma)?.transpose(1, 2)?;
        Ok((x + y)?)
    }
}

/// The semantic codec's encoder and quantiser.
#[derive(Debug, Clone)]
pub struct SemanticCodec {
    embed: Conv1d,
    norm: candle_nn::LayerNorm,
    blocks: Vec<ConvNeXt>,
    final_norm: candle_nn::LayerNorm,
    enc_out: candle_nn::Linear,
    in_project: Conv1d,
    out_project: Conv1d,
    codebook: Tensor,
    /// The codebook, rows L2-normalised.
    codebook_unit: Tensor,
    hidden: usize,
}

/// `x / max(||x||, 1e-12)` over the last dimension (`F.normalize`).
fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
    Ok(x.broadcast_div(&norm)?)
}

impl SemanticCodec {
    /// Loads `encoder.*` and `quantizer.quantizers.0.*` under `vb`.
    pub fn load(vb: &VarBuilder, cfg: &SemanticCodecConfig) -> Result<Self> {
        let enc = vb.pp("encoder.0");
        let (dim, h, cd) = (cfg.vocos_dim, cfg.hidden_size, cfg.codebook_dim);
        if h == cd {
            return Err(Error::Config(
                "a codebook as wide as the input (no projections) is not supported".into(),
            ));
        }
        let blocks = (0..cfg.vocos_num_layers)
            .map(|i| {
                ConvNeXt::load(
                    &enc.pp(format!("convnext.{i}")),
                    dim,
                    cfg.vocos_intermediate_dim,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let q = vb.pp("quantizer.quantizers.0");
        let codebook = q.get((cfg.codebook_size, cd), "codebook.weight")?;
        let in_w = weight_maybe_norm(&q.pp("in_project"), &[cd, h, 1])?;
        let out_w = weight_maybe_norm(&q.pp("out_project"), &[h, cd, 1])?;
        Ok(Self {
            embed: Conv1d::load(&enc.pp("embed"), Conv1dSpec::new(h, dim, 7).padding(3))?,
            norm: layer_norm(&enc.pp("norm"), dim, 1e-6)?,
            blocks,
            final_norm: layer_norm(&enc.pp("final_layer_norm"), dim, 1e-6)?,
            enc_out: linear(&vb.pp("encoder.1"), dim, h, true)?,
            in_project: Conv1d::new(
                in_w,
                Some(q.pp("in_project").get(cd, "bias")?),
                Conv1dSpec::new(h, cd, 1),
            ),
            out_project: Conv1d::new(
                out_w,
                Some(q.pp("out_project").get(h, "bias")?),
                Conv1dSpec::new(cd, h, 1),
            ),
            codebook_unit: l2_normalize(&codebook)?,
            codebook,
            hidden: h,
        })
    }

    /// `RepCodec.quantize`: features `[1, t, hidden]` → (codes `[1, t]` (u32),
    /// embeddings `[1, t, hidden]`, the `S_ref` of the pipeline).
    pub fn quantize(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t, h) = x.dims3()?;
        if b != 1 || h != self.hidden || t == 0 {
            return Err(Error::Config(format!(
                "semantic codec expects [1, t, {}], got {:?}",
                self.hidden,
                x.dims()
            )));
        }
        let y = self.embed.forward(&x.transpose(1, 2)?)?;
        let mut y = self.norm.forward(&y.transpose(1, 2)?)?.transpose(1, 2)?;
        for block in &self.blocks {
            y = block.forward(&y)?;
        }
        let y = self.final_norm.forward(&y.transpose(1, 2)?)?;
        let y = self.enc_out.forward(&y)?; // [1, t, hidden]
        let z_e = self.in_project.forward(&y.transpose(1, 2)?)?; // [1, cd, t]
        let enc = l2_normalize(&z_e.squeeze(0)?.t()?)?; // [t, cd]
        let dist = (enc
            .sqr()?
            .sum_keepdim(1)?
            .broadcast_sub(&(enc.matmul(&self.codebook_unit.t()?)? * 2.0)?)?)
        .broadcast_add(&self.codebook_unit.sqr()?.sum_keepdim(1)?.t()?)?;
        let codes = dist.neg()?.argmax(1)?; // [t]
        let z_q = self.codebook.index_select(&codes, 0)?.t()?.unsqueeze(0)?; // [1, cd, t]
                                                                             // The straight-through estimator, `z_e + (z_q - z_e)`, in f32 as the
                                                                             // reference computes it.
        let z_q = (&z_e + (z_q - &z_e)?)?;
        let emb = self
            .out_project
            .forward(&z_q)?
            .transpose(1, 2)?
            .contiguous()?;
        Ok((codes.unsqueeze(0)?, emb))
    }

    /// `quantizer.vq2emb`: codes `[1, t]` (integer) → embeddings
    /// `[1, t, hidden]` (the reference returns `[1, hidden, t]` and the
    /// pipeline transposes it).
    pub fn vq2emb(&self, codes: &Tensor) -> Result<Tensor> {
        let (b, t) = codes.dims2()?;
        if b != 1 || t == 0 {
            return Err(Error::Config(format!(
                "semantic codec: codes must be [1, t > 0], got {:?}",
                codes.dims()
            )));
        }
        let idx = codes.squeeze(0)?.to_dtype(DType::U32)?;
        let size = self.codebook.dim(0)?;
        let max = idx.max(0)?.to_scalar::<u32>()? as usize;
        if max >= size {
            return Err(Error::Config(format!(
                "semantic codec: code {max} is outside the codebook of {size}"
            )));
        }
        let z = self.codebook.index_select(&idx, 0)?.t()?.unsqueeze(0)?;
        Ok(self
            .out_project
            .forward(&z)?
            .transpose(1, 2)?
            .contiguous()?)
    }
}
