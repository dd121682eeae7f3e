//! Shared by the IndexTTS2 parity tests: the golden fixtures recorded by
//! scripts/make-indextts2-fixtures.py from the reference (indextts2-inference
//! 2.1.1) on deterministic random weights, and the comparison they use.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use models::indextts2::rng::{Patch, RandomWeights};

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/indextts2")
}

/// The tensors recorded from the reference run (`pipeline.safetensors`).
pub fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir().join("pipeline.safetensors"), &Device::Cpu)
        .expect("pipeline.safetensors (run scripts/make-indextts2-fixtures.py)")
}

pub fn get(g: &HashMap<String, Tensor>, name: &str) -> Tensor {
    g.get(name)
        .unwrap_or_else(|| panic!("fixture {name} missing"))
        .clone()
}

pub fn samples(g: &HashMap<String, Tensor>, name: &str) -> Vec<f32> {
    get(g, name).to_vec1::<f32>().expect("1-D f32 fixture")
}

fn json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join(name)).expect("fixture json");
    serde_json::from_str(&text).expect("valid json")
}

/// The random checkpoint's description (configs, seed, decoding).
pub fn checkpoint() -> serde_json::Value {
    json("checkpoint.json")
}

/// Seed and patches of the generator.
pub fn generator() -> (u64, Vec<Patch>) {
    let g = json("generator.json");
    let seed = g["seed"].as_u64().expect("seed");
    let patches = g["patches"]
        .as_array()
        .expect("patches")
        .iter()
        .map(|p| Patch {
            name: p[0].as_str().expect("name").to_string(),
            index: p[1].as_u64().expect("index") as usize,
            value: p[2].as_f64().expect("value") as f32,
        })
        .collect();
    (seed, patches)
}

/// The generator's weights of one component of the fixture checkpoint.
pub fn random_vb(component: &str) -> VarBuilder<'static> {
    let (seed, patches) = generator();
    RandomWeights::new(seed, component, &patches).into_var_builder(&Device::Cpu)
}

/// Max abs error and the same relative to the largest reference magnitude.
#[derive(Debug, Clone, Copy)]
pub struct Parity {
    pub max_abs: f32,
    pub rel: f32,
}

/// Compares two tensors of the same shape; prints and returns the figures.
pub fn parity(label: &str, got: &Tensor, want: &Tensor) -> Parity {
    assert_eq!(got.dims(), want.dims(), "{label}: shapes differ");
    let got = got.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    let want = want.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    let g: Vec<f32> = got.to_vec1().unwrap();
    let w: Vec<f32> = want.to_vec1().unwrap();
    assert!(
        g.iter().all(|x| x.is_finite()),
        "{label}: non-finite output"
    );
    let max_abs = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = w.iter().map(|x| x.abs()).fold(0f32, f32::max);
    assert!(scale > 0.0, "{label}: the reference is all zeros");
    let p = Parity {
        max_abs,
        rel: max_abs / scale,
    };
    println!(
        "PARITY {label}: {} values, max |ref| {scale:.4e}, max abs err {:.3e}, rel {:.3e}",
        w.len(),
        p.max_abs,
        p.rel
    );
    p
}

/// [`parity`] and asserts a relative error of at most `tol`.
pub fn assert_close(label: &str, got: &Tensor, want: &Tensor, tol: f32) -> Parity {
    let p = parity(label, got, want);
    assert!(
        p.rel <= tol,
        "{label}: relative error {:.3e} above {tol:.0e} (max abs {:.3e})",
        p.rel,
        p.max_abs
    );
    p
}

/// The tolerance of the stage-1 parity tests (f32).
pub const TOL: f32 = 1e-4;

/// The semantic codec's configuration from the fixtures' `config.yaml`.
pub fn semantic_codec_config() -> models::indextts2::semantic_codec::SemanticCodecConfig {
    let c = &checkpoint()["config_yaml"]["semantic_codec"];
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    models::indextts2::semantic_codec::SemanticCodecConfig {
        codebook_size: n("codebook_size"),
        hidden_size: n("hidden_size"),
        codebook_dim: n("codebook_dim"),
        vocos_dim: n("vocos_dim"),
        vocos_intermediate_dim: n("vocos_intermediate_dim"),
        vocos_num_layers: n("vocos_num_layers"),
    }
}
