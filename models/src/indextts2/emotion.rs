//! Emotion control by vector (`infer_v2.py`, `emo_vector`): eight weights
//! (happy, angry, sad, afraid, disgusted, melancholic, surprised, calm) pick
//! and mix rows of the emotion matrix (`feat2.pt`, split per emotion by
//! `emo_num`): for each emotion, the row whose speaker-matrix twin
//! (`feat1.pt`) is most cosine-similar to the CAMPPlus style. The mix is then
//! blended with the GPT's own emotion vector:
//! `emovec = Σ wᵢ · rowᵢ + (1 − Σ wᵢ) · emovec`.
//!
//! Quirks kept: the vector is scaled by `emo_alpha` (clamped to 0..1) and
//! truncated to 4 decimals when the scale is not 1; [`normalize_emo_vec`]
//! (per-emotion bias, sum capped at 0.8) is what the web UI applies before
//! calling `infer`, which itself does not.

use candle_core::{DType, Tensor, D};

use super::{Error, Result};

/// The eight emotions, in the order of the vector.
pub const EMOTIONS: [&str; 8] = [
    "happy",
    "angry",
    "sad",
    "afraid",
    "disgusted",
    "melancholic",
    "surprised",
    "calm",
];

/// Rows per emotion in the official matrices (`emo_num` of config.yaml).
pub const EMO_NUM: [usize; 8] = [3, 17, 2, 8, 4, 5, 10, 24];

/// The web UI's `normalize_emo_vec`: multiply by the per-emotion bias
/// `[0.9375, 0.875, 1, 1, 0.9375, 0.9375, 0.6875, 0.5625]` and scale down so
/// the sum is at most 0.8 (Python floats).
pub fn normalize_emo_vec(v: &[f64; 8]) -> [f64; 8] {
    const BIAS: [f64; 8] = [0.9375, 0.875, 1.0, 1.0, 0.9375, 0.9375, 0.6875, 0.5625];
    let mut out = [0f64; 8];
    for (o, (x, b)) in out.iter_mut().zip(v.iter().zip(BIAS)) {
        *o = x * b;
    }
    let sum: f64 = out.iter().sum();
    if sum > 0.8 {
        let scale = 0.8 / sum;
        for o in &mut out {
            *o *= scale;
        }
    }
    out
}

/// `infer`'s scaling of the vector by `emo_alpha`: clamped to 0..1, and when
/// not 1, `int(x * scale * 10000) / 10000` (truncated, in f64).
pub fn scale_emo_vector(v: &[f64; 8], emo_alpha: f64) -> [f64; 8] {
    let scale = emo_alpha.clamp(0.0, 1.0);
    if scale == 1.0 {
        return *v;
    }
    let mut out = [0f64; 8];
    for (o, x) in out.iter_mut().zip(v) {
        *o = (x * scale * 10000.0).trunc() / 10000.0;
    }
    out
}

/// The speaker and emotion matrices (`feat1.pt`, `feat2.pt`), split per emotion.
#[derive(Debug, Clone)]
pub struct EmotionMatrices {
    spk: Vec<Tensor>,
    emo: Vec<Tensor>,
}

impl EmotionMatrices {
    /// From the two matrices (`[Σ emo_num, style]` and `[Σ emo_num, model]`)
    /// and the rows per emotion.
    pub fn new(spk: &Tensor, emo: &Tensor, emo_num: &[usize]) -> Result<Self> {
        let rows: usize = emo_num.iter().sum();
        if emo_num.len() != 8 || spk.dim(0)? != rows || emo.dim(0)? != rows {
            return Err(Error::Config(format!(
                "emotion matrices {:?} / {:?} do not split into {emo_num:?}",
                spk.dims(),
                emo.dims()
            )));
        }
        let mut start = 0;
        let (mut s, mut e) = (Vec::new(), Vec::new());
        for &n in emo_num {
            s.push(spk.narrow(0, start, n)?.to_dtype(DType::F32)?);
            e.push(emo.narrow(0, start, n)?.to_dtype(DType::F32)?);
            start += n;
        }
        Ok(Self { spk: s, emo: e })
    }

    /// For each emotion, the row most cosine-similar to `style` `[1, style]`.
    pub fn nearest_rows(&self, style: &Tensor) -> Result<Vec<usize>> {
        let q = style.to_dtype(DType::F32)?;
        let qn = q.sqr()?.sum_keepdim(D::Minus1)?; // [1, 1]
        self.spk
            .iter()
            .map(|m| {
                let dot = m.broadcast_mul(&q)?.sum(D::Minus1)?; // [n]
                let mn = m.sqr()?.sum(D::Minus1)?;
                // torch: x·y / sqrt(max(|x|²|y|², eps²)), eps 1e-8.
                let denom = mn.broadcast_mul(&qn.squeeze(0)?)?.maximum(1e-16)?.sqrt()?;
                let cos = (dot / denom)?;
                Ok(cos.argmax(0)?.to_scalar::<u32>()? as usize)
            })
            .collect()
    }

    /// `Σ wᵢ · emo[i][row of emotion i]` → `[1, model]`, `weights` in f32 as
    /// the reference's tensor.
    pub fn mix(&self, style: &Tensor, weights: &[f64; 8]) -> Result<Tensor> {
        let rows = self.nearest_rows(style)?;
        let picked = self
            .emo
            .iter()
            .zip(&rows)
            .map(|(m, &r)| m.narrow(0, r, 1))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let picked = Tensor::cat(&picked, 0)?; // [8, model]
        let w: Vec<f32> = weights.iter().map(|&x| x as f32).collect();
        let w = Tensor::from_vec(w, (8, 1), picked.device())?;
        Ok(picked.broadcast_mul(&w)?.sum_keepdim(0)?)
    }

    /// The emotion vector the GPT receives: `mix + (1 − Σ w) · emovec`, with
    /// `emovec` `[1, model]` from the GPT's `merge_emovec`.
    pub fn blend(&self, style: &Tensor, weights: &[f64; 8], emovec: &Tensor) -> Result<Tensor> {
        let mix = self.mix(style, weights)?;
        let sum: f32 = weights.iter().map(|&x| x as f32).sum();
        Ok((mix + (emovec * f64::from(1.0 - sum))?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_ui_normalisation_like_python() {
        // Python: normalize_emo_vec([1, 1, 0, 0, 0, 0, 0.5, 0.2]).
        let v = normalize_emo_vec(&[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.2]);
        assert_eq!(
            v,
            [
                0.3305785123966943,
                0.30853994490358133,
                0.0,
                0.0,
                0.0,
                0.0,
                0.12121212121212123,
                0.039669421487603315
            ]
        );
        // Under the cap, only the bias applies.
        assert_eq!(
            normalize_emo_vec(&[0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0])[2],
            0.5
        );
    }

    #[test]
    fn alpha_scaling_truncates() {
        let v = [0.1, 0.2, 0.05, 0.0, 0.0, 0.0, 0.0, 0.3];
        assert_eq!(scale_emo_vector(&v, 1.0), v);
        assert_eq!(scale_emo_vector(&v, 3.0), v);
        let s = scale_emo_vector(&v, 0.7);
        assert_eq!(&s[..3], &[0.0699, 0.1399, 0.0349]);
        assert_eq!(scale_emo_vector(&v, -1.0), [0.0; 8]);
    }
}
