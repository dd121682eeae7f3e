//! s2mel's conditional flow matching at inference (`CFM.inference` /
//! `solve_euler`): Euler steps from noise at t = 0 to the mel at t = 1 with
//! classifier-free guidance, the prompt mel given as context and its frames
//! of the state kept at zero.
//!
//! The noise is an input: the reference draws it with `torch.randn` (its
//! vectorised CPU sampler), which a port does not reproduce.

use candle_core::Tensor;

use super::dit::Dit;
use super::{Error, Result};

/// `torch.linspace(0, 1, steps + 1)` in f32, as ATen computes it (from the
/// start in the first half, from the end in the second).
pub fn linspace01(steps: usize) -> Vec<f32> {
    let n = steps + 1;
    if n < 2 {
        return vec![0.0; n];
    }
    let step = 1f32 / steps as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                step * i as f32
            } else {
                1.0 - step * (n - 1 - i) as f32
            }
        })
        .collect()
}

/// The settings `infer_v2.py` passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CfmParams {
    /// Euler steps (25).
    pub steps: usize,
    /// Classifier-free guidance rate (0.7).
    pub cfg_rate: f64,
}

impl Default for CfmParams {
    fn default() -> Self {
        Self {
            steps: 25,
            cfg_rate: 0.7,
        }
    }
}

/// Zeroes the first `n` frames of `[1, c, t]`.
fn zero_prefix(x: &Tensor, n: usize) -> Result<Tensor> {
    let t = x.dim(2)?;
    if n == 0 {
        return Ok(x.clone());
    }
    let zeros = x.narrow(2, 0, n)?.zeros_like()?;
    Ok(Tensor::cat(&[&zeros, &x.narrow(2, n, t - n)?], 2)?)
}

/// Runs the flow matching: `mu` `[1, t, content]` (prompt then target
/// conditions), `prompt` `[1, mels, p]` (the reference mel, `p < t`),
/// `style` `[1, style]`, `noise` `[1, mels, t]` → `[1, mels, t]` (the first `p`
/// frames zero, as in the reference's result).
pub fn inference(
    dit: &Dit,
    mu: &Tensor,
    prompt: &Tensor,
    style: &Tensor,
    noise: &Tensor,
    params: CfmParams,
) -> Result<Tensor> {
    let (b, mels, t) = noise.dims3()?;
    let p = prompt.dim(2)?;
    if b != 1 || p >= t || prompt.dims3()? != (1, mels, p) || mu.dims3()?.1 != t {
        return Err(Error::Config(format!(
            "flow matching: noise {:?}, prompt {:?}, mu {:?}",
            noise.dims(),
            prompt.dims(),
            mu.dims()
        )));
    }
    let prompt_x = prompt.pad_with_zeros(2, 0, t - p)?;
    let stacked_prompt = Tensor::cat(&[&prompt_x, &prompt_x.zeros_like()?], 0)?;
    let stacked_style = Tensor::cat(&[style, &style.zeros_like()?], 0)?;
    let stacked_mu = Tensor::cat(&[mu, &mu.zeros_like()?], 0)?;
    let span = linspace01(params.steps);
    let mut x = zero_prefix(noise, p)?;
    let mut t_now = span[0];
    for step in 1..span.len() {
        let dt = span[step] - span[step - 1];
        let stacked_x = Tensor::cat(&[&x, &x], 0)?;
        let tt = Tensor::new(&[t_now, t_now], x.device())?;
        let v = dit.forward(
            &stacked_x,
            &stacked_prompt,
            &tt,
            &stacked_style,
            &stacked_mu,
        )?;
        let (cond, uncond) = (v.narrow(0, 0, 1)?, v.narrow(0, 1, 1)?);
        let dphi = ((cond * (1.0 + params.cfg_rate))? - (uncond * params.cfg_rate)?)?;
        x = (x + (dphi * f64::from(dt))?)?;
        t_now += dt;
        x = zero_prefix(&x, p)?;
    }
    Ok(x)
}
