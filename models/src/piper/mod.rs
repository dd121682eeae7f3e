//! The Piper engine: a VITS voice in Piper's format (one `*.onnx` and its
//! `*.onnx.json`), read natively with candle on CPU or CUDA.
//!
//! - [`voice`]: the public voice API (load a voice directory, synthesise),
//!   and the voice as an [`crate::Engine`];
//! - [`vits`]: the network (text encoder, duration predictor, flow, HiFi-GAN)
//!   as candle modules;
//! - `cpu_decoder` and `cpu_flow`: the decoder and the flow on the CPU
//!   (direct convolutions over channels-last rows with the shared `cpu`
//!   kernels, every core);
//! - [`decode`]: which of the two the flow and decoder run on;
//! - [`onnx`]: the ONNX file's initializers, under their module names;
//! - [`phonemize`]: the text front end (espeak-ng phonemes to ids).

mod cpu_decoder;
mod cpu_flow;
pub mod decode;
pub mod onnx;
pub mod phonemize;
pub mod vits;
pub mod voice;

pub use phonemize::{Phonemizer, SentenceIds};
pub use voice::{
    AudioConfig, EspeakConfig, InferenceConfig, SynthesisParams, Voice, VoiceConfig, VoiceInfo,
    FIRST_PIECE_FRAMES, SPLIT_OVER_FRAMES,
};
