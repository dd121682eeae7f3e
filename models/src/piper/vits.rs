//! VITS inference as Piper exports it: text encoder with relative-position
//! attention, stochastic duration predictor run in reverse (rational-quadratic
//! spline flows), alignment expansion, residual-coupling flow in reverse, and
//! the HiFi-GAN generator. Batch size one, so no masks are needed.
//!
//! Weights come from a [`VarBuilder`] (see [`super::onnx::Weights::var_builder`]).
//! A few hyper-parameters are read from the shapes of anchor tensors (hidden
//! size, heads and window, filter channels, kernel sizes, decoder stages,
//! resblock type), so every Piper quality (x_low, low, medium, high) loads
//! with the same code; every other tensor is then fetched with the shape those
//! imply, so a missing tensor or a wrong shape fails at load, naming it.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use crate::weights::{anchor, full_name};
use crate::Error;

type Result<T> = std::result::Result<T, Error>;

/// A hyper-parameter read from anchor `name` that is out of range.
fn bad_anchor(vb: &VarBuilder, name: &str, why: &str) -> Error {
    Error::Candle(candle_core::Error::Msg(format!(
        "{}: {why}",
        full_name(vb, name)
    )))
}

/// A 1-D convolution with its settings.
#[derive(Debug, Clone)]
pub(super) struct Conv1d {
    pub(super) w: Tensor,
    pub(super) b: Option<Tensor>,
    pub(super) padding: usize,
    pub(super) dilation: usize,
    pub(super) groups: usize,
    /// On CPU: the weight as `[cout, cin*k + 1]` with the bias as last column,
    /// for the im2col path.
    w_aug: Option<Tensor>,
}

impl Conv1d {
    fn new(
        w: Tensor,
        b: Option<Tensor>,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Result<Self> {
        let w_aug = if groups == 1 && w.device().is_cpu() {
            let (cout, cin, k) = w.dims3()?;
            let bias = match &b {
                Some(b) => b.reshape((cout, 1))?,
                None => Tensor::zeros((cout, 1), w.dtype(), w.device())?,
            };
            Some(Tensor::cat(&[&w.reshape((cout, cin * k))?, &bias], 1)?.contiguous()?)
        } else {
            None
        };
        Ok(Self {
            w,
            b,
            padding,
            dilation,
            groups,
            w_aug,
        })
    }

    /// The convolution under `vb`: `weight` `[cout, cin / groups, k]` and
    /// `bias` `[cout]`, both shape-checked.
    fn load(
        vb: &VarBuilder,
        (cin, cout, k): (usize, usize, usize),
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Result<Self> {
        let w = vb.get((cout, cin / groups.max(1), k), "weight")?;
        let b = vb.get(cout, "bias")?;
        Self::new(w, Some(b), padding, dilation, groups)
    }

    /// As [`Self::load`], with "same" padding for the odd kernel `k`.
    fn load_same(
        vb: &VarBuilder,
        dims: (usize, usize, usize),
        dilation: usize,
        groups: usize,
    ) -> Result<Self> {
        let padding = (dims.2 * dilation - dilation) / 2;
        Self::load(vb, dims, padding, dilation, groups)
    }

    /// A 1×1 convolution from `cin` to `cout` channels.
    fn load_1x1(vb: &VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        Self::load(vb, (cin, cout, 1), 0, 1, 1)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_after_leaky(x, None)
    }

    /// `conv(leaky_relu(x, slope))` (plain `conv(x)` without a slope). On CPU
    /// the activation is applied while the input is unfolded.
    fn forward_after_leaky(&self, x: &Tensor, slope: Option<f32>) -> Result<Tensor> {
        if let Some(w_aug) = &self.w_aug {
            return conv1d_cpu(x, w_aug, self.w.dim(2)?, self.padding, self.dilation, slope);
        }
        let x = match slope {
            Some(s) => leaky(x, f64::from(s))?,
            None => x.clone(),
        };
        if x.device().is_cpu() && self.groups == x.dim(1)? && self.w.dim(1)? == 1 {
            return depthwise_cpu(&x, &self.w, self.b.as_ref(), self.padding, self.dilation);
        }
        let y = x.conv1d(&self.w, self.padding, 1, self.dilation, self.groups)?;
        Ok(match &self.b {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1))?)?,
            None => y,
        })
    }
}

/// Stride-1 convolution of `[1, cin, L]` on the CPU as one matrix product:
/// the input (after an optional leaky ReLU) is unfolded into `k` shifted rows
/// per channel plus a row of ones for the bias (im2col), then multiplied by
/// `w_aug` (`[cout, cin*k + 1]`). Much faster than the generic convolution for
/// the decoder's long signals.
fn conv1d_cpu(
    x: &Tensor,
    w_aug: &Tensor,
    k: usize,
    padding: usize,
    dilation: usize,
    slope: Option<f32>,
) -> Result<Tensor> {
    let (_, cin, l_in) = x.dims3()?;
    let l_out = (l_in + 2 * padding).saturating_sub(dilation * (k - 1));
    let mut src: Vec<f32> = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
    if let Some(s) = slope {
        for v in &mut src {
            if *v < 0.0 {
                *v *= s;
            }
        }
    }
    let rows = cin * k + 1;
    // Long signals are cut along time and the pieces run on every core.
    let threads = if l_out >= 8192 { cpu_threads() } else { 1 };
    let piece = l_out.div_ceil(threads.max(1)).max(1);
    let src = &src;
    let parts: Vec<Result<Tensor>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..l_out)
            .step_by(piece)
            .map(|start| {
                let len = piece.min(l_out - start);
                scope.spawn(move || -> Result<Tensor> {
                    let cols = unfold(src, cin, l_in, k, padding, dilation, start, len);
                    let cols = Tensor::from_vec(cols, (rows, len), x.device())?;
                    Ok(w_aug.matmul(&cols)?)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Config("a convolution thread panicked".into())))
            })
            .collect()
    });
    let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
    let y = if parts.len() == 1 {
        parts
            .into_iter()
            .next()
            .ok_or_else(|| Error::Config("empty convolution".into()))?
    } else {
        Tensor::cat(&parts, 1)?
    };
    Ok(y.unsqueeze(0)?)
}

/// Depthwise convolution (one filter per channel) on the CPU, as plain loops:
/// candle runs grouped convolutions one group at a time.
fn depthwise_cpu(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    dilation: usize,
) -> Result<Tensor> {
    let (_, c, l_in) = x.dims3()?;
    let k = w.dim(2)?;
    let l_out = (l_in + 2 * padding).saturating_sub(dilation * (k - 1));
    let xs: Vec<f32> = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
    let ws: Vec<f32> = w.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
    let bs: Vec<f32> = match b {
        Some(b) => b.to_dtype(DType::F32)?.to_vec1()?,
        None => vec![0.0; c],
    };
    let mut out = vec![0f32; c * l_out];
    for ch in 0..c {
        let src = &xs[ch * l_in..(ch + 1) * l_in];
        let dst = &mut out[ch * l_out..(ch + 1) * l_out];
        dst.fill(bs[ch]);
        for j in 0..k {
            let wj = ws[ch * k + j];
            let shift = (j * dilation) as isize - padding as isize;
            for (t, d) in dst.iter_mut().enumerate() {
                let s_idx = t as isize + shift;
                if (0..l_in as isize).contains(&s_idx) {
                    *d += wj * src[s_idx as usize];
                }
            }
        }
    }
    Ok(Tensor::from_vec(out, (1, c, l_out), x.device())?)
}

/// Cores to use for the decoder's convolutions.
fn cpu_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// im2col for output positions `start..start + len`: row `(ci, j)` holds
/// `x[ci][t + j*dilation - padding]` (zero outside), and a last row of ones.
#[allow(clippy::too_many_arguments)]
fn unfold(
    src: &[f32],
    cin: usize,
    l_in: usize,
    k: usize,
    padding: usize,
    dilation: usize,
    start: usize,
    len: usize,
) -> Vec<f32> {
    let rows = cin * k + 1;
    let mut cols = vec![0f32; rows * len];
    for ci in 0..cin {
        let channel = &src[ci * l_in..(ci + 1) * l_in];
        for j in 0..k {
            let row = &mut cols[(ci * k + j) * len..(ci * k + j + 1) * len];
            // Output t reads input t + shift.
            let shift = (start + j * dilation) as isize - padding as isize;
            let t0 = (-shift).max(0) as usize;
            let t1 = ((l_in as isize - shift).max(0) as usize).min(len);
            if t0 < t1 {
                let s0 = (t0 as isize + shift) as usize;
                row[t0..t1].copy_from_slice(&channel[s0..s0 + (t1 - t0)]);
            }
        }
    }
    cols[(rows - 1) * len..].fill(1.0);
    cols
}

/// Transposed convolution with kernel `2s`, stride `s` and padding `s/2`
/// (HiFi-GAN's upsampling) as one matrix product and an overlap-add.
fn conv_transpose_2s(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (cin, cout, k) = w.dims3()?;
    let l = x.dim(2)?;
    if k != 2 * stride {
        return Ok(x.conv_transpose1d(w, padding, 0, stride, 1, 1)?);
    }
    let x = x.squeeze(0)?; // [cin, L]
    let cols = w.reshape((cin, cout * k))?.t()?.matmul(&x)?; // [cout*k, L]
    let cols = cols.reshape((cout, k, l))?;
    // Tap j of frame i lands at i*s + j: the first s taps in block i, the rest in block i+1.
    let first = cols
        .narrow(1, 0, stride)?
        .transpose(1, 2)?
        .reshape((cout, l * stride))?;
    let second = cols
        .narrow(1, stride, stride)?
        .transpose(1, 2)?
        .reshape((cout, l * stride))?;
    let y = (first.pad_with_zeros(1, 0, stride)? + second.pad_with_zeros(1, stride, 0)?)?;
    let len = (l + 1) * stride - 2 * padding;
    Ok(y.narrow(1, padding, len)?.unsqueeze(0)?)
}

/// Layer norm over the channel axis of `[b, c, t]`.
#[derive(Debug, Clone)]
struct ChannelNorm {
    gamma: Tensor,
    beta: Tensor,
}

impl ChannelNorm {
    fn load(vb: &VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self {
            gamma: vb.get(channels, "gamma")?.reshape((1, (), 1))?,
            beta: vb.get(channels, "beta")?.reshape((1, (), 1))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            return self.forward_cpu(x);
        }
        let mean = x.mean_keepdim(1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(1)?;
        let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        Ok(xn.broadcast_mul(&self.gamma)?.broadcast_add(&self.beta)?)
    }

    /// The same on the CPU in two passes over the rows: candle reduces over
    /// a middle axis one element at a time, which made this a tenth of the
    /// text encoder's and duration predictor's time.
    fn forward_cpu(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        let mut v: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let gamma: Vec<f32> = self.gamma.flatten_all()?.to_vec1()?;
        let beta: Vec<f32> = self.beta.flatten_all()?.to_vec1()?;
        let n = c as f32;
        let mut mean = vec![0f32; t];
        let mut var = vec![0f32; t];
        for item in v.chunks_exact_mut((c * t).max(1)).take(b) {
            mean.fill(0.0);
            var.fill(0.0);
            for row in item.chunks_exact(t) {
                for (m, x) in mean.iter_mut().zip(row) {
                    *m += x;
                }
            }
            mean.iter_mut().for_each(|m| *m /= n);
            for row in item.chunks_exact(t) {
                for ((s, x), m) in var.iter_mut().zip(row).zip(&mean) {
                    *s += (x - m) * (x - m);
                }
            }
            var.iter_mut()
                .for_each(|s| *s = 1.0 / (*s / n + 1e-5).sqrt());
            for (row, (g, be)) in item.chunks_exact_mut(t).zip(gamma.iter().zip(&beta)) {
                for ((x, m), inv) in row.iter_mut().zip(&mean).zip(&var) {
                    *x = (*x - m) * inv * g + be;
                }
            }
        }
        Ok(Tensor::from_vec(v, (b, c, t), x.device())?)
    }
}

// ------------------------------------------------------------ text encoder

/// Multi-head attention with relative position embeddings (window `w`):
/// scores get `q·Ek[j-i]` and outputs get `Σ p[i,j] Ev[j-i]` for |j-i| ≤ w.
#[derive(Debug, Clone)]
struct RelAttention {
    q: Conv1d,
    k: Conv1d,
    v: Conv1d,
    o: Conv1d,
    rel_k: Tensor,
    rel_v: Tensor,
    heads: usize,
    window: usize,
}

impl RelAttention {
    /// `heads` heads over `hidden` channels, offsets in a window of `span`.
    fn load(vb: &VarBuilder, hidden: usize, heads: usize, span: usize) -> Result<Self> {
        let k_channels = hidden / heads;
        let rel_k = vb.get((1, span, k_channels), "emb_rel_k")?;
        let rel_v = vb.get((1, span, k_channels), "emb_rel_v")?;
        Ok(Self {
            q: Conv1d::load_1x1(&vb.pp("conv_q"), hidden, hidden)?,
            k: Conv1d::load_1x1(&vb.pp("conv_k"), hidden, hidden)?,
            v: Conv1d::load_1x1(&vb.pp("conv_v"), hidden, hidden)?,
            o: Conv1d::load_1x1(&vb.pp("conv_o"), hidden, hidden)?,
            rel_k: rel_k.squeeze(0)?,
            rel_v: rel_v.squeeze(0)?,
            heads,
            window: (span - 1) / 2,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        let kc = c / self.heads;
        let split = |y: Tensor| -> Result<Tensor> {
            Ok(y.reshape((b, self.heads, kc, t))?
                .transpose(2, 3)?
                .contiguous()?)
        };
        let scale = 1.0 / (kc as f64).sqrt();
        let q = (split(self.q.forward(x)?)? * scale)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        let scores = q.matmul(&k.transpose(2, 3)?.contiguous()?)?; // [b,h,t,t]
        let out = if x.device().is_cpu() && x.dtype() == DType::F32 {
            self.relative_cpu(&q, &scores, &v)?
        } else {
            self.relative(&q, &scores, &v)?
        };
        let out = out.transpose(2, 3)?.contiguous()?.reshape((b, c, t))?;
        self.o.forward(&out)
    }

    /// The attention's output (`[b,h,t,kc]`) from `q` (scaled), `q·kᵀ` and
    /// `v`, adding the relative-position terms through `[t, t]` index tensors.
    fn relative(&self, q: &Tensor, scores: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (b, _, t, _) = q.dims4()?;
        let (rel_idx, rel_valid) = relative_index(t, self.window, q.device())?;
        // q · Ek for every offset in the window: [b,h,t,2w+1], then placed on the diagonals.
        let rel_logits = q.broadcast_matmul(&self.rel_k.t()?.contiguous()?)?;
        let gathered = rel_logits.contiguous()?.gather(
            &rel_idx.broadcast_as((b, self.heads, t, t))?.contiguous()?,
            3,
        )?;
        let scores = (scores + gathered.broadcast_mul(&rel_valid)?)?;
        let p = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = p.matmul(v)?; // [b,h,t,kc]
                                // Attention weights by offset: [b,h,t,2w+1].
        let (abs_idx, abs_valid) = absolute_index(t, self.window, q.device())?;
        let span = 2 * self.window + 1;
        let rel_w = p
            .gather(
                &abs_idx
                    .broadcast_as((b, self.heads, t, span))?
                    .contiguous()?,
                3,
            )?
            .broadcast_mul(&abs_valid)?;
        Ok((out + rel_w.broadcast_matmul(&self.rel_v)?)?)
    }

    /// [`Self::relative`] on the CPU: the relative-position terms, the
    /// softmax and the weighted relative values as loops over each row's
    /// window, without the `[t, t]` index tensors and gathers (which took
    /// most of the text encoder's time on long sentences).
    fn relative_cpu(&self, q: &Tensor, scores: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (b, h, t, kc) = q.dims4()?;
        let mut p: Vec<f32> = scores.flatten_all()?.to_vec1()?;
        let qs: Vec<f32> = q.flatten_all()?.to_vec1()?;
        let ek: Vec<f32> = self.rel_k.flatten_all()?.to_vec1()?;
        let ev: Vec<f32> = self.rel_v.flatten_all()?.to_vec1()?;
        let w = self.window;
        let window = |i: usize| (i.saturating_sub(w), (i + w + 1).min(t));
        p.par_chunks_mut(t.max(1))
            .zip(qs.par_chunks(kc.max(1)))
            .enumerate()
            .for_each(|(r, (row, qi))| {
                let i = r % t;
                let (j0, j1) = window(i);
                for (j, s) in row.iter_mut().enumerate().take(j1).skip(j0) {
                    *s += crate::cpu::math::dot(qi, &ek[(j + w - i) * kc..][..kc]);
                }
                crate::cpu::math::softmax_in_place(row);
            });
        let probs = Tensor::from_vec(p, (b, h, t, t), q.device())?;
        let mut out: Vec<f32> = probs.matmul(v)?.flatten_all()?.to_vec1()?; // [b,h,t,kc]
        let p: Vec<f32> = probs.flatten_all()?.to_vec1()?;
        out.par_chunks_mut(kc.max(1))
            .zip(p.par_chunks(t.max(1)))
            .enumerate()
            .for_each(|(r, (o, row))| {
                let i = r % t;
                let (j0, j1) = window(i);
                for (j, pj) in row.iter().enumerate().take(j1).skip(j0) {
                    let e = &ev[(j + w - i) * kc..][..kc];
                    for (o, e) in o.iter_mut().zip(e) {
                        *o += pj * e;
                    }
                }
            });
        Ok(Tensor::from_vec(out, (b, h, t, kc), q.device())?)
    }
}

/// For every (i, j): the window offset `j - i + w`, clamped, and whether it is inside the window.
fn relative_index(t: usize, w: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let mut idx = Vec::with_capacity(t * t);
    let mut valid = Vec::with_capacity(t * t);
    for i in 0..t as i64 {
        for j in 0..t as i64 {
            let r = j - i + w as i64;
            let inside = (0..=2 * w as i64).contains(&r);
            idx.push(r.clamp(0, 2 * w as i64) as u32);
            valid.push(if inside { 1f32 } else { 0f32 });
        }
    }
    Ok((
        Tensor::from_vec(idx, (1, 1, t, t), dev)?,
        Tensor::from_vec(valid, (1, 1, t, t), dev)?,
    ))
}

/// For every (i, offset): the column `i + offset - w`, clamped, and whether it exists.
fn absolute_index(t: usize, w: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let span = 2 * w + 1;
    let mut idx = Vec::with_capacity(t * span);
    let mut valid = Vec::with_capacity(t * span);
    for i in 0..t as i64 {
        for r in 0..span as i64 {
            let j = i + r - w as i64;
            let inside = (0..t as i64).contains(&j);
            idx.push(j.clamp(0, t as i64 - 1) as u32);
            valid.push(if inside { 1f32 } else { 0f32 });
        }
    }
    Ok((
        Tensor::from_vec(idx, (1, 1, t, span), dev)?,
        Tensor::from_vec(valid, (1, 1, t, span), dev)?,
    ))
}

#[derive(Debug, Clone)]
struct Ffn {
    c1: Conv1d,
    c2: Conv1d,
}

impl Ffn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.c1.forward(x)?.relu()?;
        self.c2.forward(&h)
    }
}

#[derive(Debug, Clone)]
struct TextEncoder {
    emb: Tensor,
    hidden: usize,
    attn: Vec<RelAttention>,
    norm1: Vec<ChannelNorm>,
    ffn: Vec<Ffn>,
    norm2: Vec<ChannelNorm>,
    proj: Conv1d,
}

impl TextEncoder {
    /// The text encoder under `vb` (`enc_p`).
    fn load(vb: &VarBuilder) -> Result<Self> {
        let emb_dims = anchor(vb, "emb.weight", 2)?;
        let (symbols, hidden) = (emb_dims[0], emb_dims[1]);
        let emb = vb.get((symbols, hidden), "emb.weight")?;
        let enc = vb.pp("encoder");
        let rel = "attn_layers.0.emb_rel_k";
        let rel_dims = anchor(&enc, rel, 3)?;
        let (span, k_channels) = (rel_dims[1], rel_dims[2]);
        if hidden % k_channels != 0 || span % 2 == 0 {
            return Err(bad_anchor(
                &enc,
                rel,
                &format!("{rel_dims:?} does not split {hidden} channels into heads"),
            ));
        }
        let heads = hidden / k_channels;
        let ffn_dims = anchor(&enc, "ffn_layers.0.conv_1.weight", 3)?;
        let (filter, k) = (ffn_dims[0], ffn_dims[2]);
        let mut s = Self {
            emb,
            hidden,
            attn: Vec::new(),
            norm1: Vec::new(),
            ffn: Vec::new(),
            norm2: Vec::new(),
            proj: Conv1d::load_1x1(&vb.pp("proj"), hidden, 2 * hidden)?,
        };
        let mut i = 0;
        while enc.contains_tensor(&format!("attn_layers.{i}.conv_q.weight")) {
            s.attn.push(RelAttention::load(
                &enc.pp(format!("attn_layers.{i}")),
                hidden,
                heads,
                span,
            )?);
            s.norm1.push(ChannelNorm::load(
                &enc.pp(format!("norm_layers_1.{i}")),
                hidden,
            )?);
            let ffn = enc.pp(format!("ffn_layers.{i}"));
            s.ffn.push(Ffn {
                c1: Conv1d::load_same(&ffn.pp("conv_1"), (hidden, filter, k), 1, 1)?,
                c2: Conv1d::load_same(&ffn.pp("conv_2"), (filter, hidden, k), 1, 1)?,
            });
            s.norm2.push(ChannelNorm::load(
                &enc.pp(format!("norm_layers_2.{i}")),
                hidden,
            )?);
            i += 1;
        }
        if s.attn.is_empty() {
            return Err(Error::Config("the text encoder has no layers".into()));
        }
        Ok(s)
    }

    /// Returns (hidden states, mean, log-std), each `[1, c, t]`.
    fn forward(&self, ids: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let x = self.emb.embedding(ids)?; // [t, h]
        let x = (x * (self.hidden as f64).sqrt())?;
        let mut x = x.t()?.unsqueeze(0)?.contiguous()?; // [1, h, t]
        for i in 0..self.attn.len() {
            let y = self.attn[i].forward(&x)?;
            x = self.norm1[i].forward(&(x + y)?)?;
            let y = self.ffn[i].forward(&x)?;
            x = self.norm2[i].forward(&(x + y)?)?;
        }
        let stats = self.proj.forward(&x)?;
        let m = stats.narrow(1, 0, self.hidden)?;
        let logs = stats.narrow(1, self.hidden, self.hidden)?;
        Ok((x, m, logs))
    }
}

// ------------------------------------------------------------ duration predictor

/// Dilated depth-separable convolutions with layer norm and GELU.
#[derive(Debug, Clone)]
struct DdsConv {
    sep: Vec<Conv1d>,
    one: Vec<Conv1d>,
    n1: Vec<ChannelNorm>,
    n2: Vec<ChannelNorm>,
}

impl DdsConv {
    /// `channels` channels, kernel `k` (dilations 1, k, k², …).
    fn load(vb: &VarBuilder, channels: usize, k: usize) -> Result<Self> {
        let mut s = Self {
            sep: Vec::new(),
            one: Vec::new(),
            n1: Vec::new(),
            n2: Vec::new(),
        };
        let mut i = 0;
        while vb.contains_tensor(&format!("convs_sep.{i}.weight")) {
            let dilation = k.pow(i as u32);
            s.sep.push(Conv1d::load(
                &vb.pp(format!("convs_sep.{i}")),
                (channels, channels, k),
                (k * dilation - dilation) / 2,
                dilation,
                channels,
            )?);
            s.one.push(Conv1d::load_1x1(
                &vb.pp(format!("convs_1x1.{i}")),
                channels,
                channels,
            )?);
            s.n1.push(ChannelNorm::load(&vb.pp(format!("norms_1.{i}")), channels)?);
            s.n2.push(ChannelNorm::load(&vb.pp(format!("norms_2.{i}")), channels)?);
            i += 1;
        }
        Ok(s)
    }

    fn forward(&self, x: &Tensor, g: Option<&Tensor>) -> Result<Tensor> {
        let mut x = match g {
            Some(g) => x.broadcast_add(g)?,
            None => x.clone(),
        };
        for i in 0..self.sep.len() {
            let y = self.sep[i].forward(&x)?;
            let y = gelu(&self.n1[i].forward(&y)?)?;
            let y = self.one[i].forward(&y)?;
            let y = gelu(&self.n2[i].forward(&y)?)?;
            x = (x + y)?;
        }
        Ok(x)
    }
}

/// GELU with the exact (erf) form. On the CPU through
/// [`crate::cpu::math::gelu_in_place`], vectorised: candle calls the library's
/// `erff` one value at a time, which was most of the duration predictor's time.
fn gelu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        let mut v: Vec<f32> = x.flatten_all()?.to_vec1()?;
        crate::cpu::math::gelu_in_place(&mut v);
        return Ok(Tensor::from_vec(v, x.dims(), x.device())?);
    }
    Ok(x.gelu_erf()?)
}

/// A rational-quadratic spline coupling flow over two channels.
#[derive(Debug, Clone)]
struct ConvFlow {
    pre: Conv1d,
    convs: DdsConv,
    proj: Conv1d,
    filter: usize,
}

/// Spline settings as Piper trains them.
const NUM_BINS: usize = 10;
const TAIL_BOUND: f32 = 5.0;
const MIN_BIN_WIDTH: f32 = 1e-3;
const MIN_BIN_HEIGHT: f32 = 1e-3;
const MIN_DERIVATIVE: f32 = 1e-3;

impl ConvFlow {
    /// `filter` channels, kernel `k`, over two channels.
    fn load(vb: &VarBuilder, filter: usize, k: usize) -> Result<Self> {
        Ok(Self {
            pre: Conv1d::load_1x1(&vb.pp("pre"), 1, filter)?,
            convs: DdsConv::load(&vb.pp("convs"), filter, k)?,
            proj: Conv1d::load_1x1(&vb.pp("proj"), filter, 3 * NUM_BINS - 1)?,
            filter,
        })
    }

    /// The inverse transform of `x` ([1, 2, t]) conditioned on `g`.
    fn reverse(&self, x: &Tensor, g: &Tensor) -> Result<Tensor> {
        let x0 = x.narrow(1, 0, 1)?;
        let x1 = x.narrow(1, 1, 1)?;
        let h = self.pre.forward(&x0)?;
        let h = self.convs.forward(&h, Some(g))?;
        let h = self.proj.forward(&h)?; // [1, 3K-1, t]
        let t = x.dim(2)?;
        let params: Vec<Vec<f32>> = h.squeeze(0)?.t()?.to_dtype(DType::F32)?.to_vec2()?; // [t][3K-1]
        let inputs: Vec<f32> = x1.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        let scale = 1.0 / (self.filter as f32).sqrt();
        let mut out = Vec::with_capacity(t);
        for (i, p) in params.iter().enumerate() {
            let w: Vec<f32> = p[..NUM_BINS].iter().map(|v| v * scale).collect();
            let hgt: Vec<f32> = p[NUM_BINS..2 * NUM_BINS]
                .iter()
                .map(|v| v * scale)
                .collect();
            let d = &p[2 * NUM_BINS..];
            out.push(spline_inverse(inputs[i], &w, &hgt, d));
        }
        let x1 = Tensor::from_vec(out, (1, 1, t), x.device())?.to_dtype(x.dtype())?;
        Ok(Tensor::cat(&[&x0, &x1], 1)?)
    }
}

fn softmax(v: &[f32]) -> Vec<f32> {
    let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// Knot positions from unnormalised bin sizes, spanning [-B, B].
fn knots(unnormalised: &[f32], min_size: f32) -> Vec<f32> {
    let n = unnormalised.len();
    let sizes: Vec<f32> = softmax(unnormalised)
        .into_iter()
        .map(|s| min_size + (1.0 - min_size * n as f32) * s)
        .collect();
    let mut cum = Vec::with_capacity(n + 1);
    cum.push(-TAIL_BOUND);
    let mut acc = 0f32;
    for s in &sizes {
        acc += s;
        cum.push(2.0 * TAIL_BOUND * acc - TAIL_BOUND);
    }
    cum[n] = TAIL_BOUND;
    cum
}

/// Derivatives at the knots: the boundary ones fixed so the tails are linear.
fn derivatives(unnormalised_inner: &[f32]) -> Vec<f32> {
    let boundary = ((1.0 - MIN_DERIVATIVE).exp() - 1.0).ln();
    let mut d = Vec::with_capacity(unnormalised_inner.len() + 2);
    d.push(boundary);
    d.extend_from_slice(unnormalised_inner);
    d.push(boundary);
    d.into_iter()
        .map(|x| MIN_DERIVATIVE + softplus(x))
        .collect()
}

/// The spline bin a value falls in: its knots, size and end derivatives.
struct Bin {
    x0: f32,
    w: f32,
    y0: f32,
    h: f32,
    d0: f32,
    d1: f32,
}

impl Bin {
    /// Finds the bin of `v` among the width knots (forward) or the height
    /// knots (inverse): upstream's searchsorted, the last knot nudged up.
    fn locate(v: f32, uw: &[f32], uh: &[f32], ud: &[f32], by_height: bool) -> Self {
        let cw = knots(uw, MIN_BIN_WIDTH);
        let ch = knots(uh, MIN_BIN_HEIGHT);
        let d = derivatives(ud);
        let n = uw.len();
        let edges = if by_height { &ch } else { &cw };
        let mut k = 0;
        for (i, &c) in edges.iter().enumerate() {
            let c = if i == n { c + 1e-6 } else { c };
            if v >= c {
                k = i;
            }
        }
        let k = k.min(n - 1);
        Self {
            x0: cw[k],
            w: cw[k + 1] - cw[k],
            y0: ch[k],
            h: ch[k + 1] - ch[k],
            d0: d[k],
            d1: d[k + 1],
        }
    }
}

/// Inverse of the monotonic rational-quadratic spline with linear tails
/// (identity outside [-B, B]).
fn spline_inverse(y: f32, uw: &[f32], uh: &[f32], ud: &[f32]) -> f32 {
    if !(-TAIL_BOUND..=TAIL_BOUND).contains(&y) {
        return y;
    }
    let Bin {
        x0,
        w,
        y0,
        h,
        d0,
        d1,
    } = Bin::locate(y, uw, uh, ud, true);
    let delta = h / w;
    let dy = y - y0;
    let a = dy * (d0 + d1 - 2.0 * delta) + h * (delta - d0);
    let b = h * d0 - dy * (d0 + d1 - 2.0 * delta);
    let c = -delta * dy;
    let disc = (b * b - 4.0 * a * c).max(0.0);
    let root = (2.0 * c) / (-b - disc.sqrt());
    root * w + x0
}

/// Forward spline (for tests: the inverse must undo it).
#[cfg(test)]
fn spline_forward(x: f32, uw: &[f32], uh: &[f32], ud: &[f32]) -> f32 {
    if !(-TAIL_BOUND..=TAIL_BOUND).contains(&x) {
        return x;
    }
    let Bin {
        x0,
        w,
        y0,
        h,
        d0,
        d1,
    } = Bin::locate(x, uw, uh, ud, false);
    let delta = h / w;
    let th = (x - x0) / w;
    let t1 = th * (1.0 - th);
    y0 + h * (delta * th * th + d0 * t1) / (delta + (d0 + d1 - 2.0 * delta) * t1)
}

#[derive(Debug, Clone)]
struct DurationPredictor {
    pre: Conv1d,
    convs: DdsConv,
    proj: Conv1d,
    cond: Option<Conv1d>,
    /// Elementwise affine flow (reverse): `(x - m) * exp(-logs)`.
    ea_m: Tensor,
    ea_scale: Tensor,
    /// Spline flows in the order the reverse pass runs them.
    flows: Vec<ConvFlow>,
}

impl DurationPredictor {
    /// The duration predictor under `vb` (`dp`) over `hidden` channels;
    /// `gin` channels of speaker embedding when the voice has several.
    fn load(vb: &VarBuilder, hidden: usize, gin: Option<usize>) -> Result<Self> {
        let filter = anchor(vb, "pre.weight", 3)?[0];
        let k = anchor(vb, "convs.convs_sep.0.weight", 3)?[2];
        let ea_m = vb.get((2, 1), "flows.0.m")?.reshape((1, 2, 1))?;
        // The exporter folds exp(-logs) into a constant.
        let folded = "/dp/flows.0/Exp_output_0";
        let ea_scale = if vb.root().contains_tensor(folded) {
            vb.root().get((2, 1), folded)?.reshape((1, 2, 1))?
        } else {
            vb.get((2, 1), "flows.0.logs")?
                .neg()?
                .exp()?
                .reshape((1, 2, 1))?
        };
        // Reverse order; upstream skips the first ConvFlow at inference.
        let mut idx: Vec<usize> = (2..16)
            .filter(|i| vb.contains_tensor(&format!("flows.{i}.pre.weight")))
            .collect();
        idx.sort_unstable_by(|a, b| b.cmp(a));
        let flows = idx
            .iter()
            .map(|i| ConvFlow::load(&vb.pp(format!("flows.{i}")), filter, k))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            pre: Conv1d::load_1x1(&vb.pp("pre"), hidden, filter)?,
            convs: DdsConv::load(&vb.pp("convs"), filter, k)?,
            proj: Conv1d::load_1x1(&vb.pp("proj"), filter, filter)?,
            cond: load_cond(vb, "cond", gin, filter)?,
            ea_m,
            ea_scale,
            flows,
        })
    }

    /// Log-durations `[1, 1, t]` of the encoded text.
    fn reverse(&self, x: &Tensor, g: Option<&Tensor>, noise_w: f32) -> Result<Tensor> {
        let mut h = self.pre.forward(x)?;
        if let (Some(cond), Some(g)) = (&self.cond, g) {
            h = h.broadcast_add(&cond.forward(g)?)?;
        }
        let h = self.convs.forward(&h, None)?;
        let h = self.proj.forward(&h)?;
        let t = x.dim(2)?;
        let mut z = if noise_w > 0.0 {
            (Tensor::randn(0f32, 1f32, (1, 2, t), x.device())? * f64::from(noise_w))?
        } else {
            Tensor::zeros((1, 2, t), DType::F32, x.device())?
        };
        // Flip, ConvFlow, Flip, ConvFlow, …, then the affine flow.
        for f in &self.flows {
            z = flip_channels(&z)?;
            z = f.reverse(&z, &h)?;
        }
        z = flip_channels(&z)?;
        z = z.broadcast_sub(&self.ea_m)?.broadcast_mul(&self.ea_scale)?;
        Ok(z.narrow(1, 0, 1)?)
    }
}

fn flip_channels(x: &Tensor) -> Result<Tensor> {
    let c = x.dim(1)?;
    let idx: Vec<u32> = (0..c as u32).rev().collect();
    let idx = Tensor::from_vec(idx, c, x.device())?;
    Ok(x.index_select(&idx, 1)?)
}

// ------------------------------------------------------------ flow

#[derive(Debug, Clone)]
pub(super) struct WaveNet {
    pub(super) in_layers: Vec<Conv1d>,
    pub(super) res_skip: Vec<Conv1d>,
    pub(super) cond: Option<Conv1d>,
    pub(super) hidden: usize,
}

impl WaveNet {
    /// `hidden` channels, kernel `k`; `gin` channels of speaker embedding
    /// when the voice has several.
    fn load(vb: &VarBuilder, hidden: usize, k: usize, gin: Option<usize>) -> Result<Self> {
        let n = (0..)
            .take_while(|i| vb.contains_tensor(&format!("in_layers.{i}.weight")))
            .count();
        let mut s = Self {
            in_layers: Vec::new(),
            res_skip: Vec::new(),
            cond: load_cond(vb, "cond_layer", gin, 2 * hidden * n)?,
            hidden,
        };
        for i in 0..n {
            s.in_layers.push(Conv1d::load_same(
                &vb.pp(format!("in_layers.{i}")),
                (hidden, 2 * hidden, k),
                1,
                1,
            )?);
            // The last layer has no residual half.
            let out = if i + 1 < n { 2 * hidden } else { hidden };
            s.res_skip.push(Conv1d::load_1x1(
                &vb.pp(format!("res_skip_layers.{i}")),
                hidden,
                out,
            )?);
        }
        Ok(s)
    }

    /// Frames on each side that one output frame depends on.
    fn reach(&self) -> usize {
        self.in_layers.iter().map(|c| c.padding).sum()
    }

    fn forward(&self, x: &Tensor, g: Option<&Tensor>) -> Result<Tensor> {
        let hdim = self.hidden;
        let g_all = match (&self.cond, g) {
            (Some(c), Some(g)) => Some(c.forward(g)?),
            _ => None,
        };
        let mut x = x.clone();
        let mut out: Option<Tensor> = None;
        let n = self.in_layers.len();
        for i in 0..n {
            let mut a = self.in_layers[i].forward(&x)?;
            if let Some(g_all) = &g_all {
                a = a.broadcast_add(&g_all.narrow(1, i * 2 * hdim, 2 * hdim)?)?;
            }
            let acts = (a.narrow(1, 0, hdim)?.tanh()?
                * candle_nn::ops::sigmoid(&a.narrow(1, hdim, hdim)?)?)?;
            let rs = self.res_skip[i].forward(&acts)?;
            let skip = if i < n - 1 {
                x = (x + rs.narrow(1, 0, hdim)?)?;
                rs.narrow(1, hdim, hdim)?
            } else {
                rs
            };
            out = Some(match out {
                Some(o) => (o + skip)?,
                None => skip,
            });
        }
        out.ok_or_else(|| Error::Config("a WaveNet without layers".into()))
    }
}

#[derive(Debug, Clone)]
pub(super) struct CouplingLayer {
    pub(super) pre: Conv1d,
    pub(super) enc: WaveNet,
    pub(super) post: Conv1d,
    pub(super) half: usize,
}

impl CouplingLayer {
    fn reverse(&self, x: &Tensor, g: Option<&Tensor>) -> Result<Tensor> {
        let x0 = x.narrow(1, 0, self.half)?;
        let x1 = x.narrow(1, self.half, self.half)?;
        let h = self.pre.forward(&x0)?;
        let h = self.enc.forward(&h, g)?;
        let m = self.post.forward(&h)?;
        let x1 = (x1 - m)?;
        Ok(Tensor::cat(&[&x0, &x1], 1)?)
    }
}

// ------------------------------------------------------------ generator

#[derive(Debug, Clone)]
pub(super) enum ResBlock {
    /// Two convolutions per dilation ("1").
    One { c1: Vec<Conv1d>, c2: Vec<Conv1d> },
    /// One convolution per dilation ("2").
    Two { c: Vec<Conv1d> },
}

impl ResBlock {
    /// The resblock under `vb` over `ch` channels; its type and kernel are
    /// read from its first convolution.
    fn load(vb: &VarBuilder, ch: usize) -> Result<Self> {
        if vb.contains_tensor("convs1.0.weight") {
            let k = anchor(vb, "convs1.0.weight", 3)?[2];
            let dil = [1, 3, 5];
            let mut c1 = Vec::new();
            let mut c2 = Vec::new();
            for (i, d) in dil.iter().enumerate() {
                c1.push(Conv1d::load_same(
                    &vb.pp(format!("convs1.{i}")),
                    (ch, ch, k),
                    *d,
                    1,
                )?);
                c2.push(Conv1d::load_same(
                    &vb.pp(format!("convs2.{i}")),
                    (ch, ch, k),
                    1,
                    1,
                )?);
            }
            Ok(Self::One { c1, c2 })
        } else {
            let k = anchor(vb, "convs.0.weight", 3)?[2];
            let dil: [usize; 2] = match k {
                3 => [1, 2],
                5 => [2, 6],
                _ => [3, 12],
            };
            let c = dil
                .iter()
                .enumerate()
                .map(|(i, d)| Conv1d::load_same(&vb.pp(format!("convs.{i}")), (ch, ch, k), *d, 1))
                .collect::<Result<Vec<_>>>()?;
            Ok(Self::Two { c })
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        match self {
            Self::One { c1, c2 } => {
                for (a, b) in c1.iter().zip(c2) {
                    let y = a.forward_after_leaky(&x, Some(0.1))?;
                    let y = b.forward_after_leaky(&y, Some(0.1))?;
                    x = (x + y)?;
                }
            }
            Self::Two { c } => {
                for a in c {
                    x = (a.forward_after_leaky(&x, Some(0.1))? + x)?;
                }
            }
        }
        Ok(x)
    }
}

/// The speaker conditioning `name` (a 1×1 convolution from `gin` to `cout`
/// channels), when the voice has it. Its input width is the speaker
/// embedding's; without one, its own.
fn load_cond(
    vb: &VarBuilder,
    name: &str,
    gin: Option<usize>,
    cout: usize,
) -> Result<Option<Conv1d>> {
    let weight = format!("{name}.weight");
    if !vb.contains_tensor(&weight) {
        return Ok(None);
    }
    let cin = match gin {
        Some(g) => g,
        None => anchor(vb, &weight, 3)?[1],
    };
    Conv1d::load_1x1(&vb.pp(name), cin, cout).map(Some)
}

fn leaky(x: &Tensor, slope: f64) -> Result<Tensor> {
    Ok(x.maximum(&(x * slope)?)?)
}

#[derive(Debug, Clone)]
pub(super) struct Upsample {
    pub(super) w: Tensor,
    pub(super) b: Tensor,
    pub(super) stride: usize,
    pub(super) padding: usize,
}

/// HiFi-GAN as candle modules (on CUDA, and on the CPU where the CPU
/// decoder does not take the shapes).
#[derive(Debug, Clone)]
pub(super) struct Generator {
    pub(super) pre: Conv1d,
    pub(super) cond: Option<Conv1d>,
    pub(super) ups: Vec<Upsample>,
    pub(super) blocks: Vec<Vec<ResBlock>>,
    pub(super) post: Conv1d,
}

impl Generator {
    /// Audio samples per latent frame (the product of the strides).
    pub(super) fn samples_per_frame(&self) -> usize {
        self.ups.iter().map(|u| u.stride).product()
    }

    /// The waveform of latent frames `z` (`[1, channels, frames]`) as samples.
    fn samples(&self, z: &Tensor, g: Option<&Tensor>) -> Result<Vec<f32>> {
        Ok(self
            .forward(z, g)?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1()?)
    }
}

impl Generator {
    /// The decoder under `vb` (`dec`) from `inter` latent channels; `gin`
    /// channels of speaker embedding when the voice has several.
    fn load(vb: &VarBuilder, inter: usize, gin: Option<usize>) -> Result<Self> {
        let pre_dims = anchor(vb, "conv_pre.weight", 3)?;
        let (initial, k_pre) = (pre_dims[0], pre_dims[2]);
        let pre = Conv1d::load_same(&vb.pp("conv_pre"), (inter, initial, k_pre), 1, 1)?;
        let mut ups = Vec::new();
        let mut blocks = Vec::new();
        let mut ch = initial;
        let mut i = 0;
        let mut r = 0;
        while vb.contains_tensor(&format!("ups.{i}.weight")) {
            let name = format!("ups.{i}.weight");
            let k = anchor(vb, &name, 3)?[2];
            if ch < 2 || k < 2 {
                return Err(bad_anchor(vb, &name, "too many upsampling stages"));
            }
            let stride = k / 2;
            ups.push(Upsample {
                w: vb.get((ch, ch / 2, k), &name)?,
                b: vb.get(ch / 2, &format!("ups.{i}.bias"))?,
                stride,
                padding: (k - stride) / 2,
            });
            ch /= 2;
            let mut stage = Vec::new();
            for _ in 0..3 {
                stage.push(ResBlock::load(&vb.pp(format!("resblocks.{r}")), ch)?);
                r += 1;
            }
            blocks.push(stage);
            i += 1;
        }
        // HiFi-GAN's last convolution has no bias; an export may add one.
        let k_post = anchor(vb, "conv_post.weight", 3)?[2];
        let post_w = vb.get((1, ch, k_post), "conv_post.weight")?;
        let post_b = if vb.contains_tensor("conv_post.bias") {
            Some(vb.get(1, "conv_post.bias")?)
        } else {
            None
        };
        Ok(Self {
            pre,
            cond: load_cond(vb, "cond", gin, initial)?,
            ups,
            blocks,
            post: Conv1d::new(post_w, post_b, (k_post - 1) / 2, 1, 1)?,
        })
    }

    fn forward(&self, z: &Tensor, g: Option<&Tensor>) -> Result<Tensor> {
        let mut x = self.pre.forward(z)?;
        if let (Some(c), Some(g)) = (&self.cond, g) {
            x = x.broadcast_add(&c.forward(g)?)?;
        }
        for (up, stage) in self.ups.iter().zip(&self.blocks) {
            x = leaky(&x, 0.1)?;
            x = conv_transpose_2s(&x, &up.w, up.stride, up.padding)?
                .broadcast_add(&up.b.reshape((1, (), 1))?)?;
            let mut sum: Option<Tensor> = None;
            for b in stage {
                let y = b.forward(&x)?;
                sum = Some(match sum {
                    Some(s) => (s + y)?,
                    None => y,
                });
            }
            x = match sum {
                Some(s) => (s / stage.len() as f64)?,
                None => x,
            };
        }
        Ok(self.post.forward_after_leaky(&x, Some(0.01))?.tanh()?)
    }
}

// ------------------------------------------------------------ the model

/// A loaded VITS network.
#[derive(Debug, Clone)]
pub struct Vits {
    enc: TextEncoder,
    dp: DurationPredictor,
    /// The flow's layers (empty once a CPU copy replaces them:
    /// [`Vits::release_flows`]).
    flows: Vec<CouplingLayer>,
    /// Frames of context the flow needs on each side of a window.
    flow_context: usize,
    dec: Generator,
    speaker_emb: Option<Tensor>,
    device: Device,
}

/// Latent frames of context decoded on each side of a piece of a sentence.
/// HiFi-GAN's receptive field, in latent frames, is about 14 for Piper's
/// decoders (conv_pre ±3; per stage the transposed convolution ±1 and the
/// resblocks' ±(k−1)/2·(1+3+5+3) output samples: 60 at 8× for k = 11, that
/// is 7.5 frames); 32 leaves a margin for every Piper quality.
pub const DECODER_CONTEXT: usize = 32;

/// One sentence's sample of the prior, before the flow: `[1, channels,
/// frames]`, and the speaker embedding when the voice has several.
#[derive(Debug, Clone)]
pub struct Latent {
    z: Tensor,
    g: Option<Tensor>,
    frames: usize,
}

impl Latent {
    /// Latent frames (the decoder turns each into
    /// [`Vits::samples_per_frame`] samples).
    pub fn frames(&self) -> usize {
        self.frames
    }
}

/// The frames run for a piece of a sentence (see [`Vits::window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The frames asked for.
    pub from: usize,
    /// End (exclusive) of the frames asked for.
    pub to: usize,
    /// The flow's frames.
    pub flow: (usize, usize),
    /// The decoder's frames.
    pub dec: (usize, usize),
}

impl Window {
    /// The samples of `from..to` out of the decoder's output for `dec`.
    pub fn trim(&self, mut audio: Vec<f32>, samples_per_frame: usize) -> Vec<f32> {
        let start = ((self.from - self.dec.0) * samples_per_frame).min(audio.len());
        let len = ((self.to - self.from) * samples_per_frame).min(audio.len() - start);
        audio.truncate(start + len);
        audio.drain(..start);
        audio
    }
}

/// Noise and speed settings of one synthesis.
#[derive(Debug, Clone, Copy)]
pub struct Scales {
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
}

impl Vits {
    /// Builds the network from a voice's weights (see
    /// [`super::onnx::Weights::var_builder`]), on `vb`'s device. Every tensor
    /// is shape-checked: a missing one or a wrong shape is an error naming
    /// the tensor (and the shape expected).
    pub fn load(vb: &VarBuilder) -> Result<Self> {
        let enc = TextEncoder::load(&vb.pp("enc_p"))?;
        let hidden = enc.hidden;
        let (speaker_emb, gin) = if vb.contains_tensor("emb_g.weight") {
            let d = anchor(vb, "emb_g.weight", 2)?;
            (Some(vb.get((d[0], d[1]), "emb_g.weight")?), Some(d[1]))
        } else {
            (None, None)
        };
        let mut flows = Vec::new();
        let flow = vb.pp("flow.flows");
        // The latent's channels are split in half; the mean and log-std of
        // the prior have `hidden` channels each.
        let half = hidden / 2;
        for i in (0..16).step_by(2) {
            let layer = flow.pp(i);
            if !layer.contains_tensor("pre.weight") {
                continue;
            }
            let channels = anchor(&layer, "pre.weight", 3)?[0];
            let k = anchor(&layer, "enc.in_layers.0.weight", 3)?[2];
            flows.push(CouplingLayer {
                pre: Conv1d::load_1x1(&layer.pp("pre"), half, channels)?,
                enc: WaveNet::load(&layer.pp("enc"), channels, k, gin)?,
                post: Conv1d::load_1x1(&layer.pp("post"), channels, half)?,
                half,
            });
        }
        if flows.is_empty() {
            return Err(Error::Config("the voice has no flow layers".into()));
        }
        let dec = Generator::load(&vb.pp("dec"), hidden, gin)?;
        // Frames of context the flow needs on each side of a window: the sum
        // of its WaveNets' reaches, plus a margin.
        let flow_context = flows.iter().map(|f| f.enc.reach()).sum::<usize>() + 8;
        Ok(Self {
            dp: DurationPredictor::load(&vb.pp("dp"), hidden, gin)?,
            flows,
            flow_context,
            dec,
            enc,
            speaker_emb,
            device: vb.device().clone(),
        })
    }

    /// The flow's layers, for a CPU copy of them.
    pub(super) fn flows(&self) -> &[CouplingLayer] {
        &self.flows
    }

    /// The decoder's modules, for a CPU copy of them.
    pub(super) fn generator(&self) -> &Generator {
        &self.dec
    }

    /// Drops the flow's candle modules once a CPU copy runs instead (they
    /// are then never used; [`Vits::decode`] must not be called after).
    pub(super) fn release_flows(&mut self) {
        self.flows.clear();
    }

    /// Everything before the decoder: text encoder, durations, alignment and
    /// the flow in reverse. `None` for no ids.
    pub fn latent(
        &self,
        ids: &[i64],
        scales: Scales,
        speaker: Option<u32>,
    ) -> Result<Option<Latent>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let n_symbols = self.enc.emb.dim(0)? as i64;
        let ids_u32: Vec<u32> = ids
            .iter()
            .map(|&i| {
                if (0..n_symbols).contains(&i) {
                    i as u32
                } else {
                    0
                }
            })
            .collect();
        let t = ids_u32.len();
        let ids_t = Tensor::from_vec(ids_u32, t, &self.device)?;
        let g = match (&self.speaker_emb, speaker) {
            (Some(emb), sid) => {
                let sid = Tensor::from_vec(vec![sid.unwrap_or(0)], 1, &self.device)?;
                Some(emb.embedding(&sid)?.unsqueeze(2)?) // [1, gin, 1]
            }
            (None, _) => None,
        };
        let (x, m_p, logs_p) = self.enc.forward(&ids_t)?;
        let logw = self.dp.reverse(&x, g.as_ref(), scales.noise_w)?;
        let w = (logw.exp()? * f64::from(scales.length_scale))?.ceil()?;
        let durations: Vec<f32> = w.flatten_all()?.to_vec1()?;
        // Frame -> phoneme index: each phoneme repeated by its duration.
        let mut frame_src = Vec::new();
        for (i, d) in durations.iter().enumerate() {
            let n = d.max(0.0) as usize;
            frame_src.extend(std::iter::repeat_n(i as u32, n));
        }
        if frame_src.is_empty() {
            frame_src.push(0);
        }
        let frames = frame_src.len();
        let src = Tensor::from_vec(frame_src, frames, &self.device)?;
        let m = m_p.index_select(&src, 2)?;
        let logs = logs_p.index_select(&src, 2)?;
        let z = if scales.noise_scale > 0.0 {
            let eps = Tensor::randn(0f32, 1f32, m.dims(), &self.device)?;
            (m + (eps * logs.exp()?)? * f64::from(scales.noise_scale))?
        } else {
            m
        };
        Ok(Some(Latent { z, g, frames }))
    }

    /// The flow in reverse over frames `a..b` of the prior sample.
    fn flow(&self, latent: &Latent, a: usize, b: usize) -> Result<Tensor> {
        let mut z = if a == 0 && b == latent.frames {
            latent.z.clone()
        } else {
            latent.z.narrow(2, a, b - a)?.contiguous()?
        };
        for f in self.flows.iter().rev() {
            z = flip_channels(&z)?;
            z = f.reverse(&z, latent.g.as_ref())?;
        }
        Ok(z)
    }

    /// Audio samples per latent frame (the decoder's total upsampling).
    pub fn samples_per_frame(&self) -> usize {
        self.dec.samples_per_frame()
    }

    /// The prior sample's values as channels-last rows, frames `a..b`, and
    /// the speaker embedding: the input of a CPU flow.
    pub(super) fn rows(
        latent: &Latent,
        (a, b): (usize, usize),
    ) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        let z: Vec<f32> = latent
            .z
            .narrow(2, a, b - a)?
            .squeeze(0)?
            .t()?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        let g: Option<Vec<f32>> = match &latent.g {
            Some(g) => Some(g.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?),
            None => None,
        };
        Ok((z, g))
    }

    /// The frames to run for the audio of latent frames `from..to`: the
    /// flow over `flow`, which holds the decoder's frames `dec` and the
    /// flow's context; the decoder over `dec`, which holds `from..to` and
    /// its own context (where the latent has them). `None` for no frames.
    pub fn window(&self, latent: &Latent, from: usize, to: usize) -> Option<Window> {
        let to = to.min(latent.frames);
        if from >= to {
            return None;
        }
        let reach = DECODER_CONTEXT + self.flow_context;
        Some(Window {
            from,
            to,
            flow: (from.saturating_sub(reach), (to + reach).min(latent.frames)),
            dec: (
                from.saturating_sub(DECODER_CONTEXT),
                (to + DECODER_CONTEXT).min(latent.frames),
            ),
        })
    }

    /// The audio of latent frames `from..to` (clamped to the latent) through
    /// candle's flow and decoder: they run on those frames plus enough
    /// context on each side (see [`Vits::window`]) to cover their receptive
    /// fields, so the samples are those of the same frames when the whole
    /// sentence is run through them. A sentence can thus be synthesised, and
    /// heard, piece by piece.
    pub fn decode(&self, latent: &Latent, from: usize, to: usize) -> Result<Vec<f32>> {
        let Some(w) = self.window(latent, from, to) else {
            return Ok(Vec::new());
        };
        let ((fa, fb), (a, b)) = (w.flow, w.dec);
        let z = self.flow(latent, fa, fb)?;
        let z = if a == fa && b == fb {
            z
        } else {
            z.narrow(2, a - fa, b - a)?.contiguous()?
        };
        let audio = self.dec.samples(&z, latent.g.as_ref())?;
        Ok(w.trim(audio, self.samples_per_frame()))
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spline_inverse_undoes_forward() {
        let uw = [0.3, -1.2, 0.5, 2.0, 0.1, -0.4, 0.9, 0.0, -2.0, 1.1];
        let uh = [1.0, 0.2, -0.3, 0.7, -1.5, 0.4, 0.0, 2.2, -0.1, 0.3];
        let ud = [0.5, -0.5, 1.0, 0.2, -1.0, 0.3, 0.8, -0.2, 0.1];
        for i in 0..=200 {
            let x = -6.0 + 12.0 * i as f32 / 200.0;
            let y = spline_forward(x, &uw, &uh, &ud);
            let back = spline_inverse(y, &uw, &uh, &ud);
            assert!((back - x).abs() < 1e-4, "x={x} y={y} back={back}");
            if x.abs() > TAIL_BOUND {
                assert_eq!(y, x, "identity outside the tail bound");
            }
        }
    }

    #[test]
    fn relative_attention_matches_a_hand_computed_case() {
        // t = 3, window 1, one head of 1 channel: the local scores are q_i Ek[j-i+1].
        let dev = Device::Cpu;
        let q = [1.0f32, 2.0, -1.0];
        let ek = [0.1f32, 0.2, 0.3];
        let (idx, valid) = relative_index(3, 1, &dev).unwrap();
        let qt = Tensor::from_vec(q.to_vec(), (1, 1, 3, 1), &dev).unwrap();
        let rel = qt
            .broadcast_matmul(&Tensor::from_vec(ek.to_vec(), (1, 3), &dev).unwrap())
            .unwrap();
        let local = rel
            .gather(
                &idx.broadcast_as((1, 1, 3, 3))
                    .unwrap()
                    .contiguous()
                    .unwrap(),
                3,
            )
            .unwrap()
            .broadcast_mul(&valid)
            .unwrap();
        let got: Vec<Vec<f32>> = local
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        for (i, row) in got.iter().enumerate() {
            for (j, value) in row.iter().enumerate() {
                let r = j as i64 - i as i64 + 1;
                let want = if (0..3).contains(&r) {
                    q[i] * ek[r as usize]
                } else {
                    0.0
                };
                assert!((value - want).abs() < 1e-6, "({i},{j}) {value} vs {want}");
            }
        }
        // Absolute -> relative: row i, offset r reads column i + r - 1.
        let (aidx, avalid) = absolute_index(3, 1, &dev).unwrap();
        let a: Vec<Vec<u32>> = aidx
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        let v: Vec<Vec<f32>> = avalid
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(a[0], vec![0, 0, 1]);
        assert_eq!(v[0], vec![0.0, 1.0, 1.0]);
        assert_eq!(a[2], vec![1, 2, 2]);
        assert_eq!(v[2], vec![1.0, 1.0, 0.0]);
    }

    #[test]
    fn channel_flip_reverses_channels() {
        let x = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 3, 2))
            .unwrap();
        let y: Vec<Vec<f32>> = flip_channels(&x)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(y, vec![vec![4.0, 5.0], vec![2.0, 3.0], vec![0.0, 1.0]]);
    }

    #[test]
    fn layer_norm_over_channels() {
        let dev = Device::Cpu;
        let n = ChannelNorm {
            gamma: Tensor::ones((1, 2, 1), DType::F32, &dev).unwrap(),
            beta: Tensor::zeros((1, 2, 1), DType::F32, &dev).unwrap(),
        };
        let x = Tensor::from_vec(vec![1f32, 10.0, 3.0, 10.0], (1, 2, 2), &dev).unwrap();
        let y: Vec<Vec<f32>> = n
            .forward(&x)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert!((y[0][0] + 1.0).abs() < 1e-3 && (y[1][0] - 1.0).abs() < 1e-3);
        assert!(y[0][1].abs() < 1e-3, "equal channels normalise to 0");
    }
}
