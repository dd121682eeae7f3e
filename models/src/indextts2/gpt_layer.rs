//! s2mel's `gpt_layer`: three linear layers without activations between
//! them (1280 → 256 → 128 → 1024) that bring the GPT's latent to the width of
//! the semantic codec's embeddings, to which it is added before the length
//! regulator. Weights: `s2mel.pth` → `net.gpt_layer.{0,1,2}.*`.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::weights::linear;
use super::{Error, Result};

/// The widths of the layers, input first. The reference hard-codes
/// [`GptLayer::INDEXTTS2`].
#[derive(Debug, Clone, PartialEq)]
pub struct GptLayerConfig {
    /// `[input, hidden..., output]`.
    pub widths: Vec<usize>,
}

/// The projection of the GPT latent.
#[derive(Debug, Clone)]
pub struct GptLayer {
    layers: Vec<candle_nn::Linear>,
}

impl GptLayer {
    /// The widths the reference builds: `Linear(1280, 256)`, `Linear(256, 128)`,
    /// `Linear(128, 1024)`.
    pub const INDEXTTS2: [usize; 4] = [1280, 256, 128, 1024];

    /// Loads `{i}.weight`, `{i}.bias` under `vb` (for `s2mel.pth`,
    /// `vb.pp("net").pp("gpt_layer")`).
    pub fn load(vb: &VarBuilder, cfg: &GptLayerConfig) -> Result<Self> {
        if cfg.widths.len() < 2 {
            return Err(Error::Config("gpt_layer needs at least two widths".into()));
        }
        let layers = cfg
            .widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| linear(&vb.pp(i.to_string()), w[0], w[1], true))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    /// `[b, t, 1280]` → `[b, t, 1024]`.
    pub fn forward(&self, latent: &Tensor) -> Result<Tensor> {
        let mut x = latent.clone();
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }
}

impl Default for GptLayerConfig {
    fn default() -> Self {
        Self {
            widths: GptLayer::INDEXTTS2.to_vec(),
        }
    }
}
