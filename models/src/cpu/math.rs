//! Elementwise maths over `f32` slices for the CPU paths, each compiled for
//! the best vector instructions the CPU has ([`Isa`]), with an exponential
//! written in plain arithmetic so that it vectorises.
//!
//! The default `x86_64` target has only SSE2, and the library's `expf` and
//! `roundf` are calls the compiler cannot vectorise, so a loop over them
//! ran one value at a time: a fifth of the text encoder's attention.

use super::isa::Isa;

/// Defines `pub(crate) fn $name(args)` that runs its body compiled for
/// AVX-512, for AVX2 with FMA, or for the baseline target, by what the CPU
/// has. The body is plain Rust; the compiler vectorises it for each.
macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        pub(crate) fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,fma")]
                fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                match Isa::detect() {
                    // SAFETY: `Isa::detect` found avx512f on this CPU.
                    Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: `Isa::detect` found avx2 and fma on this CPU.
                    Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    Isa::Portable => {}
                }
            }
            body($($arg),*)
        }
    };
}

/// `e^x` in plain arithmetic: range reduction by ln 2 (rounding with the
/// 1.5·2²³ trick, not `roundf`) and a degree-6 polynomial; within 2 ulp.
/// Arguments are clamped to [−87, 88].
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    // x − n·ln2 in two parts (Cody–Waite), so r stays exact.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// `tanh(x)` through [`exp`].
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// The logistic function through [`exp`].
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `erf(x)` (Abramowitz and Stegun 7.1.26, through [`exp`]): within 2e-7.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// `Σ a[i]·b[i]` in 16 lanes.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

multiversion! {
    /// `v[i] = gelu(v[i]) = v[i] · (1 + erf(v[i] / √2)) / 2`.
    fn gelu_in_place(v: &mut [f32]) {
        for x in v.iter_mut() {
            *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

multiversion! {
    /// `out[i] = tanh(t[i]) · sigmoid(s[i])`: WaveNet's gate.
    fn gated_tanh(t: &[f32], s: &[f32], out: &mut [f32]) {
        for ((o, t), s) in out.iter_mut().zip(t).zip(s) {
            *o = tanh(*t) * sigmoid(*s);
        }
    }
}

multiversion! {
    /// `v[i] = mish(v[i]) = v[i] · tanh(ln(1 + e^v[i]))`, as
    /// `x · n / (n + 2)` with `n = e^x (e^x + 2)` (the same function without
    /// a logarithm; past x = 20 it is x to f32's precision).
    fn mish_in_place(v: &mut [f32]) {
        for x in v.iter_mut() {
            let e = exp(x.min(20.0));
            let n = e * (e + 2.0);
            *x = if *x > 20.0 { *x } else { *x * n / (n + 2.0) };
        }
    }
}

multiversion! {
    /// `v[i] = tanh(v[i])`.
    fn tanh_in_place(v: &mut [f32]) {
        for x in v.iter_mut() {
            *x = tanh(*x);
        }
    }
}

multiversion! {
    /// `row = softmax(row)`.
    fn softmax_in_place(row: &mut [f32]) {
        let mut lanes = [f32::NEG_INFINITY; 16];
        let mut chunks = row.chunks_exact(16);
        for c in &mut chunks {
            for (l, v) in lanes.iter_mut().zip(c) {
                *l = if *v > *l { *v } else { *l };
            }
        }
        let max = chunks
            .remainder()
            .iter()
            .chain(&lanes)
            .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
        for s in row.iter_mut() {
            *s = exp(*s - max);
        }
        let mut sums = [0f32; 16];
        let mut chunks = row.chunks_exact(16);
        for c in &mut chunks {
            for (l, v) in sums.iter_mut().zip(c) {
                *l += v;
            }
        }
        let sum: f32 = chunks.remainder().iter().chain(&sums).sum();
        let inv = 1.0 / sum;
        for s in row.iter_mut() {
            *s *= inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 by its series (|x| < 3) or continued fraction, for the
    /// test's reference.
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let v = if a < 3.0 {
            let mut term = a;
            let mut sum = a;
            for n in 1..200 {
                term *= -a * a / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = k as f64 / 2.0 / (a + f);
            }
            1.0 - (-a * a).exp() / (a + f) / std::f64::consts::PI.sqrt()
        };
        v.copysign(x)
    }

    #[test]
    fn mish_matches_its_definition() {
        let xs: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.1).collect();
        let mut v = xs.clone();
        mish_in_place(&mut v);
        for (x, m) in xs.iter().zip(&v) {
            let x64 = f64::from(*x);
            let want = x64 * (x64.exp().ln_1p()).tanh();
            let tol = 1e-6 * want.abs().max(1.0);
            assert!(
                (f64::from(*m) - want).abs() <= tol,
                "mish({x}) = {m}, want {want}"
            );
        }
    }

    #[test]
    fn exp_tanh_and_sigmoid_match_the_library() {
        for i in -4000..=4000 {
            let x = i as f32 / 100.0;
            let (e, want) = (exp(x), x.exp());
            if want.is_finite() && want > 1e-30 {
                assert!(
                    ((e - want) / want).abs() < 1e-6,
                    "exp({x}) = {e}, want {want}"
                );
            }
            assert!((tanh(x) - x.tanh()).abs() < 1e-6, "tanh({x})");
            let s = 1.0 / (1.0 + (-x).exp());
            assert!((sigmoid(x) - s).abs() < 1e-6, "sigmoid({x})");
        }
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
        assert!(sigmoid(-200.0) < 1e-30 && sigmoid(200.0) == 1.0);
    }

    #[test]
    fn the_slice_functions_agree_with_the_library() {
        let v: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) / 37.0).collect();
        let mut t = v.clone();
        tanh_in_place(&mut t);
        let mut g = vec![0f32; v.len()];
        gated_tanh(&v, &t, &mut g);
        for ((x, t), g) in v.iter().zip(&t).zip(&g) {
            assert!((t - x.tanh()).abs() < 1e-6);
            let want = x.tanh() / (1.0 + (-x.tanh()).exp());
            assert!((g - want).abs() < 1e-6);
        }
        let mut e = v.clone();
        gelu_in_place(&mut e);
        for (x, e) in v.iter().zip(&e) {
            let want =
                0.5 * f64::from(*x) * (1.0 + libm_erf(f64::from(*x) / std::f64::consts::SQRT_2));
            assert!(
                (f64::from(*e) - want).abs() < 2e-6 * (1.0 + want.abs()),
                "gelu({x}) = {e}, want {want}"
            );
        }
        let mut p = v.clone();
        softmax_in_place(&mut p);
        let max = v.iter().copied().fold(f32::MIN, f32::max);
        let sum: f64 = v.iter().map(|x| f64::from(x - max).exp()).sum();
        for (x, p) in v.iter().zip(&p) {
            let want = (f64::from(x - max).exp() / sum) as f32;
            assert!((p - want).abs() < 1e-6 * (1.0 + want), "{p} vs {want}");
        }
    }
}
