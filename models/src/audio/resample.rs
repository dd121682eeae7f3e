//! Resampling: torchaudio's `Resample` (windowed-sinc, Hann window,
//! `lowpass_filter_width` 6, rolloff 0.99), which IndexTTS2's reference uses
//! to bring a speaker clip to 22,050 and 16,000 Hz, and which the node uses to
//! join voices of different rates.

use std::f64::consts::PI;

use crate::Error;

type Result<T> = std::result::Result<T, Error>;

/// torchaudio's `transforms.Resample(orig, new)` (`sinc_interp_hann`, width 6,
/// rolloff 0.99, kernel computed in f64 and kept in f32).
#[derive(Debug, Clone)]
pub struct Resampler {
    orig: usize,
    new: usize,
    width: usize,
    /// `[new][2 * width + orig]` (the rates divided by their gcd).
    kernel: Vec<Vec<f32>>,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Resampler {
    /// A resampler from `orig_hz` to `new_hz`.
    pub fn new(orig_hz: u32, new_hz: u32) -> Result<Self> {
        if orig_hz == 0 || new_hz == 0 {
            return Err(Error::Config("sample rates must be positive".into()));
        }
        let g = gcd(orig_hz as usize, new_hz as usize);
        let (orig, new) = (orig_hz as usize / g, new_hz as usize / g);
        let lowpass = 6.0f64;
        let base = orig.min(new) as f64 * 0.99;
        let width = (lowpass * orig as f64 / base).ceil() as usize;
        let scale = base / orig as f64;
        let taps = 2 * width + orig;
        let kernel = (0..new)
            .map(|j| {
                // torch: arange(0, -new, -1) is int64, so `/ new` is an f32 division.
                let shift = f64::from(-(j as f32) / new as f32);
                (0..taps)
                    .map(|i| {
                        let idx = (i as f64 - width as f64) / orig as f64;
                        let mut t = (shift + idx) * base;
                        t = t.clamp(-lowpass, lowpass);
                        let window = (t * PI / lowpass / 2.0).cos().powi(2);
                        let t = t * PI;
                        let k = if t == 0.0 { 1.0 } else { t.sin() / t };
                        (k * (window * scale)) as f32
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            orig,
            new,
            width,
            kernel,
        })
    }

    /// Resamples `x`: `ceil(len * new / orig)` samples (the input itself when
    /// the rates are equal).
    pub fn process(&self, x: &[f32]) -> Vec<f32> {
        if self.orig == self.new {
            return x.to_vec();
        }
        let len = x.len();
        let target = (self.new * len).div_ceil(self.orig);
        // Zero padding of `width` on the left and `width + orig` on the right,
        // then a stride-`orig` convolution with `new` filters, interleaved.
        let at = |i: isize| -> f64 {
            if i < 0 || i as usize >= len {
                0.0
            } else {
                f64::from(x[i as usize])
            }
        };
        (0..target)
            .map(|o| {
                let (frame, phase) = (o / self.new, o % self.new);
                let start = (frame * self.orig) as isize - self.width as isize;
                let acc: f64 = self.kernel[phase]
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| f64::from(k) * at(start + i as isize))
                    .sum();
                acc as f32
            })
            .collect()
    }
}
