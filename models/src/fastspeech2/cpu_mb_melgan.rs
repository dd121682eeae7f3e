//! MB-MelGAN's generator on the CPU: the same network as
//! [`super::mb_melgan::Generator`] over channels-last rows with the direct
//! convolutions of [`crate::cpu::conv`] (rows split across the cores), no
//! im2col and no candle tensors between layers.
//!
//! - A reflection pad is written into the next layer's input buffer, whose
//!   leaky ReLU is applied as it is copied.
//! - A transposed convolution by `r` (kernel `2r`, TensorFlow's "same"
//!   crop of `r/2` samples) is `r` two-tap convolutions, one per output
//!   phase, each writing every `r`-th output row.
//! - A residual stack's shortcut is computed first, then added by the last
//!   1×1 convolution as it writes.

use super::mb_melgan::{Bands, Conv, Generator};
use crate::cpu::conv::{par_conv, ConvWeights, Isa};
use crate::cpu::math::tanh_in_place;
use crate::Error;

type Result<T> = std::result::Result<T, Error>;

/// A convolution packed for the kernels, with its tap offsets.
#[derive(Debug, Clone)]
struct Packed {
    w: ConvWeights,
    offsets: Vec<usize>,
}

impl Packed {
    /// Conv `c` with taps `dilation` rows apart.
    fn conv(isa: Isa, c: &Conv, dilation: usize) -> Self {
        let (cin, cout) = (c.cin, c.cout);
        let w = ConvWeights::new(
            isa,
            (c.k, cin, cout),
            |j, ci, co| c.host[(j * cin + ci) * cout + co],
            Some(&c.bias),
        );
        Self {
            w,
            offsets: (0..c.k).map(|j| j * dilation).collect(),
        }
    }

    /// Phase `p` of the transposed convolution `c` by `ratio` (input
    /// padded by one zero row on each side): output row `m·ratio + p` reads
    /// input rows `m` and `m ± 1` with taps `q` and `q ± ratio`.
    fn phase(isa: Isa, c: &Conv, ratio: usize, p: usize) -> Self {
        let (cin, cout) = (c.cin, c.cout);
        let q = p + ratio / 2;
        // (padded input row offset, kernel tap) for each of the two taps.
        let taps: [(usize, usize); 2] = if q < ratio {
            [(1, q), (0, q + ratio)]
        } else {
            [(2, q - ratio), (1, q)]
        };
        let w = ConvWeights::new(
            isa,
            (2, cin, cout),
            |t, ci, co| c.host[(taps[t].1 * cin + ci) * cout + co],
            Some(&c.bias),
        );
        Self {
            w,
            offsets: taps.iter().map(|t| t.0).collect(),
        }
    }
}

#[derive(Debug, Clone)]
struct Stack {
    dilated: Packed,
    pointwise: Packed,
    shortcut: Packed,
    reach: usize,
}

#[derive(Debug, Clone)]
struct Upsample {
    phases: Vec<Packed>,
    ratio: usize,
    stacks: Vec<Stack>,
}

/// The generator packed for this CPU.
#[derive(Debug, Clone)]
pub struct CpuGenerator {
    first: Packed,
    first_pad: usize,
    ups: Vec<Upsample>,
    last: Packed,
    last_pad: usize,
    alpha: f32,
    bands: usize,
    mel: usize,
}

/// `dst` rows `pad..pad + rows` = leaky(`src`) (when `alpha` is given) and
/// the `pad` rows on each side the reflection of those (TensorFlow's
/// `REFLECT`: the edge row itself is not repeated).
fn reflect_into(
    dst: &mut Vec<f32>,
    src: &[f32],
    c: usize,
    pad: usize,
    alpha: Option<f32>,
) -> Result<()> {
    let rows = src.len() / c;
    if pad >= rows {
        return Err(Error::Config(format!(
            "a reflection pad of {pad} needs more than {rows} rows"
        )));
    }
    dst.clear();
    dst.resize((rows + 2 * pad) * c, 0.0);
    let body = &mut dst[pad * c..(pad + rows) * c];
    match alpha {
        Some(a) => {
            for (d, s) in body.iter_mut().zip(src) {
                *d = if *s < 0.0 { s * a } else { *s };
            }
        }
        None => body.copy_from_slice(src),
    }
    for i in 0..pad {
        // Left: row pad-1-i is body row i+1; right: row pad+rows+i is body row rows-2-i.
        let (head, tail) = dst.split_at_mut(pad * c);
        head[(pad - 1 - i) * c..(pad - i) * c].copy_from_slice(&tail[(i + 1) * c..(i + 2) * c]);
        let from = (pad + rows - 2 - i) * c;
        let to = (pad + rows + i) * c;
        let (a, b) = dst.split_at_mut(to);
        b[..c].copy_from_slice(&a[from..from + c]);
    }
    Ok(())
}

impl CpuGenerator {
    /// Packs `g`'s weights for this CPU.
    pub fn new(g: &Generator) -> Self {
        let isa = Isa::detect();
        let ups = g
            .ups
            .iter()
            .map(|u| Upsample {
                phases: (0..u.ratio)
                    .map(|p| Packed::phase(isa, &u.conv, u.ratio, p))
                    .collect(),
                ratio: u.ratio,
                stacks: u
                    .stacks
                    .iter()
                    .map(|s| Stack {
                        dilated: Packed::conv(isa, &s.dilated, s.dilation),
                        pointwise: Packed::conv(isa, &s.pointwise, 1),
                        shortcut: Packed::conv(isa, &s.shortcut, 1),
                        reach: s.dilation * (s.dilated.k / 2),
                    })
                    .collect(),
            })
            .collect();
        Self {
            first: Packed::conv(isa, &g.first, 1),
            first_pad: g.first.k / 2,
            ups,
            last: Packed::conv(isa, &g.last, 1),
            last_pad: g.last.k / 2,
            alpha: g.alpha,
            bands: g.last.cout,
            mel: g.first.cin,
        }
    }

    /// The bands for `mel` (`frames` rows of the mel's channels).
    pub fn forward(&self, mel: &[f32]) -> Result<Bands> {
        let c = self.mel;
        if c == 0 || !mel.len().is_multiple_of(c) {
            return Err(Error::Config(format!(
                "a mel of {} values is not rows of {c} channels",
                mel.len()
            )));
        }
        let rows = mel.len() / c;
        let mut padded = Vec::new();
        reflect_into(&mut padded, mel, c, self.first_pad, None)?;
        let mut x = vec![0f32; rows * self.first.w.cout()];
        run(&self.first, &padded, rows, &mut x, None)?;
        let mut rows = rows;
        let mut scratch = Vec::new();
        for up in &self.ups {
            let cin = up.phases[0].w.cin();
            let cout = up.phases[0].w.cout();
            // leaky(x) with a zero row on each side.
            scratch.clear();
            scratch.resize((rows + 2) * cin, 0.0);
            for (d, s) in scratch[cin..(rows + 1) * cin].iter_mut().zip(&x) {
                *d = if *s < 0.0 { s * self.alpha } else { *s };
            }
            let out_rows = rows * up.ratio;
            let mut y = vec![0f32; out_rows * cout];
            for (p, ph) in up.phases.iter().enumerate() {
                par_conv(
                    &ph.w,
                    &scratch,
                    0,
                    &ph.offsets,
                    rows,
                    &mut y[p * cout..],
                    up.ratio * cout,
                    false,
                    None,
                )?;
            }
            rows = out_rows;
            let mut short = vec![0f32; rows * cout];
            let mut h = vec![0f32; rows * cout];
            for s in &up.stacks {
                run(&s.shortcut, &y, rows, &mut short, None)?;
                reflect_into(&mut scratch, &y, cout, s.reach, Some(self.alpha))?;
                run(&s.dilated, &scratch, rows, &mut h, None)?;
                for v in h.iter_mut() {
                    if *v < 0.0 {
                        *v *= self.alpha;
                    }
                }
                run(&s.pointwise, &h, rows, &mut y, Some(&short))?;
            }
            x = y;
        }
        let c = self.last.w.cin();
        reflect_into(&mut scratch, &x, c, self.last_pad, Some(self.alpha))?;
        let mut bands = vec![0f32; rows * self.bands];
        run(&self.last, &scratch, rows, &mut bands, None)?;
        tanh_in_place(&mut bands);
        Ok(Bands {
            values: bands,
            bands: self.bands,
        })
    }
}

/// `out` (rows of the conv's outputs) = conv over `input` from row 0,
/// plus `resid` rows when given.
fn run(
    p: &Packed,
    input: &[f32],
    rows: usize,
    out: &mut [f32],
    resid: Option<&[f32]>,
) -> Result<()> {
    let cout = p.w.cout();
    par_conv(
        &p.w,
        input,
        0,
        &p.offsets,
        rows,
        out,
        cout,
        false,
        resid.map(|r| (r, cout)),
    )?;
    Ok(())
}
