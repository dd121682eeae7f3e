//! The deterministic weight generator shared with
//! `scripts/make-indextts2-fixtures.py`, so that the Rust tests rebuild the
//! random checkpoint the golden fixtures were recorded with (hundreds of MB)
//! from a seed instead of reading it from disk.
//!
//! Definition (both sides must stay bit-identical):
//! - `key = mix64(seed ^ fnv1a64(name))`, where `name` is
//!   `"<component>/<state-dict name>"` (for example
//!   `"campplus/head.conv1.weight"`) and `mix64` is splitmix64's finaliser;
//! - element `i` (0-based, row-major): `z = mix64(key + (i + 1) * 0x9E3779B97F4A7C15)`
//!   (wrapping), `u = (z >> 40) * 2^-23 - 1` (an f32 in `[-1, 1)`, exact);
//! - `value = offset + scale * u`, two f32 roundings, with `(offset, scale)`
//!   from [`init_rule`];
//! - then [`Patch`]es overwrite single elements (the GPT's start and stop
//!   logit biases, the BigVGAN output gain).

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

/// splitmix64's increment (the golden ratio in 64 bits).
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// FNV-1a (64 bits) of the UTF-8 bytes of `text`.
pub fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// splitmix64's finaliser.
pub fn mix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` values in `[-1, 1)` for tensor `name` (exactly representable in f32).
pub fn uniform(seed: u64, name: &str, n: usize) -> Vec<f32> {
    let key = mix64(seed ^ fnv1a64(name));
    (1..=n as u64)
        .map(|i| {
            let z = mix64(key.wrapping_add(i.wrapping_mul(GOLDEN)));
            (z >> 40) as f32 * (1.0 / 8_388_608.0) - 1.0
        })
        .collect()
}

/// `(offset, scale)` of a tensor from its name and shape:
/// - a name ending in `var` (BatchNorm `running_var`, the w2v-BERT statistics'
///   `var`): `(1, 0.5)`, so it stays positive;
/// - `weight_g` (weight-norm gains): `(1, 0.1)`;
/// - any other tensor of rank ≥ 2: `(0, sqrt(3 / fan_in))` with
///   `fan_in = product of all dimensions but the first` (variance `1 / fan_in`);
/// - a rank-1 `weight` (norm scales): `(1, 0.1)`;
/// - everything else (biases, running means, snake parameters, tokens): `(0, 0.1)`.
pub fn init_rule(name: &str, shape: &[usize]) -> (f32, f32) {
    let leaf = name.rsplit(['.', '/']).next().unwrap_or(name);
    if leaf.ends_with("var") {
        (1.0, 0.5)
    } else if leaf == "weight_g" {
        (1.0, 0.1)
    } else if shape.len() >= 2 {
        let fan_in: usize = shape[1..].iter().product();
        (0.0, (3.0 / fan_in as f64).sqrt() as f32)
    } else if leaf == "weight" {
        (1.0, 0.1)
    } else {
        (0.0, 0.1)
    }
}

/// One element of a generated tensor set to a fixed value after generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// Full name, `"<component>/<state-dict name>"`.
    pub name: String,
    /// Row-major element index.
    pub index: usize,
    /// The value (rounded to f32).
    pub value: f32,
}

/// The values of tensor `name` (full name, with its component) of `shape`.
pub fn generate(seed: u64, name: &str, shape: &[usize], patches: &[Patch]) -> Vec<f32> {
    let n = shape.iter().product();
    let (offset, scale) = init_rule(name, shape);
    let mut v: Vec<f32> = uniform(seed, name, n)
        .into_iter()
        .map(|u| offset + scale * u)
        .collect();
    for p in patches.iter().filter(|p| p.name == name) {
        if let Some(x) = v.get_mut(p.index) {
            *x = p.value;
        }
    }
    v
}

/// A [`VarBuilder`] backend that generates every tensor it is asked for, of
/// the asked shape, from the seed: the random checkpoint of the fixtures
/// without its files. It reports every name as present (so loaders take their
/// weight-norm paths, as the fixture checkpoint stores `weight_g`/`weight_v`).
#[derive(Debug, Clone)]
pub struct RandomWeights {
    seed: u64,
    component: String,
    patches: Vec<Patch>,
}

impl RandomWeights {
    /// Weights of `component` (`"campplus"`, `"bigvgan"`, `"s2mel"`,
    /// `"semantic_codec"`, `"gpt"`, ...) for `seed`.
    pub fn new(seed: u64, component: &str, patches: &[Patch]) -> Self {
        Self {
            seed,
            component: component.to_string(),
            patches: patches.to_vec(),
        }
    }

    /// A `VarBuilder` (f32) over these weights.
    pub fn into_var_builder(self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), DType::F32, device.clone())
    }
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let full = format!("{}/{}", self.component, name);
        let values = generate(self.seed, &full, s.dims(), &self.patches);
        Tensor::from_vec(values, s, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights need a shape to generate {name}")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// The random numbers of synthesis (sampling of the mel codes, the flow
/// matching's noise) when none are given: splitmix64 from a seed, so that
/// a seed reproduces a synthesis exactly. The reference draws them from
/// torch's generator, which is not reproduced; parity tests pass the
/// reference's draws in instead.
///
/// ```
/// use models::indextts2::rng::Draws;
///
/// let mut a = Draws::new(7);
/// let mut b = Draws::new(7);
/// assert_eq!(a.uniform(), b.uniform());
/// assert!((0.0..1.0).contains(&a.uniform()));
/// ```
#[derive(Debug, Clone)]
pub struct Draws {
    state: u64,
    spare: Option<f32>,
}

impl Draws {
    /// A stream seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: mix64(seed ^ 0x1D87_75B9_0A52_3E1F),
            spare: None,
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// A uniform f32 in `[0, 1)` (24 random bits).
    pub fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 * (1.0 / 16_777_216.0)
    }

    /// A standard normal f32 (Box–Muller, in f64).
    pub fn normal(&mut self) -> f32 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // u1 in (0, 1]: never log(0).
        let u1 = ((self.next() >> 11) as f64 + 1.0) * (1.0 / 9_007_199_254_740_992.0);
        let u2 = (self.next() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0);
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some((r * s) as f32);
        (r * c) as f32
    }

    /// `n` standard normal values.
    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_reproducible_and_normal() {
        let mut d = Draws::new(1);
        let v = d.normals(20_000);
        assert_eq!(v, Draws::new(1).normals(20_000));
        assert_ne!(v[..8], Draws::new(2).normals(8)[..]);
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        assert!((0..1000)
            .map(|_| d.uniform())
            .all(|u| (0.0..1.0).contains(&u)));
    }

    #[test]
    fn splitmix64_known_values() {
        // splitmix64 seeded with 0: the first outputs are mix64(GOLDEN * k).
        assert_eq!(mix64(GOLDEN), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix64(GOLDEN.wrapping_mul(2)), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(fnv1a64(""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xAF63_DC4C_8601_EC8C);
    }

    #[test]
    fn uniform_is_in_range_and_centred() {
        let v = uniform(7, "x", 100_000);
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
        let mean: f64 = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn rule_and_patches() {
        assert_eq!(init_rule("bn.running_var", &[4]), (1.0, 0.5));
        assert_eq!(init_rule("c.weight_g", &[4, 1, 1]), (1.0, 0.1));
        assert_eq!(init_rule("ln.weight", &[4]), (1.0, 0.1));
        assert_eq!(init_rule("l.bias", &[4]), (0.0, 0.1));
        assert_eq!(init_rule("l.weight", &[4, 3]), (0.0, 1.0));
        let p = [Patch {
            name: "g/b".into(),
            index: 2,
            value: 5.0,
        }];
        assert_eq!(generate(1, "g/b", &[4], &p)[2], 5.0);
    }
}

/// The generator against values the Python generator produced
/// (`models/tests/fixtures/indextts2/generator.json`), bit for bit.
#[cfg(test)]
mod python_parity {
    use super::*;

    fn fixture() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/indextts2/generator.json"
        );
        let text = std::fs::read_to_string(path).expect("generator.json");
        serde_json::from_str(&text).expect("json")
    }

    fn patches(g: &serde_json::Value) -> Vec<Patch> {
        g["patches"]
            .as_array()
            .expect("patches")
            .iter()
            .map(|p| Patch {
                name: p[0].as_str().expect("name").into(),
                index: p[1].as_u64().expect("index") as usize,
                value: p[2].as_f64().expect("value") as f32,
            })
            .collect()
    }

    #[test]
    fn matches_python_bits() {
        let g = fixture();
        let seed = g["seed"].as_u64().expect("seed");
        let name = "campplus/head.conv1.weight";
        let fnv: u64 = g["fnv1a64"][name]
            .as_str()
            .expect("fnv")
            .parse()
            .expect("u64");
        assert_eq!(fnv1a64(name), fnv);
        let raw: Vec<u32> = uniform(seed, name, 4).iter().map(|x| x.to_bits()).collect();
        let want: Vec<u32> = g["uniform_head_campplus_conv1"]
            .as_array()
            .expect("raw")
            .iter()
            .map(|v| v.as_u64().expect("bits") as u32)
            .collect();
        assert_eq!(raw, want);
        let patches = patches(&g);
        let samples = g["samples"].as_array().expect("samples");
        assert!(samples.len() >= 6);
        for s in samples {
            let name = s["name"].as_str().expect("name");
            let shape: Vec<usize> = s["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect();
            let (offset, scale) = init_rule(name, &shape);
            let os = s["offset_scale"].as_array().expect("offset_scale");
            assert_eq!(
                offset,
                os[0].as_f64().expect("offset") as f32,
                "{name} offset"
            );
            assert_eq!(scale, os[1].as_f64().expect("scale") as f32, "{name} scale");
            let values = generate(seed, name, &shape, &patches);
            for (i, bits) in s["indices"]
                .as_array()
                .expect("indices")
                .iter()
                .zip(s["bits"].as_array().expect("bits"))
            {
                let i = i.as_u64().expect("index") as usize;
                let bits = bits.as_u64().expect("bits") as u32;
                assert_eq!(values[i].to_bits(), bits, "{name}[{i}]");
            }
        }
    }
}
