//! CAMPPlus, the speaker encoder of s2mel (3D-Speaker's CAM++ as
//! `funasr/campplus` ships it in `campplus_cn_common.bin`): Kaldi fbank
//! (mean-subtracted over time) → a 192-d style vector.
//!
//! Structure: a 2-D convolutional front (`head`: conv, two residual stages
//! that halve the frequency axis, a strided conv) flattened to
//! `channels × freq / 8`, then a TDNN, three densely connected blocks of
//! context-aware-masking layers with transitions, statistics pooling (mean and
//! unbiased standard deviation over time) and a dense layer with a
//! non-affine batch norm. Batch norms are in evaluation mode (folded).

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

use super::weights::{BatchNorm, Conv1d, Conv1dSpec};
use super::{Error, Result};

/// CAMPPlus hyper-parameters. [`CampPlusConfig::default`] is what the
/// reference builds (`CAMPPlus(feat_dim=80, embedding_size=192)` with the
/// class defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct CampPlusConfig {
    /// Fbank bins.
    pub feat_dim: usize,
    /// Output size.
    pub embedding_size: usize,
    /// Channels added by each dense layer.
    pub growth_rate: usize,
    /// Bottleneck width as a multiple of `growth_rate`.
    pub bn_size: usize,
    /// Channels out of the TDNN.
    pub init_channels: usize,
    /// Channels of the 2-D front.
    pub m_channels: usize,
    /// Layers, kernel and dilation of each dense block.
    pub blocks: Vec<(usize, usize, usize)>,
}

impl Default for CampPlusConfig {
    fn default() -> Self {
        Self {
            feat_dim: 80,
            embedding_size: 192,
            growth_rate: 32,
            bn_size: 4,
            init_channels: 128,
            m_channels: 32,
            blocks: vec![(12, 3, 1), (24, 3, 2), (16, 3, 2)],
        }
    }
}

/// A 3×3 2-D convolution without bias, with stride `(stride, 1)` (frequency,
/// time) and padding 1. candle's conv2d has one stride for both axes, so a
/// stride-2 one runs at stride 1 and keeps every other frequency row (the
/// same values).
#[derive(Debug, Clone)]
struct Conv2d {
    weight: Tensor,
    stride_f: usize,
    padding: usize,
}

impl Conv2d {
    fn load(vb: &VarBuilder, cin: usize, cout: usize, k: usize, stride_f: usize) -> Result<Self> {
        Ok(Self {
            weight: vb.get((cout, cin, k, k), "weight")?,
            stride_f,
            padding: k / 2,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv2d(&self.weight, self.padding, 1, 1, 1)?;
        if self.stride_f == 1 {
            return Ok(y);
        }
        let h = y.dim(2)?;
        let rows: Vec<u32> = (0..h as u32).step_by(self.stride_f).collect();
        let idx = Tensor::new(rows.as_slice(), y.device())?;
        Ok(y.index_select(&idx, 2)?)
    }
}

#[derive(Debug, Clone)]
struct ResBlock2d {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    shortcut: Option<(Conv2d, BatchNorm)>,
}

impl ResBlock2d {
    fn load(vb: &VarBuilder, cin: usize, planes: usize, stride: usize) -> Result<Self> {
        let shortcut = if stride != 1 || cin != planes {
            Some((
                Conv2d::load(&vb.pp("shortcut.0"), cin, planes, 1, stride)?,
                BatchNorm::load(&vb.pp("shortcut.1"), planes, true)?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: Conv2d::load(&vb.pp("conv1"), cin, planes, 3, stride)?,
            bn1: BatchNorm::load(&vb.pp("bn1"), planes, true)?,
            conv2: Conv2d::load(&vb.pp("conv2"), planes, planes, 3, 1)?,
            bn2: BatchNorm::load(&vb.pp("bn2"), planes, true)?,
            shortcut,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        let y = self.bn2.forward(&self.conv2.forward(&y)?)?;
        let s = match &self.shortcut {
            Some((c, b)) => b.forward(&c.forward(x)?)?,
            None => x.clone(),
        };
        Ok((y + s)?.relu()?)
    }
}

/// Context-aware masking layer of one dense layer.
#[derive(Debug, Clone)]
struct CamLayer {
    linear_local: Conv1d,
    linear1: Conv1d,
    linear2: Conv1d,
}

impl CamLayer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.linear_local.forward(x)?;
        let context = seg_pooling(x, 100)?.broadcast_add(&x.mean_keepdim(D::Minus1)?)?;
        let context = self.linear1.forward(&context)?.relu()?;
        let m = candle_nn::ops::sigmoid(&self.linear2.forward(&context)?)?;
        Ok(y.broadcast_mul(&m)?)
    }
}

/// Average over segments of `seg` frames (the last one shorter, as
/// `avg_pool1d(ceil_mode=True)` divides by the frames it covers), each
/// average repeated over its segment.
fn seg_pooling(x: &Tensor, seg: usize) -> Result<Tensor> {
    let t = x.dim(D::Minus1)?;
    let mut parts = Vec::with_capacity(t.div_ceil(seg));
    let mut start = 0;
    while start < t {
        let len = seg.min(t - start);
        let mean = x.narrow(D::Minus1, start, len)?.mean_keepdim(D::Minus1)?;
        parts.push(mean.repeat((1, 1, len))?);
        start += len;
    }
    Ok(Tensor::cat(&parts, D::Minus1)?)
}

#[derive(Debug, Clone)]
struct DenseTdnnLayer {
    bn1: BatchNorm,
    linear1: Conv1d,
    bn2: BatchNorm,
    cam: CamLayer,
}

impl DenseTdnnLayer {
    fn load(
        vb: &VarBuilder,
        cin: usize,
        cfg: &CampPlusConfig,
        k: usize,
        dil: usize,
    ) -> Result<Self> {
        let bn_ch = cfg.bn_size * cfg.growth_rate;
        let cam = vb.pp("cam_layer");
        Ok(Self {
            bn1: BatchNorm::load(&vb.pp("nonlinear1.batchnorm"), cin, true)?,
            linear1: Conv1d::load(&vb.pp("linear1"), Conv1dSpec::new(cin, bn_ch, 1).no_bias())?,
            bn2: BatchNorm::load(&vb.pp("nonlinear2.batchnorm"), bn_ch, true)?,
            cam: CamLayer {
                linear_local: Conv1d::load(
                    &cam.pp("linear_local"),
                    Conv1dSpec::new(bn_ch, cfg.growth_rate, k)
                        .padding((k - 1) / 2 * dil)
                        .dilation(dil)
                        .no_bias(),
                )?,
                linear1: Conv1d::load(&cam.pp("linear1"), Conv1dSpec::new(bn_ch, bn_ch / 2, 1))?,
                linear2: Conv1d::load(
                    &cam.pp("linear2"),
                    Conv1dSpec::new(bn_ch / 2, cfg.growth_rate, 1),
                )?,
            },
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.linear1.forward(&self.bn1.forward(x)?.relu()?)?;
        self.cam.forward(&self.bn2.forward(&y)?.relu()?)
    }
}

#[derive(Debug, Clone)]
struct Transit {
    bn: BatchNorm,
    linear: Conv1d,
}

/// The CAMPPlus speaker encoder.
#[derive(Debug, Clone)]
pub struct CampPlus {
    conv1: Conv2d,
    bn1: BatchNorm,
    layers: Vec<ResBlock2d>,
    conv2: Conv2d,
    bn2: BatchNorm,
    tdnn: Conv1d,
    tdnn_bn: BatchNorm,
    blocks: Vec<(Vec<DenseTdnnLayer>, Transit)>,
    out_bn: BatchNorm,
    dense: Conv1d,
    dense_bn: BatchNorm,
    feat_dim: usize,
}

impl CampPlus {
    /// Loads the state dict of `campplus_cn_common.bin` (names as in the
    /// reference: `head.*`, `xvector.*`).
    pub fn load(vb: &VarBuilder, cfg: &CampPlusConfig) -> Result<Self> {
        if cfg.feat_dim & 7 != 0 || cfg.blocks.iter().any(|&(_, k, _)| k & 1 == 0) {
            return Err(Error::Config(format!(
                "CAMPPlus needs feat_dim divisible by 8 and odd kernels: {cfg:?}"
            )));
        }
        let head = vb.pp("head");
        let m = cfg.m_channels;
        let mut layers = Vec::new();
        for name in ["layer1", "layer2"] {
            layers.push(ResBlock2d::load(&head.pp(format!("{name}.0")), m, m, 2)?);
            layers.push(ResBlock2d::load(&head.pp(format!("{name}.1")), m, m, 1)?);
        }
        let xv = vb.pp("xvector");
        let mut channels = m * (cfg.feat_dim / 8);
        let tdnn = Conv1d::load(
            &xv.pp("tdnn.linear"),
            Conv1dSpec::new(channels, cfg.init_channels, 5)
                .stride(2)
                .padding(2)
                .no_bias(),
        )?;
        let tdnn_bn = BatchNorm::load(&xv.pp("tdnn.nonlinear.batchnorm"), cfg.init_channels, true)?;
        channels = cfg.init_channels;
        let mut blocks = Vec::new();
        for (i, &(n, k, dil)) in cfg.blocks.iter().enumerate() {
            let bvb = xv.pp(format!("block{}", i + 1));
            let mut dense = Vec::with_capacity(n);
            for j in 0..n {
                dense.push(DenseTdnnLayer::load(
                    &bvb.pp(format!("tdnnd{}", j + 1)),
                    channels + j * cfg.growth_rate,
                    cfg,
                    k,
                    dil,
                )?);
            }
            channels += n * cfg.growth_rate;
            let tvb = xv.pp(format!("transit{}", i + 1));
            let transit = Transit {
                bn: BatchNorm::load(&tvb.pp("nonlinear.batchnorm"), channels, true)?,
                linear: Conv1d::load(
                    &tvb.pp("linear"),
                    Conv1dSpec::new(channels, channels / 2, 1).no_bias(),
                )?,
            };
            channels /= 2;
            blocks.push((dense, transit));
        }
        Ok(Self {
            conv1: Conv2d::load(&head.pp("conv1"), 1, m, 3, 1)?,
            bn1: BatchNorm::load(&head.pp("bn1"), m, true)?,
            layers,
            conv2: Conv2d::load(&head.pp("conv2"), m, m, 3, 2)?,
            bn2: BatchNorm::load(&head.pp("bn2"), m, true)?,
            tdnn,
            tdnn_bn,
            blocks,
            out_bn: BatchNorm::load(&xv.pp("out_nonlinear.batchnorm"), channels, true)?,
            dense: Conv1d::load(
                &xv.pp("dense.linear"),
                Conv1dSpec::new(channels * 2, cfg.embedding_size, 1).no_bias(),
            )?,
            dense_bn: BatchNorm::load(
                &xv.pp("dense.nonlinear.batchnorm"),
                cfg.embedding_size,
                false,
            )?,
            feat_dim: cfg.feat_dim,
        })
    }

    /// `feats` `[batch, frames, feat_dim]` (fbank minus its mean over time) →
    /// `[batch, embedding_size]`.
    pub fn forward(&self, feats: &Tensor) -> Result<Tensor> {
        let (b, t, f) = feats.dims3()?;
        if f != self.feat_dim || t < 2 {
            return Err(Error::Config(format!(
                "CAMPPlus expects [batch, frames ≥ 2, {}], got {:?}",
                self.feat_dim,
                feats.dims()
            )));
        }
        let x = feats.transpose(1, 2)?.unsqueeze(1)?.contiguous()?; // [b, 1, F, T]
        let mut x = self.bn1.forward(&self.conv1.forward(&x)?)?.relu()?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        let x = self.bn2.forward(&self.conv2.forward(&x)?)?.relu()?;
        let (_, c, h, w) = x.dims4()?;
        let mut x = x.reshape((b, c * h, w))?;
        x = self.tdnn_bn.forward(&self.tdnn.forward(&x)?)?.relu()?;
        for (dense, transit) in &self.blocks {
            for layer in dense {
                let y = layer.forward(&x)?;
                x = Tensor::cat(&[&x, &y], 1)?;
            }
            x = transit.linear.forward(&transit.bn.forward(&x)?.relu()?)?;
        }
        let x = self.out_bn.forward(&x)?.relu()?;
        // Statistics pooling: mean and unbiased standard deviation over time.
        let n = x.dim(D::Minus1)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let var = (x.broadcast_sub(&mean)?.sqr()?.sum_keepdim(D::Minus1)? / (n as f64 - 1.0))?;
        let stats = Tensor::cat(&[&mean, &var.sqrt()?], 1)?; // [b, 2C, 1]
        let y = self.dense.forward(&stats)?;
        let y = self.dense_bn.forward(&y)?;
        Ok(y.squeeze(D::Minus1)?)
    }
}
