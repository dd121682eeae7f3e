//! The vector instructions the CPU kernels run with, detected once per
//! process.

use std::sync::OnceLock;

/// The vector instructions a convolution runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// 16 lanes of `f32`, fused multiply-add, 32 registers.
    Avx512,
    /// 8 lanes, fused multiply-add, 16 registers.
    Avx2,
    /// Whatever the target has by default; multiply then add.
    Portable,
}

impl Isa {
    /// The best this CPU has (checked once).
    pub(crate) fn detect() -> Self {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            Self::available()
                .into_iter()
                .next()
                .unwrap_or(Isa::Portable)
        })
    }

    /// Every variant this CPU can run, best first (tests run them all).
    pub(crate) fn available() -> Vec<Self> {
        #[allow(unused_mut)]
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(Isa::Avx2);
            }
        }
        v.push(Isa::Portable);
        v
    }

    /// Output channels per tile for `cout` channels.
    pub(crate) fn width(self, cout: usize) -> usize {
        match self {
            Isa::Avx512 if cout <= 32 => 32,
            Isa::Avx512 => 64,
            Isa::Avx2 => 16,
            Isa::Portable => 8,
        }
    }
}
