//! HiFi-GAN (VITS's decoder) on the CPU over channels-last buffers, built
//! from the loaded [`Generator`]'s weights.
//!
//! Every convolution is a direct one ([`crate::cpu::conv`]), so nothing is
//! unfolded or allocated per convolution. Each upsampling stage is computed
//! in chunks of time: a chunk upsamples the rows it needs (its own plus the
//! resblocks' reach on each side) from the previous stage, runs the three
//! resblocks on them in buffers that stay in the core's cache, and writes the
//! stage's output rows already averaged and passed through the next leaky
//! ReLU. Chunks are independent, so they run on every core (rayon) with no
//! synchronisation inside a stage. The results equal the layer-by-layer
//! computation up to the order of floating-point sums.

use std::cell::RefCell;

use rayon::prelude::*;

use super::vits::{Conv1d, Generator, ResBlock};
use crate::cpu::conv::{conv, leaky_into, Conditioning, ConvIo, ConvWeights, Host, Isa};
use crate::cpu::math::{dot, tanh_in_place};
use crate::Error;

type Result<T> = std::result::Result<T, Error>;

/// Zero rows before and after every stage's buffer: the post convolution's
/// padding (3) and the upsampling's one row of each side fit in it.
const PAD: usize = 4;

/// Values (rows × channels) a chunk's buffers are sized for, so that one
/// chunk's working set stays in a core's L2 cache.
const CHUNK_VALUES: usize = 32 * 1024;

/// A "same" convolution: taps `j·dilation` apart, `pad` rows of reach on
/// each side.
#[derive(Debug, Clone)]
struct Same {
    w: ConvWeights,
    offsets: Vec<usize>,
    pad: usize,
}

impl Same {
    fn from_conv(isa: Isa, c: &Conv1d) -> Result<Self> {
        let (_, _, k) = c.w.dims3()?;
        if c.groups != 1 || 2 * c.padding != (k - 1) * c.dilation {
            return Err(Error::Config(
                "the CPU decoder takes only ungrouped \"same\" convolutions".into(),
            ));
        }
        let host = Host::new(&c.w, c.b.as_ref())?;
        Ok(Self {
            w: ConvWeights::conv1d(isa, &host.w, host.dims, host.b.as_deref()),
            offsets: (0..k).map(|j| j * c.dilation).collect(),
            pad: c.padding,
        })
    }

    /// Output rows `o0..o1` (of a buffer whose row `r` is at `(r - lo)`) from
    /// `input` rows `o0 - pad..o1 + pad`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        input: &[f32],
        lo: isize,
        (o0, o1): (isize, isize),
        out: &mut [f32],
        out_lo: isize,
        resid: Option<(&[f32], isize)>,
        accumulate: bool,
    ) -> Result<()> {
        if o1 <= o0 {
            return Ok(());
        }
        let c = self.w.cout();
        let at = |r: isize, base: isize| (r - base) as usize;
        conv(
            &self.w,
            ConvIo {
                input,
                first: at(o0 - self.pad as isize, lo),
                offsets: &self.offsets,
                rows: (o1 - o0) as usize,
                out: &mut out[at(o0, out_lo) * c..],
                out_stride: c,
                resid: resid.map(|(r, base)| (&r[at(o0, base) * c..], c)),
                accumulate,
            },
        )?;
        Ok(())
    }
}

/// `x += outer(lrelu(inner(lrelu(x))))`, or `x += outer(lrelu(x))` without
/// an inner convolution: one dilation of a resblock of type "1" or "2".
#[derive(Debug, Clone)]
struct Unit {
    inner: Option<Same>,
    outer: Same,
}

impl Unit {
    fn reach(&self) -> usize {
        self.inner.as_ref().map_or(0, |c| c.pad) + self.outer.pad
    }
}

/// One upsampling stage: a transposed convolution (kernel `2s`, stride `s`,
/// padding `s/2`) as `s` two-tap phases, then the mean of its resblocks.
#[derive(Debug, Clone)]
struct Stage {
    stride: usize,
    up_pad: usize,
    /// Phase `r` gives output rows `t` with `(t + up_pad) % stride == r`
    /// from input rows `i - 1` and `i`, `i = (t + up_pad) / stride`.
    phases: Vec<ConvWeights>,
    channels: usize,
    blocks: Vec<Vec<Unit>>,
    /// Rows of context a chunk needs on each side (the longest resblock).
    reach: usize,
}

/// The decoder, ready to run on the CPU.
#[derive(Debug, Clone)]
pub(crate) struct CpuGenerator {
    pre: Same,
    /// The speaker conditioning, added to every row after `pre`.
    cond: Option<Conditioning>,
    stages: Vec<Stage>,
    /// The last convolution to one channel: `[k][cin]` weights and bias.
    post: (Vec<f32>, f32, usize),
}

impl CpuGenerator {
    /// Packs `g`'s weights for this CPU. Fails for a shape this code does
    /// not take (the caller then keeps the candle decoder).
    pub(crate) fn new(g: &Generator) -> Result<Self> {
        let isa = Isa::detect();
        let pre = Same::from_conv(isa, &g.pre)?;
        let cond = g
            .cond
            .as_ref()
            .map(|c| Conditioning::new(&c.w, c.b.as_ref()))
            .transpose()?;
        let mut stages = Vec::new();
        for (up, blocks) in g.ups.iter().zip(&g.blocks) {
            let (cin, cout, k) = up.w.dims3()?;
            let s = up.stride;
            if k != 2 * s || up.padding != s / 2 || s < 2 || s % 2 != 0 {
                return Err(Error::Config(
                    "the CPU decoder takes upsampling with kernel 2·stride only".into(),
                ));
            }
            let w: Vec<f32> = up.w.flatten_all()?.to_vec1()?;
            let b: Vec<f32> = up.b.to_vec1()?;
            let at = |ci: usize, co: usize, j: usize| w[(ci * cout + co) * k + j];
            let phases = (0..s)
                .map(|r| {
                    // Tap 0 reads input row i - 1 (kernel tap r + s), tap 1 row i (tap r).
                    ConvWeights::new(
                        isa,
                        (2, cin, cout),
                        |tap, ci, co| at(ci, co, if tap == 0 { r + s } else { r }),
                        Some(&b),
                    )
                })
                .collect();
            let mut units_of = Vec::new();
            for block in blocks {
                let units = match block {
                    ResBlock::One { c1, c2 } => c1
                        .iter()
                        .zip(c2)
                        .map(|(a, b)| {
                            Ok(Unit {
                                inner: Some(Same::from_conv(isa, a)?),
                                outer: Same::from_conv(isa, b)?,
                            })
                        })
                        .collect::<Result<Vec<_>>>()?,
                    ResBlock::Two { c } => c
                        .iter()
                        .map(|a| {
                            Ok(Unit {
                                inner: None,
                                outer: Same::from_conv(isa, a)?,
                            })
                        })
                        .collect::<Result<Vec<_>>>()?,
                };
                units_of.push(units);
            }
            let reach = units_of
                .iter()
                .map(|u| u.iter().map(Unit::reach).sum::<usize>())
                .max()
                .unwrap_or(0);
            stages.push(Stage {
                stride: s,
                up_pad: s / 2,
                phases,
                channels: cout,
                blocks: units_of,
                reach,
            });
        }
        let (one, ch, k) = g.post.w.dims3()?;
        if one != 1 || 2 * g.post.padding + 1 != k || k > 2 * PAD + 1 {
            return Err(Error::Config(
                "the CPU decoder takes a one-channel odd post convolution".into(),
            ));
        }
        let pw: Vec<f32> = g.post.w.flatten_all()?.to_vec1()?;
        let mut post = vec![0f32; k * ch];
        for ci in 0..ch {
            for j in 0..k {
                post[j * ch + ci] = pw[ci * k + j];
            }
        }
        let post_b = match &g.post.b {
            Some(b) => b
                .flatten_all()?
                .to_vec1::<f32>()?
                .first()
                .copied()
                .unwrap_or(0.0),
            None => 0.0,
        };
        Ok(Self {
            pre,
            cond,
            stages,
            post: (post, post_b, k),
        })
    }

    /// The waveform of `frames` latent rows (channels-last) and speaker
    /// embedding `g`.
    pub(crate) fn forward_rows(
        &self,
        z: &[f32],
        frames: usize,
        g: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        let cin = self.pre.w.cin();
        if frames == 0 {
            return Ok(Vec::new());
        }
        if z.len() < frames * cin {
            return Err(Error::Config("latent shorter than its frames".into()));
        }
        // With the pre convolution's padding.
        let p = self.pre.pad;
        let mut input = vec![0f32; (frames + 2 * p) * cin];
        input[p * cin..(p + frames) * cin].copy_from_slice(&z[..frames * cin]);
        let ch = self.pre.w.cout();
        let mut cur = vec![0f32; (frames + 2 * PAD) * ch];
        let rows_per = frames.div_ceil(rayon::current_num_threads().max(1)).max(1);
        cur[PAD * ch..(PAD + frames) * ch]
            .par_chunks_mut(rows_per * ch)
            .enumerate()
            .try_for_each(|(i, out)| {
                let t0 = (i * rows_per) as isize;
                let rows = (out.len() / ch) as isize;
                self.pre
                    .run(&input, -(p as isize), (t0, t0 + rows), out, t0, None, false)
            })?;
        // The speaker conditioning is constant in time.
        let bias = match (&self.cond, g) {
            (Some(c), Some(g)) => Some(c.at(g)),
            _ => None,
        };
        for row in cur[PAD * ch..(PAD + frames) * ch].chunks_exact_mut(ch) {
            if let Some(b) = &bias {
                for (v, b) in row.iter_mut().zip(b) {
                    *v += b;
                }
            }
            for v in row.iter_mut() {
                if *v < 0.0 {
                    *v *= 0.1;
                }
            }
        }
        let mut len = frames;
        for (i, stage) in self.stages.iter().enumerate() {
            let slope = if i + 1 == self.stages.len() {
                0.01
            } else {
                0.1
            };
            cur = stage.run(&cur, len, slope)?;
            len *= stage.stride;
        }
        // The post convolution to one channel, and tanh.
        let (w, b, k) = &self.post;
        let c = self.stages.last().map_or(ch, |s| s.channels);
        let mut audio = vec![0f32; len];
        let per = len
            .div_ceil(rayon::current_num_threads().max(1) * 4)
            .max(1024);
        audio.par_chunks_mut(per).enumerate().for_each(|(i, out)| {
            for (n, o) in out.iter_mut().enumerate() {
                let t = i * per + n;
                // Rows t - k/2 .. t + k/2, contiguous in the padded buffer.
                let start = (PAD + t - k / 2) * c;
                *o = b + dot(&cur[start..start + k * c], w);
            }
            tanh_in_place(out);
        });
        Ok(audio)
    }
}

thread_local! {
    /// Each worker thread's chunk buffers, kept between chunks and calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Stage {
    /// Upsamples `prev` (`l_in` rows, lrelu applied, `PAD` zero rows around)
    /// and runs the resblocks; returns the stage's output (mean of the
    /// blocks, through a leaky ReLU of `slope`) with `PAD` zero rows around.
    fn run(&self, prev: &[f32], l_in: usize, slope: f32) -> Result<Vec<f32>> {
        let c = self.channels;
        let l = l_in * self.stride;
        let threads = rayon::current_num_threads().max(1);
        let chunk = (CHUNK_VALUES / c)
            .max(4 * self.reach)
            .min(l.div_ceil(threads))
            .max(16);
        let mut out = vec![0f32; (l + 2 * PAD) * c];
        out[PAD * c..(PAD + l) * c]
            .par_chunks_mut(chunk * c)
            .enumerate()
            .try_for_each(|(i, y)| {
                let t0 = (i * chunk) as isize;
                let t1 = t0 + (y.len() / c) as isize;
                SCRATCH.with(|s| {
                    let mut s = s.borrow_mut();
                    self.chunk(prev, l as isize, (t0, t1), slope, y, &mut s)
                })
            })?;
        Ok(out)
    }

    /// Output rows `t0..t1` into `y`.
    fn chunk(
        &self,
        prev: &[f32],
        l: isize,
        (t0, t1): (isize, isize),
        slope: f32,
        y: &mut [f32],
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        let c = self.channels;
        let r = self.reach as isize;
        let (lo, hi) = (t0 - r, t1 + r);
        let n = (hi - lo) as usize * c;
        let m = (t1 - t0) as usize * c;
        let inner = self.blocks.iter().flatten().any(|u| u.inner.is_some());
        let need = 4 * n + m + if inner { n } else { 0 };
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let (x, rest) = scratch.split_at_mut(n);
        let (a0, rest) = rest.split_at_mut(n);
        let (a, rest) = rest.split_at_mut(n);
        let (xb, rest) = rest.split_at_mut(n);
        let (acc, rest) = rest.split_at_mut(m);
        let tmp = &mut rest[..if inner { n } else { 0 }];
        let valid = |q: isize| q.clamp(0, l);
        let at = |q: isize| (q - lo) as usize * c;

        // Upsample rows lo..hi; rows outside the signal are zero.
        x[..at(valid(lo).min(hi))].fill(0.0);
        x[at(valid(hi).max(lo))..].fill(0.0);
        let (v0, v1) = (valid(lo), valid(hi));
        let s = self.stride as isize;
        let pad = self.up_pad as isize;
        for (phase, w) in self.phases.iter().enumerate() {
            // The first row at or after v0 in this phase.
            let t_first = v0 + (phase as isize - (v0 + pad)).rem_euclid(s);
            if t_first >= v1 {
                continue;
            }
            let rows = ((v1 - 1 - t_first) / s + 1) as usize;
            let i_first = ((t_first + pad) / s) as usize;
            conv(
                w,
                ConvIo {
                    input: prev,
                    first: PAD + i_first - 1,
                    offsets: &[0, 1],
                    rows,
                    out: &mut x[at(t_first)..],
                    out_stride: self.stride * c,
                    resid: None,
                    accumulate: false,
                },
            )?;
        }
        leaky_into(a0, x, 1.0, 0.1);
        acc.fill(0.0);

        for units in &self.blocks {
            // Rows of context still needed after unit u.
            let mut after: usize = units.iter().map(Unit::reach).sum();
            for (u, unit) in units.iter().enumerate() {
                after -= unit.reach();
                let last = u + 1 == units.len();
                let (o0, o1) = (valid(t0 - after as isize), valid(t1 + after as isize));
                let outer_in = (o0 - unit.outer.pad as isize, o1 + unit.outer.pad as isize);
                // The outer convolution's input, lrelu applied and zero outside the signal.
                let src: &[f32] = match &unit.inner {
                    None if u == 0 => a0,
                    None => {
                        let reach = unit.outer.pad as isize;
                        prep(a, xb, (o0 - reach, o1 + reach), (0, l), lo, c);
                        a
                    }
                    Some(inner) => {
                        let (i0, i1) = (valid(outer_in.0), valid(outer_in.1));
                        let input: &[f32] = if u == 0 {
                            a0
                        } else {
                            let reach = inner.pad as isize;
                            prep(a, xb, (i0 - reach, i1 + reach), (0, l), lo, c);
                            a
                        };
                        inner.run(input, lo, (i0, i1), tmp, lo, None, false)?;
                        prep(a, tmp, outer_in, (0, l), lo, c);
                        a
                    }
                };
                if last {
                    let resid: &[f32] = if u == 0 { x } else { xb };
                    unit.outer
                        .run(src, lo, (t0, t1), acc, t0, Some((resid, lo)), true)?;
                } else if u == 0 {
                    unit.outer
                        .run(src, lo, (o0, o1), xb, lo, Some((x, lo)), false)?;
                } else {
                    unit.outer.run(src, lo, (o0, o1), xb, lo, None, true)?;
                }
            }
        }
        leaky_into(y, acc, 1.0 / self.blocks.len().max(1) as f32, slope);
        Ok(())
    }
}

/// `dst` rows `r0..r1` (indexed from `lo`) = lrelu(`src`, 0.1) where the row
/// is inside `valid`, zero where it is not.
fn prep(
    dst: &mut [f32],
    src: &[f32],
    (r0, r1): (isize, isize),
    (v0, v1): (isize, isize),
    lo: isize,
    c: usize,
) {
    let at = |q: isize| (q - lo) as usize * c;
    let (a, b) = (r0.max(v0).min(r1), r1.min(v1).max(r0));
    dst[at(r0)..at(a)].fill(0.0);
    leaky_into(&mut dst[at(a)..at(b)], &src[at(a)..at(b)], 1.0, 0.1);
    dst[at(b)..at(r1)].fill(0.0);
}
