//! Loading IndexTTS2 weights from the official file formats, and the names
//! and shapes of the official full-size checkpoints.
//!
//! - Small samples written by PyTorch in the official containers
//!   (`fixtures/indextts2/formats`): nested `{"net": {module: state dict}}`
//!   (s2mel.pth), a flat state dict with BatchNorm counters (CAMPPlus .bin),
//!   safetensors (MaskGCT); values must equal the generator's.
//! - The official manifest (`fixtures/indextts2/manifest.json`, names and
//!   shapes of the full-size state dicts): every tensor the ported loaders ask
//!   for at the official configuration must be there with the same shape, and
//!   the tensors they leave out must be the known unused ones.
//! - Dev only (ignored in CI): the ported blocks loaded from the ~1.1 GB
//!   random checkpoint the fixture script writes, run against the goldens.

mod indextts2_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use indextts2_common as fx;
use models::indextts2::bigvgan::{BigVgan, BigVganConfig};
use models::indextts2::campplus::{CampPlus, CampPlusConfig};
use models::indextts2::dit::{Dit, DitConfig};
use models::indextts2::gpt::{GptConfig, UnifiedVoiceGpt};
use models::indextts2::gpt_conditioning::{
    ConformerConfig, GptConditioning, GptConditioningConfig,
};
use models::indextts2::gpt_layer::{GptLayer, GptLayerConfig};
use models::indextts2::length_regulator::{LengthRegulator, LengthRegulatorConfig};
use models::indextts2::rng::generate;
use models::indextts2::semantic_codec::{SemanticCodec, SemanticCodecConfig};
use models::indextts2::w2v_bert::{self, SemanticStats, W2vBert, W2vBertConfig};
use models::indextts2::weights::{pth_var_builder, read_pth, safetensors_var_builder};

fn generated(name: &str, shape: &[usize]) -> Tensor {
    let (seed, patches) = fx::generator();
    Tensor::from_vec(generate(seed, name, shape, &patches), shape, &Device::Cpu).unwrap()
}

fn assert_equal(label: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dims(), want.dims(), "{label}");
    let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{label}");
}

#[test]
fn nested_pth_is_flattened() {
    let path = fx::dir().join("formats/s2mel_nested.pth");
    let all = read_pth(&path, &Device::Cpu).unwrap();
    let names: BTreeSet<&str> = all.keys().map(String::as_str).collect();
    // The non-tensor entry ("iters": 7) is skipped.
    assert_eq!(
        names,
        BTreeSet::from([
            "net.gpt_layer.0.bias",
            "net.length_regulator.content_in_proj.weight",
            "net.length_regulator.mask_token",
        ])
    );
    let vb = pth_var_builder(&path, &Device::Cpu).unwrap();
    let lr = vb.pp("net").pp("length_regulator");
    let w = lr.get((3, 4), "content_in_proj.weight").unwrap();
    assert_equal(
        "content_in_proj.weight",
        &w,
        &generated("s2mel/length_regulator.content_in_proj.weight", &[3, 4]),
    );
    let b = vb.pp("net.gpt_layer").get(5, "0.bias").unwrap();
    assert_equal(
        "gpt_layer.0.bias",
        &b,
        &generated("s2mel/gpt_layer.0.bias", &[5]),
    );
}

#[test]
fn wrong_or_missing_tensor_names_it() {
    let vb = pth_var_builder(&fx::dir().join("formats/s2mel_nested.pth"), &Device::Cpu).unwrap();
    let err = vb
        .pp("net.length_regulator")
        .get((4, 3), "content_in_proj.weight")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("net.length_regulator.content_in_proj.weight") && err.contains("[4, 3]"),
        "{err}"
    );
    let err = vb.get(1, "net.cfm.missing").unwrap_err().to_string();
    assert!(err.contains("net.cfm.missing"), "{err}");
    // Through a block loader: the error surfaces as indextts2::Error.
    let err = GptLayer::load(&vb.pp("net.gpt_layer"), &GptLayerConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("net.gpt_layer.0.weight"), "{err}");
}

#[test]
fn flat_state_dict_with_counters() {
    let path = fx::dir().join("formats/campplus_flat.bin");
    let all = read_pth(&path, &Device::Cpu).unwrap();
    assert_eq!(all.len(), 4);
    let counter = &all["head.bn1.num_batches_tracked"];
    assert_eq!(counter.dtype(), DType::I64);
    assert_eq!(counter.dims(), &[] as &[usize]);
    for (name, shape) in [
        ("head.bn1.weight", vec![4]),
        ("head.bn1.running_var", vec![4]),
        ("head.conv1.weight", vec![4, 1, 3, 3]),
    ] {
        assert_equal(
            name,
            &all[name],
            &generated(&format!("campplus/{name}"), &shape),
        );
    }
}

#[test]
fn safetensors_file() {
    let vb = safetensors_var_builder(&fx::dir().join("formats/codec.safetensors"), &Device::Cpu)
        .unwrap();
    let q = vb.pp("quantizer.quantizers.0");
    assert_equal(
        "codebook",
        &q.get((6, 2), "codebook.weight").unwrap(),
        &generated(
            "semantic_codec/quantizer.quantizers.0.codebook.weight",
            &[6, 2],
        ),
    );
    assert_equal(
        "weight_g",
        &q.get((3, 1, 1), "out_project.weight_g").unwrap(),
        &generated(
            "semantic_codec/quantizer.quantizers.0.out_project.weight_g",
            &[3, 1, 1],
        ),
    );
}

// ---------------------------------------------------------------------------
// The official manifest
// ---------------------------------------------------------------------------

/// Answers from the manifest of one official file: checks each requested
/// name and shape, records it, and returns zeros (broadcast, nothing
/// allocated). Weight norm is reported absent, so loaders ask for the folded
/// `weight`, which must have the shape of the file's `weight_v`.
struct ManifestBackend {
    shapes: BTreeMap<String, Vec<usize>>,
    asked: Arc<Mutex<BTreeSet<String>>>,
}

impl SimpleBackend for ManifestBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let (key, shape) = match self.shapes.get(name) {
            Some(shape) => (name.to_string(), shape),
            None => {
                let v = name
                    .strip_suffix(".weight")
                    .map(|b| format!("{b}.weight_v"))
                    .unwrap_or_default();
                match self.shapes.get(&v) {
                    Some(shape) => (v, shape),
                    None => candle_core::bail!("{name} is not in the official checkpoint"),
                }
            }
        };
        if shape.as_slice() != s.dims() {
            candle_core::bail!("{name}: official shape {shape:?}, asked for {:?}", s.dims());
        }
        let mut asked = self.asked.lock().unwrap();
        asked.insert(key.clone());
        if key.ends_with("weight_v") {
            asked.insert(key.replace("weight_v", "weight_g"));
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: unchecked access")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.shapes.contains_key(name) && !name.ends_with("weight_g")
    }
}

struct Official {
    files: serde_json::Value,
}

impl Official {
    fn new() -> Self {
        let text = std::fs::read_to_string(fx::dir().join("manifest.json")).unwrap();
        let m: serde_json::Value = serde_json::from_str(&text).unwrap();
        Self {
            files: m["files"].clone(),
        }
    }

    /// A VarBuilder over one file, and the set of names it was asked for.
    fn file(
        &self,
        file: &str,
    ) -> (
        VarBuilder<'static>,
        Arc<Mutex<BTreeSet<String>>>,
        Vec<String>,
    ) {
        let entries = self.files[file].as_object().unwrap();
        let shapes: BTreeMap<String, Vec<usize>> = entries
            .iter()
            .map(|(k, v)| {
                let dims = v[0]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect();
                (k.clone(), dims)
            })
            .collect();
        let names = shapes.keys().cloned().collect();
        let asked = Arc::new(Mutex::new(BTreeSet::new()));
        let backend = ManifestBackend {
            shapes,
            asked: asked.clone(),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu);
        (vb, asked, names)
    }
}

/// The names of `names` under `prefix` the loaders did not ask for, minus
/// those matching one of `unused`.
fn unexplained(
    names: &[String],
    asked: &Mutex<BTreeSet<String>>,
    prefix: &str,
    unused: &[&str],
) -> Vec<String> {
    let asked = asked.lock().unwrap();
    names
        .iter()
        .filter(|n| n.starts_with(prefix) && !asked.contains(*n))
        .filter(|n| !unused.iter().any(|u| n.contains(u)))
        .cloned()
        .collect()
}

#[test]
fn official_campplus_names_and_shapes() {
    let (vb, asked, names) = Official::new().file("campplus_cn_common.bin");
    CampPlus::load(&vb, &CampPlusConfig::default()).unwrap();
    let left = unexplained(&names, &asked, "", &["num_batches_tracked"]);
    assert!(
        left.is_empty(),
        "official CAMPPlus tensors not loaded: {left:?}"
    );
    println!(
        "CAMPPlus: {} official tensors loaded",
        asked.lock().unwrap().len()
    );
}

#[test]
fn official_bigvgan_names_and_shapes() {
    let (vb, asked, names) = Official::new().file("bigvgan_generator.pt");
    BigVgan::load(&vb.pp("generator"), &BigVganConfig::v2_22khz_80band_256x()).unwrap();
    // The anti-aliasing filters are buffers the port computes itself.
    let left = unexplained(&names, &asked, "generator.", &[".filter"]);
    assert!(
        left.is_empty(),
        "official BigVGAN tensors not loaded: {left:?}"
    );
    println!(
        "BigVGAN: {} official tensors loaded",
        asked.lock().unwrap().len()
    );
}

#[test]
fn official_s2mel_names_and_shapes() {
    let (vb, asked, names) = Official::new().file("s2mel.pth");
    let net = vb.pp("net");
    LengthRegulator::load(
        &net.pp("length_regulator"),
        &LengthRegulatorConfig::indextts2(),
    )
    .unwrap();
    GptLayer::load(&net.pp("gpt_layer"), &GptLayerConfig::default()).unwrap();
    // Unused at inference for continuous input: the discrete-code embedding
    // and the mask token.
    let left = unexplained(
        &names,
        &asked,
        "net.length_regulator.",
        &["length_regulator.embedding.", "length_regulator.mask_token"],
    );
    assert!(
        left.is_empty(),
        "official length-regulator tensors not loaded: {left:?}"
    );
    let left = unexplained(&names, &asked, "net.gpt_layer.", &[]);
    assert!(
        left.is_empty(),
        "official gpt_layer tensors not loaded: {left:?}"
    );
}

#[test]
fn official_semantic_codec_names_and_shapes() {
    let (vb, asked, names) = Official::new().file("semantic_codec/model.safetensors");
    SemanticCodec::load(&vb, &SemanticCodecConfig::indextts2()).unwrap();
    // The decoder half is not used at inference.
    let left = unexplained(&names, &asked, "", &["decoder."]);
    assert!(
        left.is_empty(),
        "official codec tensors not loaded: {left:?}"
    );
}

#[test]
fn official_gpt_names_and_shapes() {
    let (vb, asked, names) = Official::new().file("gpt.pth");
    GptConditioning::load(&vb, &GptConditioningConfig::indextts2()).unwrap();
    // The positional tables are buffers the port computes.
    UnifiedVoiceGpt::load(&vb, &GptConfig::indextts2()).unwrap();
    // Not used at inference: the text head (text prediction is a training
    // objective).
    let left = unexplained(&names, &asked, "", &["embed.pos_enc.pe", "text_head."]);
    assert!(
        left.is_empty(),
        "official gpt.pth tensors not loaded: {left:?}"
    );
    for prefix in [
        "conditioning_encoder.",
        "perceiver_encoder.",
        "emo_conditioning_encoder.",
        "emo_perceiver_encoder.",
        "emovec_layer.",
        "emo_layer.",
    ] {
        let left = unexplained(&names, &asked, prefix, &["embed.pos_enc.pe"]);
        assert!(
            left.is_empty(),
            "official {prefix} tensors not loaded: {left:?}"
        );
    }
}

#[test]
fn official_w2v_bert_names_and_shapes() {
    let (vb, asked, names) = Official::new().file("w2v-bert-2.0/model.safetensors");
    W2vBert::load(&vb, &W2vBertConfig::w2v_bert_2_indextts2()).unwrap();
    // Layers 17..23 are not needed for hidden_states[17]; the masked-spec
    // embedding is for training.
    let later: Vec<String> = (17..24).map(|i| format!("encoder.layers.{i}.")).collect();
    let mut unused: Vec<&str> = later.iter().map(String::as_str).collect();
    unused.push("masked_spec_embed");
    let left = unexplained(&names, &asked, "", &unused);
    assert!(
        left.is_empty(),
        "official w2v-BERT tensors not loaded: {left:?}"
    );
    let (vb, asked, _) = Official::new().file("wav2vec2bert_stats.pt");
    SemanticStats::load(&vb, 1024).unwrap();
    assert_eq!(asked.lock().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------
// Dev only: the random checkpoint files themselves
// ---------------------------------------------------------------------------

fn checkpoint_work_dir() -> PathBuf {
    let dir = std::env::var_os("INDEXTTS2_FIXTURE_WORK").unwrap_or_else(|| {
        panic!(
            "set INDEXTTS2_FIXTURE_WORK to the --work directory of \
             scripts/make-indextts2-fixtures.py (default /work/itts-work)"
        )
    });
    PathBuf::from(dir)
}

fn hub(work: &std::path::Path, repo: &str) -> PathBuf {
    work.join("hf/hub")
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("snapshots")
        .join("0".repeat(40))
}

#[test]
#[ignore = "needs the ~1.1 GB random checkpoint: scripts/make-indextts2-fixtures.py, then INDEXTTS2_FIXTURE_WORK=<its --work dir>"]
fn blocks_from_the_random_checkpoint_files() {
    let work = checkpoint_work_dir();
    let g = fx::golden();
    let cpu = Device::Cpu;

    let vb = pth_var_builder(&work.join("checkpoints/gpt.pth"), &cpu).unwrap();
    let gpt_cfg = GptConditioningConfig {
        condition_module: ConformerConfig {
            output_size: 64,
            linear_units: 64,
            attention_heads: 2,
            num_blocks: 1,
            ..GptConditioningConfig::indextts2().condition_module
        },
        emo_condition_module: ConformerConfig {
            output_size: 48,
            linear_units: 64,
            attention_heads: 2,
            num_blocks: 1,
            ..GptConditioningConfig::indextts2().emo_condition_module
        },
        ..GptConditioningConfig::indextts2()
    };
    let cond = GptConditioning::load(&vb, &gpt_cfg).unwrap();
    let latent = cond
        .speech_latent(&fx::get(&g, "w2v.spk.out").unsqueeze(0).unwrap())
        .unwrap();
    fx::assert_close(
        "speech conditioning latent from gpt.pth",
        &latent,
        &fx::get(&g, "gpt.speech_conditioning_latent")
            .unsqueeze(0)
            .unwrap(),
        fx::TOL,
    );

    let c = &fx::checkpoint()["config_yaml"]["gpt"];
    let gpt = UnifiedVoiceGpt::load(
        &vb,
        &GptConfig {
            layers: c["layers"].as_u64().unwrap() as usize,
            ..GptConfig::indextts2()
        },
    )
    .unwrap();
    let text: Vec<u32> = fx::get(&g, "gpt.text_tokens")
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&t| t as u32)
        .collect();
    let emovec = fx::get(&g, "gpt.emovec").unsqueeze(0).unwrap();
    let prompt = gpt.prompt(&latent, &emovec, &text).unwrap();
    let sampling = models::indextts2::gpt::Sampling::greedy();
    let out = gpt.generate(&prompt, &sampling, &mut || 0.0).unwrap();
    let raw = fx::get(&g, "gpt.codes_raw").to_vec1::<i64>().unwrap();
    let want: Vec<u32> = raw[..raw.len() - 1].iter().map(|&c| c as u32).collect();
    assert_eq!(out.codes, want, "codes from gpt.pth");

    // feat1.pt / feat2.pt pickle a bare tensor: it is read under the name "".
    for (file, name, cols) in [("feat1.pt", "feat1", 192), ("feat2.pt", "feat2", 1280)] {
        let all = read_pth(&work.join("checkpoints").join(file), &cpu).unwrap();
        assert_equal(file, &all[""], &generated(name, &[73, cols]));
    }

    let vb = pth_var_builder(
        &hub(&work, "funasr/campplus").join("campplus_cn_common.bin"),
        &cpu,
    )
    .unwrap();
    let camp = CampPlus::load(&vb, &CampPlusConfig::default()).unwrap();
    let got = camp
        .forward(&fx::get(&g, "campplus.in").unsqueeze(0).unwrap())
        .unwrap();
    fx::assert_close(
        "campplus from .bin",
        &got,
        &fx::get(&g, "campplus.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );

    let voc = BigVgan::load_dir(&hub(&work, "nvidia/bigvgan_v2_22khz_80band_256x"), &cpu).unwrap();
    let got = voc
        .forward(&fx::get(&g, "bigvgan.in").unsqueeze(0).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap();
    fx::assert_close(
        "bigvgan from .pt",
        &got,
        &fx::get(&g, "bigvgan.out"),
        fx::TOL,
    );

    let vb = pth_var_builder(&work.join("checkpoints/s2mel.pth"), &cpu).unwrap();
    let lr = LengthRegulator::load(
        &vb.pp("net.length_regulator"),
        &LengthRegulatorConfig::indextts2(),
    )
    .unwrap();
    let got = lr
        .forward(&fx::get(&g, "lr.prompt.in").unsqueeze(0).unwrap(), 86)
        .unwrap();
    fx::assert_close(
        "length regulator from s2mel.pth",
        &got,
        &fx::get(&g, "lr.prompt.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );
    let c = &fx::checkpoint()["config_yaml"]["s2mel"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap() as usize;
    let dit_cfg = DitConfig {
        hidden_dim: n(&c["DiT"]["hidden_dim"]),
        num_heads: n(&c["DiT"]["num_heads"]),
        depth: n(&c["DiT"]["depth"]),
        wavenet_hidden_dim: n(&c["wavenet"]["hidden_dim"]),
        wavenet_num_layers: n(&c["wavenet"]["num_layers"]),
        ..DitConfig::indextts2()
    };
    let dit = Dit::load(&vb.pp("net.cfm.estimator"), &dit_cfg).unwrap();
    let noise = fx::get(&g, "cfm.noise").unsqueeze(0).unwrap();
    let mu = Tensor::cat(
        &[fx::get(&g, "lr.prompt.out"), fx::get(&g, "lr.infer.out")],
        0,
    )
    .unwrap()
    .unsqueeze(0)
    .unwrap();
    let mel = models::indextts2::flow_matching::inference(
        &dit,
        &mu,
        &fx::get(&g, "mel.ref.out").unsqueeze(0).unwrap(),
        &fx::get(&g, "cfm.style").unsqueeze(0).unwrap(),
        &noise,
        Default::default(),
    )
    .unwrap();
    fx::assert_close(
        "flow matching from s2mel.pth",
        &mel,
        &fx::get(&g, "cfm.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );
    let layer = GptLayer::load(&vb.pp("net.gpt_layer"), &GptLayerConfig::default()).unwrap();
    let got = layer
        .forward(&fx::get(&g, "gpt.latent").unsqueeze(0).unwrap())
        .unwrap();
    fx::assert_close(
        "gpt_layer from s2mel.pth",
        &got,
        &fx::get(&g, "gpt_layer.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );

    let cfg = fx::semantic_codec_config();
    let vb = safetensors_var_builder(
        &hub(&work, "amphion/MaskGCT").join("semantic_codec/model.safetensors"),
        &cpu,
    )
    .unwrap();
    let codec = SemanticCodec::load(&vb, &cfg).unwrap();
    let feats =
        w2v_bert::features(&fx::samples(&g, "resample.22050_16000.out"), 1.0, &cpu).unwrap();
    let w2v_cfg = W2vBertConfig {
        intermediate_size: 64,
        ..W2vBertConfig::w2v_bert_2_indextts2()
    };
    let vb = safetensors_var_builder(
        &hub(&work, "facebook/w2v-bert-2.0").join("model.safetensors"),
        &cpu,
    )
    .unwrap();
    let w2v = W2vBert::load(&vb, &w2v_cfg).unwrap();
    let vb = pth_var_builder(&work.join("checkpoints/wav2vec2bert_stats.pt"), &cpu).unwrap();
    let stats = SemanticStats::load(&vb, 1024).unwrap();
    let emb = w2v_bert::semantic_embedding(&w2v, &stats, &feats, 17).unwrap();
    fx::assert_close(
        "w2v-BERT from model.safetensors, from audio",
        &emb,
        &fx::get(&g, "w2v.spk.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );
    let (_, emb) = codec
        .quantize(&fx::get(&g, "w2v.spk.out").unsqueeze(0).unwrap())
        .unwrap();
    fx::assert_close(
        "semantic codec from safetensors",
        &emb,
        &fx::get(&g, "codec.quantize.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );
}
