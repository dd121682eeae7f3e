//! Audio code the engines share: WAV files and 16-bit PCM ([`wav`]),
//! resampling ([`resample`]) and spectral features ([`features`]: FFT,
//! log-mel spectrogram, Kaldi filterbank).

pub mod features;
pub mod resample;
pub mod wav;

pub use resample::Resampler;
