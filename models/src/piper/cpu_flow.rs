//! VITS's residual-coupling flow, in reverse, on the CPU over channels-last
//! rows, with the convolutions of [`crate::cpu::conv`] split across cores.
//!
//! Per coupling layer the channel order is reversed, then the second half
//! of the channels loses `post(WaveNet(pre(first half)))`. The WaveNet's
//! residual and skip outputs are two convolutions added straight into their
//! buffers, and `post` is packed negated and added into the second half, so
//! no intermediate but the gate's input is written.

use rayon::prelude::*;

use super::vits::CouplingLayer;
use crate::cpu::conv::{par_conv, Conditioning, ConvWeights, Host, Isa};
use crate::cpu::math::gated_tanh;
use crate::Error;

type Result<T> = std::result::Result<T, Error>;

/// One WaveNet layer: the dilated convolution to the gate's two halves, and
/// the 1×1 convolutions to the residual (all but the last) and skip sums.
#[derive(Debug, Clone)]
struct Layer {
    gate: ConvWeights,
    offsets: Vec<usize>,
    pad: usize,
    res: Option<ConvWeights>,
    skip: ConvWeights,
}

#[derive(Debug, Clone)]
struct Coupling {
    /// `pre` over all channels of a row (zero weights past the first half).
    pre: ConvWeights,
    layers: Vec<Layer>,
    /// The speaker conditioning of every layer (`2·hidden` values each).
    cond: Option<Conditioning>,
    /// `-post`.
    post: ConvWeights,
    hidden: usize,
    half: usize,
}

/// The flow, ready to run on the CPU.
#[derive(Debug, Clone)]
pub(crate) struct CpuFlow {
    layers: Vec<Coupling>,
    channels: usize,
}

impl CpuFlow {
    /// Packs the coupling layers (in the order they were loaded).
    pub(crate) fn new(flows: &[CouplingLayer]) -> Result<Self> {
        let isa = Isa::detect();
        let mut layers = Vec::new();
        let mut channels = 0;
        for f in flows {
            let half = f.half;
            channels = 2 * half;
            let hidden = f.enc.hidden;
            let Host {
                w,
                b,
                dims: (cout, cin, _),
            } = Host::new(&f.pre.w, f.pre.b.as_ref())?;
            let pre = ConvWeights::new(
                isa,
                (1, 2 * half, cout),
                |_, ci, co| if ci < cin { w[co * cin + ci] } else { 0.0 },
                b.as_deref(),
            );
            let Host {
                w,
                b,
                dims: (cout, cin, _),
            } = Host::new(&f.post.w, f.post.b.as_ref())?;
            let neg_b: Option<Vec<f32>> = b.map(|b| b.iter().map(|v| -v).collect());
            let post = ConvWeights::new(
                isa,
                (1, cin, cout),
                |_, ci, co| -w[co * cin + ci],
                neg_b.as_deref(),
            );
            let n = f.enc.in_layers.len();
            let mut wl = Vec::new();
            for (i, (inl, rs)) in f.enc.in_layers.iter().zip(&f.enc.res_skip).enumerate() {
                if inl.groups != 1 || 2 * inl.padding != (inl.w.dim(2)? - 1) * inl.dilation {
                    return Err(Error::Config(
                        "a WaveNet layer the CPU flow does not take".into(),
                    ));
                }
                let Host { w, b, dims } = Host::new(&inl.w, inl.b.as_ref())?;
                let gate = ConvWeights::conv1d(isa, &w, dims, b.as_deref());
                let Host {
                    w,
                    b,
                    dims: (cout, cin, _),
                } = Host::new(&rs.w, rs.b.as_ref())?;
                let b = b.unwrap_or_else(|| vec![0.0; cout]);
                let part = |from: usize| {
                    ConvWeights::new(
                        isa,
                        (1, cin, hidden),
                        |_, ci, co| w[(from + co) * cin + ci],
                        Some(&b[from..from + hidden]),
                    )
                };
                let (res, skip) = if i + 1 < n {
                    (Some(part(0)), part(hidden))
                } else {
                    (None, part(0))
                };
                wl.push(Layer {
                    gate,
                    offsets: (0..dims.2).map(|j| j * inl.dilation).collect(),
                    pad: inl.padding,
                    res,
                    skip,
                });
            }
            let cond = f
                .enc
                .cond
                .as_ref()
                .map(|c| Conditioning::new(&c.w, c.b.as_ref()))
                .transpose()?;
            layers.push(Coupling {
                pre,
                layers: wl,
                cond,
                post,
                hidden,
                half,
            });
        }
        Ok(Self { layers, channels })
    }

    /// The flow in reverse over `z`, `rows` rows of `channels` values, in
    /// place; `g` the speaker embedding when the voice has several.
    pub(crate) fn reverse(&self, z: &mut [f32], rows: usize, g: Option<&[f32]>) -> Result<()> {
        let c = self.channels;
        if rows == 0 || z.len() < rows * c {
            return Ok(());
        }
        for layer in self.layers.iter().rev() {
            for row in z.chunks_exact_mut(c).take(rows) {
                row.reverse();
            }
            layer.reverse(z, rows, g)?;
        }
        Ok(())
    }
}

impl Coupling {
    fn reverse(&self, z: &mut [f32], rows: usize, g: Option<&[f32]>) -> Result<()> {
        let h = self.hidden;
        let c = 2 * self.half;
        let pad = self.layers.iter().map(|l| l.pad).max().unwrap_or(0);
        // x: the WaveNet's state with `pad` zero rows around; skip: its output.
        let mut x = vec![0f32; (rows + 2 * pad) * h];
        let mut skip = vec![0f32; rows * h];
        let mut gate = vec![0f32; rows * 2 * h];
        let mut acts = vec![0f32; rows * h];
        par_conv(
            &self.pre,
            z,
            0,
            &[0],
            rows,
            &mut x[pad * h..],
            h,
            false,
            None,
        )?;
        let cond: Option<Vec<f32>> = match (&self.cond, g) {
            (Some(c), Some(g)) => Some(c.at(g)),
            _ => None,
        };
        for (i, l) in self.layers.iter().enumerate() {
            let offsets: Vec<usize> = l.offsets.iter().map(|o| o + pad - l.pad).collect();
            par_conv(
                &l.gate,
                &x,
                0,
                &offsets,
                rows,
                &mut gate,
                2 * h,
                false,
                None,
            )?;
            let cond = cond.as_ref().map(|c| &c[i * 2 * h..(i + 1) * 2 * h]);
            let per = rows.div_ceil(rayon::current_num_threads().max(1)).max(1);
            gate.par_chunks_mut(per * 2 * h)
                .zip(acts.par_chunks_mut(per * h))
                .for_each(|(gate, acts)| {
                    for (g, a) in gate.chunks_exact_mut(2 * h).zip(acts.chunks_exact_mut(h)) {
                        if let Some(c) = cond {
                            for (g, c) in g.iter_mut().zip(c) {
                                *g += c;
                            }
                        }
                        let (t, s) = g.split_at(h);
                        gated_tanh(t, s, a);
                    }
                });
            if let Some(res) = &l.res {
                par_conv(res, &acts, 0, &[0], rows, &mut x[pad * h..], h, true, None)?;
            }
            par_conv(&l.skip, &acts, 0, &[0], rows, &mut skip, h, true, None)?;
        }
        // The second half loses post(skip): `post` is packed negated.
        par_conv(
            &self.post,
            &skip,
            0,
            &[0],
            rows,
            &mut z[self.half..],
            c,
            true,
            None,
        )?;
        Ok(())
    }
}
