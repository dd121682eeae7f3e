//! Spectral features of audio, as the references compute them:
//! - [`mel_spectrogram`]: s2mel's log-mel spectrogram (`center=False` with
//!   reflect padding of `(n_fft - hop) / 2` on both sides, a periodic Hann
//!   window, magnitude `sqrt(re² + im² + 1e-9)`, librosa's Slaney mel filters,
//!   `ln(max(x, 1e-5))`), the prompt mel of the flow matching;
//! - [`kaldi_fbank`]: torchaudio's Kaldi-compatible log-mel filterbank
//!   (25 ms frames every 10 ms, DC removal, pre-emphasis 0.97, Povey window,
//!   power spectrum, no dither), the input of CAMPPlus.
//!
//! They run on the CPU on plain sample slices (FFTs in f64, roundings to f32
//! where the reference computes in f32) and return candle tensors.

use std::f64::consts::PI;

use candle_core::{Device, Tensor};

use crate::Error;

type Result<T> = std::result::Result<T, Error>;

// ---------------------------------------------------------------------------
// FFT
// ---------------------------------------------------------------------------

/// In-place iterative radix-2 FFT of a power-of-two length.
pub(crate) fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0usize;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * PI / len as f64;
        let half = len / 2;
        for start in (0..n).step_by(len) {
            for k in 0..half {
                let (s, c) = (ang * k as f64).sin_cos();
                let (a, b) = (start + k, start + k + half);
                let tr = re[b] * c - im[b] * s;
                let ti = re[b] * s + im[b] * c;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

/// `|X_k|²` for `k = 0..=n/2` of a real frame (power-of-two length).
fn power_spectrum(frame: &[f64]) -> Vec<f64> {
    let mut re = frame.to_vec();
    let mut im = vec![0.0; frame.len()];
    fft(&mut re, &mut im);
    (0..=frame.len() / 2)
        .map(|k| re[k] * re[k] + im[k] * im[k])
        .collect()
}

/// `torch.hann_window(n, periodic)` as ATen computes it, in f32:
/// `0.5 - 0.5 * cos(i * (2π / (N - 1)))` with `N = n + 1` when periodic.
fn hann_window_f32(n: usize, periodic: bool) -> Vec<f32> {
    let len = if periodic { n + 1 } else { n };
    let step = (2.0 * PI / (len as f64 - 1.0)) as f32;
    (0..n)
        .map(|i| {
            let c = (i as f32 * step).cos();
            c * -0.5 + 0.5
        })
        .collect()
}

fn check_pow2(what: &str, n: usize) -> Result<()> {
    if n < 2 || !n.is_power_of_two() {
        return Err(Error::Config(format!(
            "{what} must be a power of two, got {n}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// s2mel mel spectrogram
// ---------------------------------------------------------------------------

/// The spectrogram settings of s2mel (`s2mel.preprocess_params` in
/// config.yaml).
#[derive(Debug, Clone, PartialEq)]
pub struct MelConfig {
    /// Sample rate (Hz).
    pub sample_rate: u32,
    /// FFT size (a power of two).
    pub n_fft: usize,
    /// Window length (≤ `n_fft`; the window is centred in the FFT frame).
    pub win_length: usize,
    /// Hop.
    pub hop_length: usize,
    /// Mel bands.
    pub n_mels: usize,
    /// Lowest mel frequency (Hz).
    pub fmin: f64,
    /// Highest mel frequency (Hz); `None` for Nyquist. Note: the reference
    /// reads `fmax: "None"` as Nyquist and ANY other value as 8,000 Hz.
    pub fmax: Option<f64>,
}

impl MelConfig {
    /// The official IndexTTS2 settings: 22,050 Hz, FFT 1024, hop 256, 80 mels,
    /// 0 Hz to Nyquist.
    pub fn s2mel_22k() -> Self {
        Self {
            sample_rate: 22_050,
            n_fft: 1024,
            win_length: 1024,
            hop_length: 256,
            n_mels: 80,
            fmin: 0.0,
            fmax: None,
        }
    }
}

fn hz_to_mel_slaney(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

fn mel_to_hz_slaney(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// librosa's `filters.mel(sr, n_fft, n_mels, fmin, fmax)` (Slaney scale and
/// normalisation), as f32 `[n_mels][n_fft / 2 + 1]` with librosa's two f32
/// roundings.
pub fn librosa_mel_filters(
    sample_rate: f64,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
) -> Vec<Vec<f32>> {
    let n_freqs = n_fft / 2 + 1;
    let step = 1.0 / (n_fft as f64 * (1.0 / sample_rate));
    let fft_freqs: Vec<f64> = (0..n_freqs).map(|k| k as f64 * step).collect();
    let (lo, hi) = (hz_to_mel_slaney(fmin), hz_to_mel_slaney(fmax));
    let n_pts = n_mels + 2;
    let mel_step = (hi - lo) / (n_pts - 1) as f64;
    let mel_f: Vec<f64> = (0..n_pts)
        .map(|i| {
            let m = if i == n_pts - 1 {
                hi
            } else {
                lo + i as f64 * mel_step
            };
            mel_to_hz_slaney(m)
        })
        .collect();
    (0..n_mels)
        .map(|i| {
            let fdiff_lo = mel_f[i + 1] - mel_f[i];
            let fdiff_hi = mel_f[i + 2] - mel_f[i + 1];
            let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
            fft_freqs
                .iter()
                .map(|&f| {
                    let lower = -(mel_f[i] - f) / fdiff_lo;
                    let upper = (mel_f[i + 2] - f) / fdiff_hi;
                    let w = 0f64.max(lower.min(upper)) as f32;
                    (f64::from(w) * enorm) as f32
                })
                .collect()
        })
        .collect()
}

/// PyTorch's reflect padding of a 1-D signal (edge sample not repeated).
fn reflect_pad(x: &[f32], left: usize, right: usize) -> Result<Vec<f32>> {
    let n = x.len();
    if left >= n || right >= n {
        return Err(Error::Config(format!(
            "reflect padding of {left}/{right} needs more than {n} samples"
        )));
    }
    let mut out = Vec::with_capacity(n + left + right);
    out.extend((1..=left).rev().map(|i| x[i]));
    out.extend_from_slice(x);
    out.extend((1..=right).map(|i| x[n - 1 - i]));
    Ok(out)
}

/// s2mel's log-mel spectrogram of `samples`: `[1, n_mels, frames]` with
/// `frames = (len + 2 * ((n_fft - hop) / 2) - n_fft) / hop + 1`.
pub fn mel_spectrogram(samples: &[f32], cfg: &MelConfig, device: &Device) -> Result<Tensor> {
    check_pow2("n_fft", cfg.n_fft)?;
    if cfg.win_length > cfg.n_fft || cfg.win_length == 0 || cfg.hop_length == 0 {
        return Err(Error::Config(format!(
            "window {} / hop {} do not fit n_fft {}",
            cfg.win_length, cfg.hop_length, cfg.n_fft
        )));
    }
    let pad = (cfg.n_fft - cfg.hop_length) / 2;
    let y = reflect_pad(samples, pad, pad)?;
    if y.len() < cfg.n_fft {
        return Err(Error::Config(format!(
            "{} samples are too few for one frame of {}",
            samples.len(),
            cfg.n_fft
        )));
    }
    let frames = (y.len() - cfg.n_fft) / cfg.hop_length + 1;
    // torch.hann_window(win_length) (periodic), in f32, centred in n_fft.
    let mut window = vec![0f32; cfg.n_fft];
    let off = (cfg.n_fft - cfg.win_length) / 2;
    window[off..off + cfg.win_length].copy_from_slice(&hann_window_f32(cfg.win_length, true));
    let fmax = cfg.fmax.unwrap_or(f64::from(cfg.sample_rate) / 2.0);
    let filters = librosa_mel_filters(
        f64::from(cfg.sample_rate),
        cfg.n_fft,
        cfg.n_mels,
        cfg.fmin,
        fmax,
    );
    let n_freqs = cfg.n_fft / 2 + 1;
    let mut out = vec![0f32; cfg.n_mels * frames];
    let mut frame = vec![0f64; cfg.n_fft];
    for t in 0..frames {
        let start = t * cfg.hop_length;
        for (i, f) in frame.iter_mut().enumerate() {
            *f = f64::from(y[start + i] * window[i]);
        }
        let power = power_spectrum(&frame);
        let mag: Vec<f64> = power[..n_freqs]
            .iter()
            .map(|&p| f64::from((p + 1e-9).sqrt() as f32))
            .collect();
        for (m, filt) in filters.iter().enumerate() {
            let e: f64 = filt.iter().zip(&mag).map(|(&w, &s)| f64::from(w) * s).sum();
            out[m * frames + t] = ((e as f32).max(1e-5)).ln();
        }
    }
    Ok(Tensor::from_vec(out, (1, cfg.n_mels, frames), device)?)
}

// ---------------------------------------------------------------------------
// Kaldi fbank
// ---------------------------------------------------------------------------

/// The settings of torchaudio's `compliance.kaldi.fbank` the reference uses
/// (its defaults with `num_mel_bins=80`, `dither=0`, `sample_frequency=16000`).
#[derive(Debug, Clone, PartialEq)]
pub struct FbankConfig {
    /// Sample rate (Hz).
    pub sample_rate: f64,
    /// Frame length (ms).
    pub frame_length_ms: f64,
    /// Frame shift (ms).
    pub frame_shift_ms: f64,
    /// Mel bins.
    pub num_mel_bins: usize,
    /// Lowest frequency (Hz).
    pub low_freq: f64,
    /// Highest frequency (Hz); ≤ 0 is an offset from Nyquist.
    pub high_freq: f64,
    /// Pre-emphasis coefficient.
    pub preemphasis: f32,
}

impl FbankConfig {
    /// What `infer_v2.py` passes for CAMPPlus: 80 bins at 16 kHz.
    pub fn campplus() -> Self {
        Self {
            sample_rate: 16_000.0,
            frame_length_ms: 25.0,
            frame_shift_ms: 10.0,
            num_mel_bins: 80,
            low_freq: 20.0,
            high_freq: 0.0,
            preemphasis: 0.97,
        }
    }
}

fn kaldi_mel(f: f32) -> f32 {
    1127.0 * (1.0 + f / 700.0).ln()
}

/// Kaldi's triangular mel banks as torchaudio computes them (in f32),
/// `[num_bins][padded / 2]`.
fn kaldi_mel_banks(cfg: &FbankConfig, padded: usize) -> Result<Vec<Vec<f32>>> {
    let nyquist = 0.5 * cfg.sample_rate;
    let high = if cfg.high_freq <= 0.0 {
        cfg.high_freq + nyquist
    } else {
        cfg.high_freq
    };
    if !(0.0 <= cfg.low_freq && cfg.low_freq < nyquist && 0.0 < high && high <= nyquist)
        || cfg.low_freq >= high
        || cfg.num_mel_bins < 4
    {
        return Err(Error::Config(format!(
            "fbank: bad band {}..{high} Hz or {} bins",
            cfg.low_freq, cfg.num_mel_bins
        )));
    }
    let fft_bin_width = cfg.sample_rate / padded as f64;
    let mel_low = 1127.0 * (1.0 + cfg.low_freq / 700.0).ln();
    let mel_high = 1127.0 * (1.0 + high / 700.0).ln();
    let delta = (mel_high - mel_low) / (cfg.num_mel_bins + 1) as f64;
    // torch: `bin` is int64, so `mel_low + bin * delta` is computed in f32.
    let (mel_low32, delta32) = (mel_low as f32, delta as f32);
    let mels: Vec<f32> = (0..padded / 2)
        .map(|k| kaldi_mel((fft_bin_width as f32) * k as f32))
        .collect();
    Ok((0..cfg.num_mel_bins)
        .map(|b| {
            let left = mel_low32 + b as f32 * delta32;
            let centre = mel_low32 + (b as f32 + 1.0) * delta32;
            let right = mel_low32 + (b as f32 + 2.0) * delta32;
            mels.iter()
                .map(|&m| {
                    let up = (m - left) / (centre - left);
                    let down = (right - m) / (right - centre);
                    up.min(down).max(0.0)
                })
                .collect()
        })
        .collect())
}

/// `torchaudio.compliance.kaldi.fbank(x, num_mel_bins, dither=0, ...)`:
/// `[frames, num_mel_bins]` log energies, `frames = 1 + (len - win) / shift`
/// (`snip_edges`).
pub fn kaldi_fbank(samples: &[f32], cfg: &FbankConfig, device: &Device) -> Result<Tensor> {
    let shift = (cfg.sample_rate * cfg.frame_shift_ms * 0.001) as usize;
    let win = (cfg.sample_rate * cfg.frame_length_ms * 0.001) as usize;
    if win < 2 || shift == 0 || samples.len() < win {
        return Err(Error::Config(format!(
            "fbank: {} samples, window {win}, shift {shift}",
            samples.len()
        )));
    }
    let padded = win.next_power_of_two();
    let banks = kaldi_mel_banks(cfg, padded)?;
    let frames = 1 + (samples.len() - win) / shift;
    // Povey window: torch.hann_window(win, periodic=False) ** 0.85, in f32.
    let window: Vec<f32> = hann_window_f32(win, false)
        .into_iter()
        .map(|h| h.powf(0.85))
        .collect();
    let eps = f32::EPSILON;
    let mut out = vec![0f32; frames * cfg.num_mel_bins];
    let mut buf = vec![0f32; win];
    let mut frame = vec![0f64; padded];
    for t in 0..frames {
        buf.copy_from_slice(&samples[t * shift..t * shift + win]);
        let mean = (buf.iter().map(|&v| f64::from(v)).sum::<f64>() / win as f64) as f32;
        for v in &mut buf {
            *v -= mean;
        }
        // Pre-emphasis with the first sample replicated: x[i] - c * x[i-1].
        let mut prev = buf[0];
        for v in buf.iter_mut() {
            let cur = *v;
            *v = cur - cfg.preemphasis * prev;
            prev = cur;
        }
        frame.fill(0.0);
        for i in 0..win {
            frame[i] = f64::from(buf[i] * window[i]);
        }
        let power = power_spectrum(&frame);
        for (b, bank) in banks.iter().enumerate() {
            // The Nyquist bin has weight 0 (torchaudio pads the banks with a zero column).
            let e: f64 = bank
                .iter()
                .zip(&power)
                .map(|(&w, &p)| f64::from(w) * f64::from(p as f32))
                .sum();
            out[t * cfg.num_mel_bins + b] = (e as f32).max(eps).ln();
        }
    }
    Ok(Tensor::from_vec(out, (frames, cfg.num_mel_bins), device)?)
}
