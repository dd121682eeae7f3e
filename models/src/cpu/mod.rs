//! CPU kernels the engines share: direct 1-D convolutions over
//! channels-last rows ([`conv`]) and vectorised elementwise maths
//! ([`math`]), each compiled for the best vector instructions the CPU has
//! ([`isa`]). Engines call them from their CPU paths; on CUDA the same
//! networks run through candle.

pub(crate) mod conv;
pub(crate) mod isa;
pub(crate) mod math;
