//! Random checkpoints in the official layout: a checkpoint directory
//! (`config.yaml`, `gpt.pth`, `s2mel.pth`, `wav2vec2bert_stats.pt`,
//! `feat1.pt`, `feat2.pt`, `bpe.model`) and the four auxiliary models in a
//! Hugging Face hub cache, every tensor from the deterministic generator
//! ([`super::rng`]). With them the whole IndexTTS2 path runs without the
//! official weights: noise for audio, but every real code path, file format
//! and loader.
//!
//! The tensors written are exactly those the loaders ask for at the given
//! configuration (recorded by loading the pipeline over a backend that
//! allocates nothing), so the files always match the Rust loaders; the
//! manifest test (`models/tests/indextts2_loading.rs`) proves those names
//! and shapes are the official ones. Tensors the official files hold but
//! the pipeline never reads (w2v-BERT's layers past the 17th, heads used
//! only in training) are not written.
//!
//! ```no_run
//! use models::indextts2::random_checkpoint::{write, Spec};
//!
//! let spec = Spec::full_size(20250917, std::fs::read("bpe.model")?);
//! let written = write(&spec, "ckpt".as_ref(), "ckpt/hub".as_ref())?;
//! println!("{} tensors, {} bytes", written.tensors, written.bytes);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde_json::{json, Value};

use super::checkpoint::{self, repos, IndexTts2Config};
use super::pipeline::{AuxConfigs, IndexTts2, Weights};
use super::rng::{generate, Patch};
use super::weights::{write_pth, write_safetensors, PthNode};
use super::{Error, Result};

/// The official `checkpoints/config.yaml` of IndexTTS2 (index-tts/index-tts).
pub const OFFICIAL_CONFIG_YAML: &str = r#"dataset:
  bpe_model: bpe.model
  sample_rate: 24000
  squeeze: false
  mel:
    sample_rate: 24000
    n_fft: 1024
    hop_length: 256
    win_length: 1024
    n_mels: 100
    mel_fmin: 0
    normalize: false
gpt:
  model_dim: 1280
  max_mel_tokens: 1815
  max_text_tokens: 600
  heads: 20
  use_mel_codes_as_input: true
  mel_length_compression: 1024
  layers: 24
  number_text_tokens: 12000
  number_mel_codes: 8194
  start_mel_token: 8192
  stop_mel_token: 8193
  start_text_token: 0
  stop_text_token: 1
  train_solo_embeddings: false
  condition_type: conformer_perceiver
  condition_module:
    output_size: 512
    linear_units: 2048
    attention_heads: 8
    num_blocks: 6
    input_layer: conv2d2
    perceiver_mult: 2
  emo_condition_module:
    output_size: 512
    linear_units: 1024
    attention_heads: 4
    num_blocks: 4
    input_layer: conv2d2
    perceiver_mult: 2
semantic_codec:
  codebook_size: 8192
  hidden_size: 1024
  codebook_dim: 8
  vocos_dim: 384
  vocos_intermediate_dim: 2048
  vocos_num_layers: 12
s2mel:
  preprocess_params:
    sr: 22050
    spect_params:
      n_fft: 1024
      win_length: 1024
      hop_length: 256
      n_mels: 80
      fmin: 0
      fmax: "None"
  dit_type: DiT
  reg_loss_type: l1
  style_encoder:
    dim: 192
  length_regulator:
    channels: 512
    is_discrete: false
    in_channels: 1024
    content_codebook_size: 2048
    sampling_ratios: [1, 1, 1, 1]
    vector_quantize: false
    n_codebooks: 1
    quantizer_dropout: 0.0
    f0_condition: false
    n_f0_bins: 512
  DiT:
    hidden_dim: 512
    num_heads: 8
    depth: 13
    class_dropout_prob: 0.1
    block_size: 8192
    in_channels: 80
    style_condition: true
    final_layer_type: wavenet
    target: mel
    content_dim: 512
    content_codebook_size: 1024
    content_type: discrete
    f0_condition: false
    n_f0_bins: 512
    content_codebooks: 1
    is_causal: false
    long_skip_connection: true
    zero_prompt_speech_token: false
    time_as_token: false
    style_as_token: false
    uvit_skip_connection: true
    add_resblock_in_transformer: false
  wavenet:
    hidden_dim: 512
    num_layers: 8
    kernel_size: 5
    dilation_rate: 1
    p_dropout: 0.2
    style_condition: true
gpt_checkpoint: gpt.pth
w2v_stat: wav2vec2bert_stats.pt
s2mel_checkpoint: s2mel.pth
emo_matrix: feat2.pt
spk_matrix: feat1.pt
emo_num: [3, 17, 2, 8, 4, 5, 10, 24]
qwen_emo_path: qwen0.6bemo4-merge/
vocoder:
  type: bigvgan
  name: nvidia/bigvgan_v2_22khz_80band_256x
version: 2.0
"#;

/// `facebook/w2v-bert-2.0`'s `config.json` (the fields the port reads;
/// transformers' `Wav2Vec2BertConfig` defaults).
pub fn official_w2v_bert_config() -> Value {
    json!({
        "architectures": ["Wav2Vec2BertModel"],
        "model_type": "wav2vec2-bert",
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "conv_depthwise_kernel_size": 31,
        "left_max_position_embeddings": 64,
        "right_max_position_embeddings": 8,
        "feature_projection_input_dim": 160,
        "layer_norm_eps": 1e-5,
        "position_embeddings_type": "relative_key"
    })
}

/// `nvidia/bigvgan_v2_22khz_80band_256x`'s `config.json` (the fields the
/// port reads).
pub fn official_bigvgan_config() -> Value {
    json!({
        "resblock": "1",
        "upsample_rates": [4, 4, 2, 2, 2, 2],
        "upsample_kernel_sizes": [8, 8, 4, 4, 4, 4],
        "upsample_initial_channel": 1536,
        "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "use_tanh_at_final": false,
        "use_bias_at_final": false,
        "activation": "snakebeta",
        "snake_logscale": true,
        "num_mels": 80,
        "n_fft": 1024,
        "hop_size": 256,
        "win_size": 1024,
        "sampling_rate": 22050,
        "fmin": 0,
        "fmax": null
    })
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The generator's seed.
    pub seed: u64,
    /// Single elements overwritten after generation (logit biases, gains).
    pub patches: Vec<Patch>,
    /// The text of `config.yaml`.
    pub config_yaml: String,
    /// w2v-BERT's `config.json`.
    pub w2v_bert: Value,
    /// BigVGAN's `config.json`.
    pub bigvgan: Value,
    /// The bytes of `bpe.model` (SentencePiece).
    pub bpe_model: Vec<u8>,
}

impl Spec {
    /// The official configuration at full size (about 1.7 billion
    /// parameters, 6.5 GB of files). The GPT's start code is biased away,
    /// as the fixtures do, so that sampling never picks it.
    pub fn full_size(seed: u64, bpe_model: Vec<u8>) -> Self {
        Self {
            seed,
            patches: vec![Patch {
                name: "gpt/mel_head.bias".into(),
                index: 8192,
                value: -30.0,
            }],
            config_yaml: OFFICIAL_CONFIG_YAML.to_string(),
            w2v_bert: official_w2v_bert_config(),
            bigvgan: official_bigvgan_config(),
            bpe_model,
        }
    }
}

impl Spec {
    /// The checkpoint the golden fixtures were recorded on, from the fixture
    /// files `scripts/make-indextts2-fixtures.py` writes
    /// (`models/tests/fixtures/indextts2/`): `checkpoint.json` (its
    /// `config_yaml`, `bigvgan` and `w2v_bert` sections), `generator.json`
    /// (seed and patches) and `bpe.model`.
    ///
    /// ```no_run
    /// use models::indextts2::random_checkpoint::Spec;
    /// let dir = std::path::Path::new("models/tests/fixtures/indextts2");
    /// let read = |name: &str| std::fs::read_to_string(dir.join(name));
    /// let spec = Spec::from_fixtures(
    ///     &serde_json::from_str(&read("checkpoint.json")?)?,
    ///     &serde_json::from_str(&read("generator.json")?)?,
    ///     std::fs::read(dir.join("bpe.model"))?,
    /// )?;
    /// assert_eq!(spec.seed, 20250917);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fixtures(
        checkpoint: &Value,
        generator: &Value,
        bpe_model: Vec<u8>,
    ) -> Result<Self> {
        let bad = |what: &str| Error::Format {
            path: "fixtures".into(),
            reason: format!("{what} is missing or malformed"),
        };
        let patches = generator["patches"]
            .as_array()
            .ok_or_else(|| bad("generator.json: patches"))?
            .iter()
            .map(|p| {
                Some(Patch {
                    name: p[0].as_str()?.to_string(),
                    index: p[1].as_u64()? as usize,
                    value: p[2].as_f64()? as f32,
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("generator.json: a patch"))?;
        let mut w2v = official_w2v_bert_config();
        for key in ["intermediate_size", "num_hidden_layers"] {
            w2v[key] = checkpoint["w2v_bert"][key].clone();
        }
        Ok(Self {
            seed: generator["seed"]
                .as_u64()
                .ok_or_else(|| bad("generator.json: seed"))?,
            patches,
            config_yaml: serde_yaml::to_string(&checkpoint["config_yaml"])
                .map_err(|_| bad("checkpoint.json: config_yaml"))?,
            w2v_bert: w2v,
            bigvgan: checkpoint["bigvgan"].clone(),
            bpe_model,
        })
    }
}

/// What [`write()`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The checkpoint directory.
    pub checkpoint: PathBuf,
    /// The hub cache with the auxiliary models.
    pub hub: PathBuf,
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of tensor data.
    pub bytes: u64,
}

type Names = Arc<Mutex<Vec<(String, Vec<usize>)>>>;

/// A backend that records the names and shapes asked for and answers with
/// zeros broadcast to the shape (no memory).
struct Recorder {
    names: Names,
}

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut names = self
            .names
            .lock()
            .map_err(|_| candle_core::Error::Msg("recorder poisoned".into()))?;
        if !names.iter().any(|(n, _)| n == name) {
            names.push((name.to_string(), s.dims().to_vec()));
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("a shape is needed to record {name}")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// The names and shapes the loaders ask for, per component.
struct Recorded {
    gpt: Vec<(String, Vec<usize>)>,
    s2mel: Vec<(String, Vec<usize>)>,
    w2v_bert: Vec<(String, Vec<usize>)>,
    w2v_stats: Vec<(String, Vec<usize>)>,
    semantic_codec: Vec<(String, Vec<usize>)>,
    campplus: Vec<(String, Vec<usize>)>,
    bigvgan: Vec<(String, Vec<usize>)>,
    spk_matrix: Vec<usize>,
    emo_matrix: Vec<usize>,
}

fn record(cfg: &IndexTts2Config, aux: &AuxConfigs) -> Result<Recorded> {
    let dev = Device::Cpu;
    let recorder = || {
        let names: Names = Arc::default();
        let vb = VarBuilder::from_backend(
            Box::new(Recorder {
                names: names.clone(),
            }),
            DType::F32,
            dev.clone(),
        );
        (vb, names)
    };
    let rows: usize = cfg.emo_num.iter().sum();
    let spk_matrix = vec![rows, cfg.dit.style_dim];
    let emo_matrix = vec![rows, cfg.gpt.model_dim];
    let (gpt, n_gpt) = recorder();
    let (s2mel, n_s2mel) = recorder();
    let (w2v_bert, n_w2v) = recorder();
    let (w2v_stats, n_stats) = recorder();
    let (semantic_codec, n_codec) = recorder();
    let (campplus, n_camp) = recorder();
    let (bigvgan, n_voc) = recorder();
    let weights = Weights {
        gpt,
        s2mel,
        w2v_bert,
        w2v_stats,
        semantic_codec,
        campplus,
        bigvgan,
        spk_matrix: Tensor::zeros(spk_matrix.as_slice(), DType::F32, &dev)?,
        emo_matrix: Tensor::zeros(emo_matrix.as_slice(), DType::F32, &dev)?,
    };
    drop(IndexTts2::new(cfg.clone(), aux, weights)?);
    let take = |n: Names| -> Result<Vec<(String, Vec<usize>)>> {
        let v = n
            .lock()
            .map_err(|_| Error::Config("recorder poisoned".into()))?;
        Ok(v.clone())
    };
    Ok(Recorded {
        gpt: take(n_gpt)?,
        s2mel: take(n_s2mel)?,
        w2v_bert: take(n_w2v)?,
        w2v_stats: take(n_stats)?,
        semantic_codec: take(n_codec)?,
        campplus: take(n_camp)?,
        bigvgan: take(n_voc)?,
        spk_matrix,
        emo_matrix,
    })
}

/// A hub snapshot directory (`models--org--name/snapshots/<rev>/`) with
/// `refs/main` naming it.
fn snapshot(hub: &Path, repo: &str, rev: &str) -> Result<PathBuf> {
    let base = hub.join(format!("models--{}", repo.replace('/', "--")));
    let snap = base.join("snapshots").join(rev);
    for d in [&snap, &base.join("refs"), &base.join("blobs")] {
        std::fs::create_dir_all(d).map_err(|source| Error::Io {
            path: d.display().to_string(),
            source,
        })?;
    }
    write_file(&base.join("refs/main"), rev.as_bytes())?;
    Ok(snap)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Writes the checkpoint directory `dir` and the auxiliary models into the
/// hub cache `hub`.
pub fn write(spec: &Spec, dir: &Path, hub: &Path) -> Result<Written> {
    let cfg = IndexTts2Config::from_yaml(&spec.config_yaml)?;
    let aux = AuxConfigs {
        w2v_bert: checkpoint::w2v_bert_config_from_value(&spec.w2v_bert, "w2v-BERT config.json")?,
        w2v_padding_value: 1.0,
        bigvgan: serde_json::from_value(spec.bigvgan.clone()).map_err(|e| Error::Format {
            path: "BigVGAN config.json".into(),
            reason: e.to_string(),
        })?,
    };
    let rec = record(&cfg, &aux)?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let seed = spec.seed;
    let patches = &spec.patches;
    let mut tensors = 0usize;
    // The generator's names: "<component>/<name in the component's state
    // dict>", without the file's wrapping (`net.`, `generator.`).
    let values = |component: &'static str, wrapper: &'static str| {
        move |name: &str, shape: &[usize]| -> Vec<f32> {
            let name = name.strip_prefix(wrapper).unwrap_or(name);
            let full = if name.is_empty() {
                component.to_string()
            } else {
                format!("{component}/{name}")
            };
            generate(seed, &full, shape, patches)
        }
    };
    let f = &cfg.files;
    let mut bytes = 0u64;
    write_file(&dir.join("config.yaml"), spec.config_yaml.as_bytes())?;
    write_file(&dir.join(&f.bpe_model), &spec.bpe_model)?;
    bytes += write_pth(
        &dir.join(&f.gpt),
        &PthNode::nested(&rec.gpt, 0),
        &mut values("gpt", ""),
    )?;
    let s2mel = PthNode::Dict(vec![("net".into(), PthNode::nested(&rec.s2mel, 1))]);
    bytes += write_pth(&dir.join(&f.s2mel), &s2mel, &mut values("s2mel", "net."))?;
    bytes += write_pth(
        &dir.join(&f.w2v_stat),
        &PthNode::nested(&rec.w2v_stats, 0),
        &mut values("w2v_stats", ""),
    )?;
    bytes += write_pth(
        &dir.join(&f.spk_matrix),
        &PthNode::Tensor(rec.spk_matrix.clone()),
        &mut values("feat1", ""),
    )?;
    bytes += write_pth(
        &dir.join(&f.emo_matrix),
        &PthNode::Tensor(rec.emo_matrix.clone()),
        &mut values("feat2", ""),
    )?;
    tensors += rec.gpt.len() + rec.s2mel.len() + rec.w2v_stats.len() + 2;

    let rev = format!("{seed:040x}");
    let snap = snapshot(hub, repos::W2V_BERT, &rev)?;
    write_file(
        &snap.join("config.json"),
        serde_json::to_string_pretty(&spec.w2v_bert)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    write_file(
        &snap.join("preprocessor_config.json"),
        json!({
            "feature_extractor_type": "SeamlessM4TFeatureExtractor",
            "feature_size": 80,
            "num_mel_bins": 80,
            "padding_side": "right",
            "padding_value": 1,
            "return_attention_mask": true,
            "sampling_rate": 16000,
            "stride": 2
        })
        .to_string()
        .as_bytes(),
    )?;
    bytes += write_safetensors(
        &snap.join("model.safetensors"),
        &rec.w2v_bert,
        &mut values("w2v_bert", ""),
    )?;
    let snap = snapshot(hub, repos::MASKGCT, &rev)?;
    let codec_dir = snap.join("semantic_codec");
    std::fs::create_dir_all(&codec_dir).map_err(|source| Error::Io {
        path: codec_dir.display().to_string(),
        source,
    })?;
    bytes += write_safetensors(
        &codec_dir.join("model.safetensors"),
        &rec.semantic_codec,
        &mut values("semantic_codec", ""),
    )?;
    let snap = snapshot(hub, repos::CAMPPLUS, &rev)?;
    bytes += write_pth(
        &snap.join("campplus_cn_common.bin"),
        &PthNode::nested(&rec.campplus, 0),
        &mut values("campplus", ""),
    )?;
    let snap = snapshot(hub, &cfg.vocoder, &rev)?;
    write_file(
        &snap.join("config.json"),
        serde_json::to_string_pretty(&spec.bigvgan)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let generator = PthNode::Dict(vec![("generator".into(), PthNode::nested(&rec.bigvgan, 0))]);
    bytes += write_pth(
        &snap.join("bigvgan_generator.pt"),
        &generator,
        &mut values("bigvgan", "generator."),
    )?;
    tensors +=
        rec.w2v_bert.len() + rec.semantic_codec.len() + rec.campplus.len() + rec.bigvgan.len();
    Ok(Written {
        checkpoint: dir.to_path_buf(),
        hub: hub.to_path_buf(),
        tensors,
        bytes,
    })
}
