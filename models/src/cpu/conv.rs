//! Direct 1-D convolutions over channels-last `f32` rows on the CPU: the
//! kernel under the CPU paths of the engines (Piper's decoder and flow,
//! MB-MelGAN).
//!
//! A buffer holds one row per time step, each row all of its channels. A
//! convolution with `taps` taps reads, for output row `m`, the input rows
//! `first + m + offsets[j]` and multiplies each by its own `[cin, cout]`
//! matrix. That covers dilated "same" convolutions (offsets `j·d`) and each
//! phase of a transposed convolution (two taps) without unfolding the input
//! (no im2col), so a convolution allocates nothing.
//!
//! The inner loop keeps a tile of `MR` rows × `NW` output channels in
//! registers, broadcasts one input value per row and multiplies it by `NW`
//! packed weights. The tile is chosen once per process from what the CPU has:
//! AVX-512 (6×64 or 12×32, 24 of its 32 vector registers), AVX2 with FMA
//! (6×16), or a portable tile that any `x86_64` or other target runs. The same
//! Rust code is compiled for each; the vector instructions come from the
//! compiler, and the only `unsafe` is the call into a function compiled for a
//! feature after the CPU has been checked for it.

use rayon::prelude::*;

use candle_core::Tensor;

pub(crate) use super::isa::Isa;
use super::math::dot;

/// A convolution's weights, packed for one [`Isa`]: per block of `nw` output
/// channels, per tap, per input channel, `nw` weights (zero past `cout`);
/// and the bias, padded the same way.
#[derive(Clone)]
pub(crate) struct ConvWeights {
    isa: Isa,
    taps: usize,
    cin: usize,
    cout: usize,
    nw: usize,
    w: Vec<f32>,
    bias: Vec<f32>,
}

impl std::fmt::Debug for ConvWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvWeights")
            .field("isa", &self.isa)
            .field("taps", &self.taps)
            .field("cin", &self.cin)
            .field("cout", &self.cout)
            .finish()
    }
}

impl ConvWeights {
    /// Packs `weight(tap, ci, co)` for `taps × cin × cout` and the bias
    /// (zero when `None`), for `isa` (the portable tile when this CPU lacks it).
    pub(crate) fn new(
        isa: Isa,
        (taps, cin, cout): (usize, usize, usize),
        weight: impl Fn(usize, usize, usize) -> f32,
        bias: Option<&[f32]>,
    ) -> Self {
        // Never packed for a variant this CPU cannot run: `conv` relies on it.
        let isa = if Isa::available().contains(&isa) {
            isa
        } else {
            Isa::Portable
        };
        let nw = isa.width(cout);
        let blocks = cout.div_ceil(nw);
        let mut w = vec![0f32; blocks * taps * cin * nw];
        for b in 0..blocks {
            for j in 0..taps {
                for ci in 0..cin {
                    let row = ((b * taps + j) * cin + ci) * nw;
                    for c in 0..nw.min(cout - b * nw) {
                        w[row + c] = weight(j, ci, b * nw + c);
                    }
                }
            }
        }
        let mut padded = vec![0f32; blocks * nw];
        if let Some(bias) = bias {
            for (p, b) in padded.iter_mut().zip(bias) {
                *p = *b;
            }
        }
        Self {
            isa,
            taps,
            cin,
            cout,
            nw,
            w,
            bias: padded,
        }
    }

    /// A PyTorch `Conv1d` weight (`[cout, cin, k]`, row-major) and bias.
    pub(crate) fn conv1d(
        isa: Isa,
        w: &[f32],
        (cout, cin, k): (usize, usize, usize),
        bias: Option<&[f32]>,
    ) -> Self {
        Self::new(
            isa,
            (k, cin, cout),
            |j, ci, co| w[(co * cin + ci) * k + j],
            bias,
        )
    }

    /// Input channels.
    pub(crate) fn cin(&self) -> usize {
        self.cin
    }

    /// Output channels.
    pub(crate) fn cout(&self) -> usize {
        self.cout
    }
}

/// A candle convolution's weights on the host: `[cout, cin, k]` row-major,
/// the bias, and the dimensions.
pub(crate) struct Host {
    pub w: Vec<f32>,
    pub b: Option<Vec<f32>>,
    pub dims: (usize, usize, usize),
}

impl Host {
    pub(crate) fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self, crate::Error> {
        let dims = weight.dims3()?;
        let w = weight.flatten_all()?.to_vec1()?;
        let b = match bias {
            Some(b) => Some(b.to_vec1()?),
            None => None,
        };
        Ok(Self { w, b, dims })
    }
}

/// A speaker conditioning: a 1×1 convolution applied to the speaker
/// embedding, constant in time, so computed once per call as `b + W·g`.
#[derive(Debug, Clone)]
pub(crate) struct Conditioning {
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Conditioning {
    pub(crate) fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self, crate::Error> {
        let Host { w, b, dims } = Host::new(weight, bias)?;
        Ok(Self {
            w,
            b: b.unwrap_or_else(|| vec![0.0; dims.0]),
        })
    }

    /// `b + W·g` for the embedding `g`.
    pub(crate) fn at(&self, g: &[f32]) -> Vec<f32> {
        let gin = g.len().max(1);
        self.b
            .iter()
            .zip(self.w.chunks_exact(gin))
            .map(|(b, w)| b + dot(w, g))
            .collect()
    }
}

/// Where one convolution reads and writes.
pub(crate) struct ConvIo<'a> {
    /// Input rows of `cin` values.
    pub input: &'a [f32],
    /// The input row tap offset 0 reads for output row 0.
    pub first: usize,
    /// Per tap, the row offset from `first + m` (as many as the weights have taps).
    pub offsets: &'a [usize],
    /// Output rows to compute.
    pub rows: usize,
    /// Output row `m` is `out[m * out_stride..][..cout]`.
    pub out: &'a mut [f32],
    pub out_stride: usize,
    /// Added to the output: row `m` is `resid[m * resid_stride..][..cout]`.
    pub resid: Option<(&'a [f32], usize)>,
    /// Whether the output's previous value is added (`out += conv`).
    pub accumulate: bool,
}

/// A convolution whose rows do not fit its buffers: a bug in the caller, told
/// rather than read out of bounds.
#[derive(Debug, thiserror::Error)]
#[error("convolution buffers too small: {0}")]
pub(crate) struct Bounds(String);

impl From<Bounds> for crate::Error {
    fn from(b: Bounds) -> Self {
        crate::Error::Config(b.to_string())
    }
}

/// Runs `weights` over `io` (see [`ConvIo`]).
pub(crate) fn conv(weights: &ConvWeights, io: ConvIo<'_>) -> Result<(), Bounds> {
    check(weights, &io)?;
    match weights.isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if weights.nw == 64 => {
            // SAFETY: `ConvWeights::new` packs for `Isa::Avx512` only when
            // `Isa::available` found avx512f on this CPU.
            unsafe { avx512::conv_6x64(weights, io) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: as above.
            unsafe { avx512::conv_12x32(weights, io) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: packed for `Isa::Avx2` only when avx2 and fma were found.
            unsafe { avx2::conv_6x16(weights, io) }
        }
        _ => {
            let (cin, offsets) = (weights.cin, io.offsets);
            let fma = |a: f32, b: f32, c: f32| a * b + c;
            run::<4, 8>(
                weights,
                io,
                |wb, bias, x, out| portable_tile(wb, bias, x, cin, offsets, fma, out),
                |wb, bias, x, out| portable_tile(wb, bias, x, cin, offsets, fma, out),
            )
        }
    }
    Ok(())
}

fn check(w: &ConvWeights, io: &ConvIo<'_>) -> Result<(), Bounds> {
    if io.rows == 0 {
        return Ok(());
    }
    if io.offsets.len() != w.taps {
        return Err(Bounds(format!(
            "{} offsets for {} taps",
            io.offsets.len(),
            w.taps
        )));
    }
    let last_in = io.first + io.rows - 1 + io.offsets.iter().max().copied().unwrap_or(0);
    if (last_in + 1) * w.cin > io.input.len() {
        return Err(Bounds(format!(
            "input row {last_in} of {} channels past {} values",
            w.cin,
            io.input.len()
        )));
    }
    let need = |stride: usize| (io.rows - 1) * stride + w.cout;
    if need(io.out_stride) > io.out.len() || io.out_stride < w.cout {
        return Err(Bounds(format!(
            "{} output rows at stride {} past {} values",
            io.rows,
            io.out_stride,
            io.out.len()
        )));
    }
    if let Some((r, stride)) = io.resid {
        if need(stride) > r.len() {
            return Err(Bounds(format!(
                "{} residual rows at stride {stride} past {} values",
                io.rows,
                r.len()
            )));
        }
    }
    Ok(())
}

/// A module of vector convolutions for one instruction set: `$feature` to
/// enable, `$v` the vector type of `$lanes` floats and its intrinsics, and
/// per entry point (`$conv`) the tile: `$mr` rows × `$nv` vectors (`$nw`
/// channels). The module's `tile` is an `unsafe fn`: it reads through raw
/// pointers within lengths its caller ([`run`], after [`check`]) guarantees.
macro_rules! vector_convs {
    (
        $module:ident, $feature:literal, $v:ty, $lanes:literal,
        $zero:ident, $load:ident, $splat:ident, $fmadd:ident, $store:ident,
        $(($conv:ident, $mr:literal, $nv:literal, $nw:literal)),+ $(,)?
    ) => {
        #[cfg(target_arch = "x86_64")]
        mod $module {
            use std::arch::x86_64::*;

            use super::{run, ConvIo, ConvWeights};

            $(
                #[target_feature(enable = $feature)]
                pub(super) fn $conv(w: &ConvWeights, io: ConvIo<'_>) {
                    let (cin, offsets) = (w.cin, io.offsets);
                    run::<$mr, $nw>(
                        w,
                        io,
                        // SAFETY: the feature is enabled in this function (its
                        // caller checked the CPU); `run` hands over the rows
                        // and weights the taps read.
                        |wb, bias, x, out| unsafe {
                            tile::<$mr, $nv, $nw>(wb, bias, x, cin, offsets, out)
                        },
                        // SAFETY: as above.
                        |wb, bias, x, out| unsafe {
                            tile::<1, $nv, $nw>(wb, bias, x, cin, offsets, out)
                        },
                    );
                }
            )+

            /// `MR` rows × `NV` vectors of channels. `rows` starts at the
            /// tile's first row (tap offset 0) and holds every row the taps
            /// reach; `wb` holds `offsets.len() × cin × NW` weights.
            ///
            /// # Safety
            /// The feature must be available, `NW == lanes · NV`, and the
            /// lengths above hold.
            #[inline(always)]
            unsafe fn tile<const MR: usize, const NV: usize, const NW: usize>(
                wb: &[f32],
                bias: &[f32; NW],
                rows: &[f32],
                cin: usize,
                offsets: &[usize],
                out: &mut [[f32; NW]; MR],
            ) {
                // SAFETY (whole body): loads stay inside `wb`, `bias` and
                // `rows` by the lengths the caller checked; stores inside `out`.
                unsafe {
                    let mut acc: [[$v; NV]; MR] = [[$zero(); NV]; MR];
                    for a in acc.iter_mut() {
                        for (v, a) in a.iter_mut().enumerate() {
                            *a = $load(bias.as_ptr().add($lanes * v));
                        }
                    }
                    let wp = wb.as_ptr();
                    let xp = rows.as_ptr();
                    for (j, &off) in offsets.iter().enumerate() {
                        let wt = wp.add(j * cin * NW);
                        let xt = xp.add(off * cin);
                        for ci in 0..cin {
                            let mut w: [$v; NV] = [$zero(); NV];
                            for (v, w) in w.iter_mut().enumerate() {
                                *w = $load(wt.add(ci * NW + $lanes * v));
                            }
                            for (m, a) in acc.iter_mut().enumerate() {
                                let x = $splat(*xt.add(m * cin + ci));
                                for v in 0..NV {
                                    a[v] = $fmadd(x, w[v], a[v]);
                                }
                            }
                        }
                    }
                    for (a, o) in acc.iter().zip(out.iter_mut()) {
                        for (v, a) in a.iter().enumerate() {
                            $store(o.as_mut_ptr().add($lanes * v), *a);
                        }
                    }
                }
            }
        }
    };
}

vector_convs!(
    avx512,
    "avx512f,fma",
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps,
    (conv_6x64, 6, 4, 64),
    (conv_12x32, 12, 2, 32),
);

vector_convs!(
    avx2,
    "avx2,fma",
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps,
    (conv_6x16, 6, 2, 16),
);

/// The convolution with tiles of `MR` rows × `NW` channels. `tile` computes
/// `MR` rows and `one` a single row, both from the bias, given the weight
/// block and the input rows from the tile's first (at tap offset 0) to the
/// last any tap reads; [`check`] has made sure those rows exist. Inlined into
/// each feature-specific caller, so it is compiled for that feature.
#[inline(always)]
fn run<const MR: usize, const NW: usize>(
    w: &ConvWeights,
    io: ConvIo<'_>,
    tile: impl Fn(&[f32], &[f32; NW], &[f32], &mut [[f32; NW]; MR]),
    one: impl Fn(&[f32], &[f32; NW], &[f32], &mut [[f32; NW]; 1]),
) {
    let ConvIo {
        input,
        first,
        offsets,
        rows,
        out,
        out_stride,
        resid,
        accumulate,
    } = io;
    let cin = w.cin;
    let reach = offsets.iter().max().copied().unwrap_or(0);
    let block_len = w.taps * cin * NW;
    let mut write = |row: usize, co0: usize, a: &[f32; NW]| {
        let width = NW.min(w.cout - co0);
        let o = &mut out[row * out_stride + co0..][..width];
        if accumulate {
            for (o, a) in o.iter_mut().zip(a) {
                *o += a;
            }
        } else {
            o.copy_from_slice(&a[..width]);
        }
        if let Some((r, stride)) = resid {
            for (o, r) in o.iter_mut().zip(&r[row * stride + co0..][..width]) {
                *o += r;
            }
        }
    };
    for (b, (wb, bias)) in
        w.w.chunks_exact(block_len)
            .zip(w.bias.chunks_exact(NW))
            .enumerate()
    {
        let co0 = b * NW;
        let Ok(bias) = <&[f32; NW]>::try_from(bias) else {
            return;
        };
        if rows < MR {
            let mut acc = [[0f32; NW]; 1];
            for m in 0..rows {
                let x = &input[(first + m) * cin..(first + m + 1 + reach) * cin];
                one(wb, bias, x, &mut acc);
                write(m, co0, &acc[0]);
            }
            continue;
        }
        let mut acc = [[0f32; NW]; MR];
        let mut m0 = 0;
        while m0 < rows {
            // The last tile is moved back to end at the last row; the rows
            // it shares with the one before are not written twice.
            let start = m0.min(rows - MR);
            let x = &input[(first + start) * cin..(first + start + MR + reach) * cin];
            tile(wb, bias, x, &mut acc);
            for (m, a) in acc.iter().enumerate().skip(m0 - start) {
                write(start + m, co0, a);
            }
            m0 = start + MR;
        }
    }
}

/// The portable tile: `MR` rows × `NW` channels with `fma(a, b, c) = a·b + c`.
#[inline(always)]
fn portable_tile<const MR: usize, const NW: usize>(
    wb: &[f32],
    bias: &[f32; NW],
    rows: &[f32],
    cin: usize,
    offsets: &[usize],
    fma: impl Fn(f32, f32, f32) -> f32,
    out: &mut [[f32; NW]; MR],
) {
    let mut acc = [*bias; MR];
    for (&off, wt) in offsets.iter().zip(wb.chunks_exact(cin * NW)) {
        for (ci, wv) in wt.chunks_exact(NW).enumerate() {
            let Ok(wv) = <&[f32; NW]>::try_from(wv) else {
                continue;
            };
            for (m, a) in acc.iter_mut().enumerate() {
                let x = rows[(m + off) * cin + ci];
                for c in 0..NW {
                    a[c] = fma(x, wv[c], a[c]);
                }
            }
        }
    }
    *out = acc;
}

/// A convolution over `rows` output rows (`out` rows `out_stride` apart,
/// `resid` rows added when given), the rows split across the cores.
#[allow(clippy::too_many_arguments)]
pub(crate) fn par_conv(
    w: &ConvWeights,
    input: &[f32],
    first: usize,
    offsets: &[usize],
    rows: usize,
    out: &mut [f32],
    out_stride: usize,
    accumulate: bool,
    resid: Option<(&[f32], usize)>,
) -> Result<(), Bounds> {
    if rows == 0 {
        return Ok(());
    }
    let per = rows.div_ceil(rayon::current_num_threads().max(1)).max(16);
    let cout = w.cout();
    out.par_chunks_mut(per * out_stride)
        .enumerate()
        .take(rows.div_ceil(per))
        .try_for_each(|(i, out)| {
            let m0 = i * per;
            let n = per.min(rows - m0);
            if out.len() < (n - 1) * out_stride + cout {
                return Err(Bounds("output too small for its rows".into()));
            }
            let resid = match resid {
                Some((r, stride)) => match r.get(m0 * stride..) {
                    Some(r) => Some((r, stride)),
                    None => return Err(Bounds("residual too small for its rows".into())),
                },
                None => None,
            };
            conv(
                w,
                ConvIo {
                    input,
                    first: first + m0,
                    offsets,
                    rows: n,
                    out,
                    out_stride,
                    resid,
                    accumulate,
                },
            )
        })
}

/// `dst[i] = leaky_relu(src[i] * scale, slope)`.
pub(crate) fn leaky_into(dst: &mut [f32], src: &[f32], scale: f32, slope: f32) {
    for (d, s) in dst.iter_mut().zip(src) {
        let v = s * scale;
        *d = if v < 0.0 { v * slope } else { v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for test data.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// The same convolution written out plainly.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        w: &[f32],
        (cout, cin, k): (usize, usize, usize),
        bias: &[f32],
        input: &[f32],
        first: usize,
        offsets: &[usize],
        rows: usize,
    ) -> Vec<f32> {
        let mut out = vec![0f32; rows * cout];
        for m in 0..rows {
            for co in 0..cout {
                let mut s = f64::from(bias[co]);
                for j in 0..k {
                    for ci in 0..cin {
                        s += f64::from(input[(first + m + offsets[j]) * cin + ci])
                            * f64::from(w[(co * cin + ci) * k + j]);
                    }
                }
                out[m * cout + co] = s as f32;
            }
        }
        out
    }

    #[test]
    fn every_tile_matches_the_plain_convolution() {
        // Channel counts that fill tiles, leave remainders and span blocks;
        // row counts that leave a partial row tile.
        for isa in Isa::available() {
            for &(cout, cin, k, dil) in &[
                (32, 32, 3, 1),
                (64, 64, 5, 6),
                (128, 128, 7, 3),
                (20, 7, 3, 2),
                (1, 32, 7, 1),
                (100, 40, 2, 1),
            ] {
                let rows = 37;
                let offsets: Vec<usize> = (0..k).map(|j| j * dil).collect();
                let first = 2;
                let in_rows = first + rows + (k - 1) * dil;
                let w = values(cout * cin * k, 1);
                let bias = values(cout, 2);
                let input = values(in_rows * cin, 3);
                let packed = ConvWeights::conv1d(isa, &w, (cout, cin, k), Some(&bias));
                let want = reference(&w, (cout, cin, k), &bias, &input, first, &offsets, rows);
                // Output rows spread at a stride, plus a residual, accumulated.
                let stride = cout + 3;
                let prior = values(rows * stride, 4);
                let resid = values(rows * cout, 5);
                let mut out = prior.clone();
                conv(
                    &packed,
                    ConvIo {
                        input: &input,
                        first,
                        offsets: &offsets,
                        rows,
                        out: &mut out,
                        out_stride: stride,
                        resid: Some((&resid, cout)),
                        accumulate: true,
                    },
                )
                .unwrap();
                for m in 0..rows {
                    for co in 0..cout {
                        let expect =
                            want[m * cout + co] + prior[m * stride + co] + resid[m * cout + co];
                        let got = out[m * stride + co];
                        assert!(
                            (got - expect).abs() <= 1e-4 * (1.0 + expect.abs()),
                            "{isa:?} {cout}x{cin}x{k}: row {m} channel {co}: {got} vs {expect}"
                        );
                    }
                    // The gap between strided rows is left alone.
                    for co in cout..stride {
                        assert_eq!(out[m * stride + co], prior[m * stride + co]);
                    }
                }
            }
        }
    }

    #[test]
    fn buffers_too_small_are_refused() {
        let isa = Isa::detect();
        let packed = ConvWeights::conv1d(isa, &[0.0; 2 * 2 * 3], (2, 2, 3), None);
        let input = vec![0f32; 2 * 10];
        let mut out = vec![0f32; 2 * 8];
        fn io<'a>(input: &'a [f32], out: &'a mut [f32], rows: usize) -> ConvIo<'a> {
            ConvIo {
                input,
                first: 0,
                offsets: &[0, 1, 2],
                rows,
                out,
                out_stride: 2,
                resid: None,
                accumulate: false,
            }
        }
        assert!(conv(&packed, io(&input, &mut out, 8)).is_ok());
        assert!(
            conv(&packed, io(&input, &mut out, 9)).is_err(),
            "input past the end"
        );
        let mut short = vec![0f32; 2 * 7];
        assert!(
            conv(&packed, io(&input, &mut short, 8)).is_err(),
            "output past the end"
        );
    }
}
