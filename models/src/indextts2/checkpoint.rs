//! The official files: `config.yaml` read into the blocks' configurations,
//! the checkpoint directory's files by the names the configuration gives,
//! and the four auxiliary models where `huggingface-cli download` puts them.
//!
//! ```no_run
//! use models::indextts2::checkpoint::{AuxModels, Checkpoint};
//!
//! let ckpt = Checkpoint::open("checkpoints".as_ref())?;
//! let aux = AuxModels::locate(&AuxModels::default_hub_dir(), &ckpt.config.vocoder)?;
//! println!("GPT: {} layers; w2v-BERT from {}", ckpt.config.gpt.layers, aux.w2v_bert.display());
//! # Ok::<(), models::indextts2::Error>(())
//! ```

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::bigvgan::BigVganConfig;
use super::dit::DitConfig;
use super::gpt::GptConfig;
use super::gpt_conditioning::{ConformerConfig, GptConditioningConfig};
use super::length_regulator::LengthRegulatorConfig;
use super::semantic_codec::SemanticCodecConfig;
use super::w2v_bert::W2vBertConfig;
use super::{Error, Result};
use crate::audio::features::MelConfig;

/// The width of w2v-BERT's states the reference hard-codes for the GPT's
/// conditioning encoders.
const SEMANTIC_WIDTH: usize = 1024;

/// The file names `config.yaml` gives (relative to the checkpoint directory).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointFiles {
    /// `gpt_checkpoint` (`gpt.pth`).
    pub gpt: String,
    /// `s2mel_checkpoint` (`s2mel.pth`).
    pub s2mel: String,
    /// `w2v_stat` (`wav2vec2bert_stats.pt`).
    pub w2v_stat: String,
    /// `spk_matrix` (`feat1.pt`).
    pub spk_matrix: String,
    /// `emo_matrix` (`feat2.pt`).
    pub emo_matrix: String,
    /// `dataset.bpe_model` (`bpe.model`).
    pub bpe_model: String,
}

/// `config.yaml`, read into the configurations of the ported blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexTts2Config {
    /// The UnifiedVoice transformer (`gpt`).
    pub gpt: GptConfig,
    /// Its speaker and emotion conditioning (`gpt.condition_module`,
    /// `gpt.emo_condition_module`).
    pub conditioning: GptConditioningConfig,
    /// MaskGCT's semantic codec (`semantic_codec`).
    pub semantic_codec: SemanticCodecConfig,
    /// s2mel's length regulator (`s2mel.length_regulator`).
    pub length_regulator: LengthRegulatorConfig,
    /// s2mel's DiT (`s2mel.DiT`, `s2mel.wavenet`, `s2mel.style_encoder`).
    pub dit: DitConfig,
    /// The mel spectrogram of the reference clip and of the output
    /// (`s2mel.preprocess_params`).
    pub mel: MelConfig,
    /// Rows per emotion of the speaker and emotion matrices (`emo_num`).
    pub emo_num: Vec<usize>,
    /// The vocoder's hub name (`vocoder.name`).
    pub vocoder: String,
    /// The checkpoint's files.
    pub files: CheckpointFiles,
}

/// Reads one setting, naming it in the error.
struct Settings<'a> {
    root: &'a Value,
    file: &'a str,
}

impl<'a> Settings<'a> {
    fn value(&self, path: &str) -> Result<&'a Value> {
        let mut v = self.root;
        for key in path.split('.') {
            v = v.get(key).ok_or_else(|| self.error(path, "is missing"))?;
        }
        Ok(v)
    }

    fn error(&self, path: &str, what: &str) -> Error {
        Error::Config(format!("{}: `{path}` {what}", self.file))
    }

    fn usize(&self, path: &str) -> Result<usize> {
        self.value(path)?
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| self.error(path, "must be a non-negative integer"))
    }

    fn usize_or(&self, path: &str, default: usize) -> Result<usize> {
        match self.value(path) {
            Ok(_) => self.usize(path),
            Err(_) => Ok(default),
        }
    }

    fn u32(&self, path: &str) -> Result<u32> {
        u32::try_from(self.usize(path)?).map_err(|_| self.error(path, "is too large"))
    }

    fn f64(&self, path: &str) -> Result<f64> {
        self.value(path)?
            .as_f64()
            .ok_or_else(|| self.error(path, "must be a number"))
    }

    fn bool_or(&self, path: &str, default: bool) -> Result<bool> {
        match self.value(path) {
            Ok(v) => v
                .as_bool()
                .ok_or_else(|| self.error(path, "must be true or false")),
            Err(_) => Ok(default),
        }
    }

    fn string(&self, path: &str) -> Result<String> {
        self.value(path)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.error(path, "must be a string"))
    }

    fn conformer(&self, path: &str) -> Result<ConformerConfig> {
        let n = |k: &str| self.usize(&format!("{path}.{k}"));
        let input_layer = self.string(&format!("{path}.input_layer"))?;
        if input_layer != "conv2d2" {
            return Err(self.error(
                &format!("{path}.input_layer"),
                &format!("is {input_layer:?}; only \"conv2d2\" (IndexTTS2's) is ported"),
            ));
        }
        Ok(ConformerConfig {
            input_size: SEMANTIC_WIDTH,
            output_size: n("output_size")?,
            linear_units: n("linear_units")?,
            attention_heads: n("attention_heads")?,
            num_blocks: n("num_blocks")?,
            // A number, as the reference computes int(dim * mult * 2 / 3).
            perceiver_mult: {
                let key = format!("{path}.perceiver_mult");
                let m = self.f64(&key)?;
                if !(m.is_finite() && m > 0.0) {
                    return Err(self.error(&key, "must be a number above 0"));
                }
                m
            },
        })
    }
}

impl IndexTts2Config {
    /// Parses the text of `config.yaml`.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let value: Value = serde_yaml::from_str(text)
            .map_err(|e| Error::Config(format!("config.yaml is not valid YAML: {e}")))?;
        Self::from_value(&value, "config.yaml")
    }

    /// Reads `config.yaml` from a file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        let value: Value = serde_yaml::from_str(&text).map_err(|e| Error::Format {
            path: path.display().to_string(),
            reason: format!("not valid YAML: {e}"),
        })?;
        Self::from_value(&value, &path.display().to_string())
    }

    /// From the configuration as a JSON value (`file` names it in errors).
    pub fn from_value(root: &Value, file: &str) -> Result<Self> {
        let s = Settings { root, file };
        let version = s.f64("version").unwrap_or(0.0);
        if version < 2.0 {
            return Err(s.error(
                "version",
                "must be 2.0 or more: this is the IndexTTS2 (v2) pipeline",
            ));
        }
        let condition_type = s.string("gpt.condition_type")?;
        if condition_type != "conformer_perceiver" {
            return Err(s.error(
                "gpt.condition_type",
                &format!("is {condition_type:?}; only \"conformer_perceiver\" is ported"),
            ));
        }
        let gpt = GptConfig {
            model_dim: s.usize("gpt.model_dim")?,
            heads: s.usize("gpt.heads")?,
            layers: s.usize("gpt.layers")?,
            number_text_tokens: s.usize("gpt.number_text_tokens")?,
            number_mel_codes: s.usize("gpt.number_mel_codes")?,
            start_mel_token: s.u32("gpt.start_mel_token")?,
            stop_mel_token: s.u32("gpt.stop_mel_token")?,
            start_text_token: s.u32("gpt.start_text_token")?,
            stop_text_token: s.u32("gpt.stop_text_token")?,
            max_mel_tokens: s.usize("gpt.max_mel_tokens")?,
            max_text_tokens: s.usize("gpt.max_text_tokens")?,
        };
        if gpt.heads == 0 || !gpt.model_dim.is_multiple_of(gpt.heads) {
            return Err(s.error("gpt.heads", "must divide gpt.model_dim"));
        }
        let conditioning = GptConditioningConfig {
            model_dim: gpt.model_dim,
            condition_module: s.conformer("gpt.condition_module")?,
            emo_condition_module: s.conformer("gpt.emo_condition_module")?,
            condition_num_latent: 32,
        };
        let semantic_codec = SemanticCodecConfig {
            codebook_size: s.usize("semantic_codec.codebook_size")?,
            hidden_size: s.usize("semantic_codec.hidden_size")?,
            codebook_dim: s.usize("semantic_codec.codebook_dim")?,
            vocos_dim: s.usize("semantic_codec.vocos_dim")?,
            vocos_intermediate_dim: s.usize("semantic_codec.vocos_intermediate_dim")?,
            vocos_num_layers: s.usize("semantic_codec.vocos_num_layers")?,
        };
        let ratios = s
            .value("s2mel.length_regulator.sampling_ratios")?
            .as_array()
            .ok_or_else(|| s.error("s2mel.length_regulator.sampling_ratios", "must be a list"))?;
        let length_regulator = LengthRegulatorConfig {
            channels: s.usize("s2mel.length_regulator.channels")?,
            in_channels: s.usize("s2mel.length_regulator.in_channels")?,
            blocks: ratios.len(),
        };
        for flag in [
            "s2mel.length_regulator.is_discrete",
            "s2mel.length_regulator.f0_condition",
            "s2mel.DiT.f0_condition",
            "s2mel.DiT.is_causal",
            "s2mel.DiT.time_as_token",
            "s2mel.DiT.style_as_token",
            "s2mel.DiT.add_resblock_in_transformer",
        ] {
            if s.bool_or(flag, false)? {
                return Err(s.error(
                    flag,
                    "is true; IndexTTS2 sets it false and only that is ported",
                ));
            }
        }
        let dit = DitConfig {
            hidden_dim: s.usize("s2mel.DiT.hidden_dim")?,
            num_heads: s.usize("s2mel.DiT.num_heads")?,
            depth: s.usize("s2mel.DiT.depth")?,
            in_channels: s.usize("s2mel.DiT.in_channels")?,
            content_dim: s.usize("s2mel.DiT.content_dim")?,
            style_dim: s.usize("s2mel.style_encoder.dim")?,
            uvit_skip_connection: s.bool_or("s2mel.DiT.uvit_skip_connection", false)?,
            wavenet_hidden_dim: s.usize("s2mel.wavenet.hidden_dim")?,
            wavenet_num_layers: s.usize("s2mel.wavenet.num_layers")?,
            wavenet_kernel_size: s.usize("s2mel.wavenet.kernel_size")?,
            wavenet_dilation_rate: s.usize("s2mel.wavenet.dilation_rate")?,
        };
        if dit.num_heads == 0 || !dit.hidden_dim.is_multiple_of(dit.num_heads) {
            return Err(s.error("s2mel.DiT.num_heads", "must divide s2mel.DiT.hidden_dim"));
        }
        let p = "s2mel.preprocess_params";
        // The reference's mel function reads `fmax: "None"` (or null) as
        // Nyquist and any other value as 8,000 Hz.
        let fmax = match s.value(&format!("{p}.spect_params.fmax")) {
            Ok(Value::Null) | Err(_) => None,
            Ok(Value::String(v)) if v == "None" => None,
            Ok(_) => Some(8000.0),
        };
        let sample_rate = s.usize(&format!("{p}.sr"))?;
        let mel = MelConfig {
            sample_rate: u32::try_from(sample_rate)
                .map_err(|_| s.error(&format!("{p}.sr"), "is too large"))?,
            n_fft: s.usize(&format!("{p}.spect_params.n_fft"))?,
            win_length: s.usize(&format!("{p}.spect_params.win_length"))?,
            hop_length: s.usize(&format!("{p}.spect_params.hop_length"))?,
            n_mels: s.usize(&format!("{p}.spect_params.n_mels"))?,
            fmin: s
                .value(&format!("{p}.spect_params.fmin"))?
                .as_f64()
                .unwrap_or(0.0),
            fmax,
        };
        if mel.n_mels != dit.in_channels {
            return Err(s.error(
                &format!("{p}.spect_params.n_mels"),
                "must equal s2mel.DiT.in_channels",
            ));
        }
        let emo_num = s
            .value("emo_num")?
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|v| v.as_u64().map(|n| n as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .filter(|v| v.len() == 8 && v.iter().all(|&n| n > 0))
            .ok_or_else(|| s.error("emo_num", "must list 8 positive row counts"))?;
        let files = CheckpointFiles {
            gpt: s.string("gpt_checkpoint")?,
            s2mel: s.string("s2mel_checkpoint")?,
            w2v_stat: s.string("w2v_stat")?,
            spk_matrix: s.string("spk_matrix")?,
            emo_matrix: s.string("emo_matrix")?,
            bpe_model: s.string("dataset.bpe_model")?,
        };
        for (key, name) in [
            ("gpt_checkpoint", &files.gpt),
            ("s2mel_checkpoint", &files.s2mel),
            ("w2v_stat", &files.w2v_stat),
            ("spk_matrix", &files.spk_matrix),
            ("emo_matrix", &files.emo_matrix),
            ("dataset.bpe_model", &files.bpe_model),
        ] {
            if !plain_relative(name) {
                return Err(s.error(key, "must be a file name inside the checkpoint directory"));
            }
        }
        Ok(Self {
            gpt,
            conditioning,
            semantic_codec,
            length_regulator,
            dit,
            mel,
            emo_num,
            vocoder: s.string("vocoder.name")?,
            files,
        })
    }
}

/// A relative path without `..`: what a configuration may name.
fn plain_relative(name: &str) -> bool {
    let p = Path::new(name);
    !name.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// A checkpoint directory: `config.yaml` and the files it names.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The directory.
    pub dir: PathBuf,
    /// Its `config.yaml`.
    pub config: IndexTts2Config,
}

impl Checkpoint {
    /// Reads `dir/config.yaml` and checks that every file it names exists.
    pub fn open(dir: &Path) -> Result<Self> {
        let config = IndexTts2Config::from_file(&dir.join("config.yaml"))?;
        let ckpt = Self {
            dir: dir.to_path_buf(),
            config,
        };
        for f in ckpt.files() {
            if !f.is_file() {
                return Err(Error::Config(format!(
                    "{} is missing (named by {})",
                    f.display(),
                    dir.join("config.yaml").display()
                )));
            }
        }
        Ok(ckpt)
    }

    /// The path of a file of the checkpoint.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn files(&self) -> Vec<PathBuf> {
        let f = &self.config.files;
        [
            &f.gpt,
            &f.s2mel,
            &f.w2v_stat,
            &f.spk_matrix,
            &f.emo_matrix,
            &f.bpe_model,
        ]
        .iter()
        .map(|n| self.path(n))
        .collect()
    }
}

/// The hub repositories of the auxiliary models the reference downloads.
pub mod repos {
    /// w2v-BERT 2.0 (`config.json`, `model.safetensors`).
    pub const W2V_BERT: &str = "facebook/w2v-bert-2.0";
    /// MaskGCT (`semantic_codec/model.safetensors`).
    pub const MASKGCT: &str = "amphion/MaskGCT";
    /// CAMPPlus (`campplus_cn_common.bin`).
    pub const CAMPPLUS: &str = "funasr/campplus";
}

/// Where the four auxiliary models are.
#[derive(Debug, Clone, PartialEq)]
pub struct AuxModels {
    /// w2v-BERT 2.0: a directory with `config.json` and `model.safetensors`
    /// (and optionally `preprocessor_config.json`).
    pub w2v_bert: PathBuf,
    /// MaskGCT's semantic codec: `semantic_codec/model.safetensors`.
    pub semantic_codec: PathBuf,
    /// CAMPPlus: `campplus_cn_common.bin`.
    pub campplus: PathBuf,
    /// BigVGAN: a directory with `config.json` and `bigvgan_generator.pt`.
    pub bigvgan: PathBuf,
}

impl AuxModels {
    /// The hub cache huggingface_hub uses: `$HF_HUB_CACHE`, else
    /// `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    pub fn default_hub_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("HF_HUB_CACHE").filter(|d| !d.is_empty()) {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("HF_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(d).join("hub");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".cache/huggingface/hub")
    }

    /// Finds the four models in a hub cache (`models--org--name/snapshots/
    /// <rev>/`, the revision `refs/main` names, else the newest snapshot that
    /// holds the file). `vocoder` is `config.yaml`'s `vocoder.name`.
    pub fn locate(hub: &Path, vocoder: &str) -> Result<Self> {
        let w2v = snapshot_file(hub, repos::W2V_BERT, "model.safetensors")?;
        snapshot_file(hub, repos::W2V_BERT, "config.json")?;
        let voc = snapshot_file(hub, vocoder, "bigvgan_generator.pt")?;
        snapshot_file(hub, vocoder, "config.json")?;
        Ok(Self {
            w2v_bert: parent(&w2v),
            semantic_codec: snapshot_file(hub, repos::MASKGCT, "semantic_codec/model.safetensors")?,
            campplus: snapshot_file(hub, repos::CAMPPLUS, "campplus_cn_common.bin")?,
            bigvgan: parent(&voc),
        })
    }
}

fn parent(p: &Path) -> PathBuf {
    p.parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `hub/models--org--name/snapshots/<rev>/file`.
fn snapshot_file(hub: &Path, repo: &str, file: &str) -> Result<PathBuf> {
    let base = hub.join(format!("models--{}", repo.replace('/', "--")));
    let missing = || {
        Error::Config(format!(
            "{repo} ({file}) is not in the Hugging Face cache {} \
             (run `huggingface-cli download {repo}`, or point the hub directory elsewhere)",
            hub.display()
        ))
    };
    let snapshots = base.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(base.join("refs/main")) {
        let p = snapshots.join(rev.trim()).join(file);
        if rev.trim().chars().all(|c| c.is_ascii_alphanumeric()) && p.is_file() {
            return Ok(p);
        }
    }
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&snapshots)
        .map_err(|_| missing())?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(file))
        .filter(|p| p.is_file())
        .map(|p| {
            let t = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, p)
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).ok_or_else(missing)
}

/// w2v-BERT's `config.json` (transformers' `Wav2Vec2BertConfig`), run up to
/// `hidden_states[17]` as the pipeline uses.
pub fn w2v_bert_config(dir: &Path) -> Result<W2vBertConfig> {
    let path = dir.join("config.json");
    w2v_bert_config_from_value(&read_json(&path)?, &path.display().to_string())
}

/// [`w2v_bert_config`] from the parsed `config.json` (`file` names it in
/// errors).
pub fn w2v_bert_config_from_value(v: &Value, file: &str) -> Result<W2vBertConfig> {
    let s = Settings { root: v, file };
    let d = W2vBertConfig::w2v_bert_2_indextts2();
    let n = |k: &str, default: usize| s.usize_or(k, default);
    let cfg = W2vBertConfig {
        hidden_size: n("hidden_size", d.hidden_size)?,
        layers: 17,
        num_attention_heads: n("num_attention_heads", d.num_attention_heads)?,
        intermediate_size: n("intermediate_size", d.intermediate_size)?,
        conv_depthwise_kernel_size: n("conv_depthwise_kernel_size", d.conv_depthwise_kernel_size)?,
        left_max_position_embeddings: n(
            "left_max_position_embeddings",
            d.left_max_position_embeddings,
        )?,
        right_max_position_embeddings: n(
            "right_max_position_embeddings",
            d.right_max_position_embeddings,
        )?,
        feature_projection_input_dim: n(
            "feature_projection_input_dim",
            d.feature_projection_input_dim,
        )?,
        layer_norm_eps: s.f64("layer_norm_eps").unwrap_or(d.layer_norm_eps),
    };
    if n("num_hidden_layers", 24)? < 18 {
        return Err(s.error(
            "num_hidden_layers",
            "must be at least 18: the pipeline reads hidden_states[17]",
        ));
    }
    if cfg.hidden_size != SEMANTIC_WIDTH {
        return Err(s.error("hidden_size", "must be 1024, as IndexTTS2's GPT expects"));
    }
    Ok(cfg)
}

/// The feature extractor's padding value (`preprocessor_config.json`; 1.0,
/// w2v-BERT 2.0's, when the file is absent).
pub fn w2v_bert_padding_value(dir: &Path) -> Result<f32> {
    let path = dir.join("preprocessor_config.json");
    if !path.is_file() {
        return Ok(1.0);
    }
    let v = read_json(&path)?;
    Ok(v.get("padding_value")
        .and_then(Value::as_f64)
        .unwrap_or(1.0) as f32)
}

/// BigVGAN's `config.json`.
pub fn bigvgan_config(dir: &Path) -> Result<BigVganConfig> {
    BigVganConfig::from_json_file(&dir.join("config.json"))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Format {
        path: path.display().to_string(),
        reason: format!("not valid JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official configuration with `perceiver_mult` as `mult`.
    fn official_with_mult(mult: &str) -> String {
        crate::indextts2::random_checkpoint::OFFICIAL_CONFIG_YAML
            .replace("perceiver_mult: 2", &format!("perceiver_mult: {mult}"))
    }

    #[test]
    fn perceiver_mult_is_any_number_as_the_reference_reads_it() {
        // The speaker Perceiver's width is the GPT's (1280).
        for (mult, want, width) in [
            ("2", 2.0, 1706),
            ("0.09375", 0.09375, 80),
            ("0.3", 0.3, 256),
        ] {
            let cfg = IndexTts2Config::from_yaml(&official_with_mult(mult)).expect(mult);
            let c = &cfg.conditioning;
            assert_eq!(c.condition_module.perceiver_mult, want, "{mult}");
            assert_eq!(c.emo_condition_module.perceiver_mult, want, "{mult}");
            assert_eq!(
                crate::indextts2::gpt_conditioning::feed_forward_width(
                    c.model_dim,
                    c.condition_module.perceiver_mult
                ),
                width,
                "int({} * {mult} * 2 / 3)",
                c.model_dim
            );
        }
        for bad in ["0", "-1", "\"x\""] {
            let err = IndexTts2Config::from_yaml(&official_with_mult(bad)).expect_err(bad);
            assert!(err.to_string().contains("perceiver_mult"), "{bad}: {err}");
        }
    }

    #[test]
    fn relative_names_only() {
        assert!(plain_relative("gpt.pth"));
        assert!(plain_relative("sub/gpt.pth"));
        assert!(!plain_relative("../gpt.pth"));
        assert!(!plain_relative("/etc/passwd"));
        assert!(!plain_relative(""));
    }

    #[test]
    fn hub_snapshot_by_ref_then_newest() {
        let dir = std::env::temp_dir().join(format!("itts-hub-{}", std::process::id()));
        let base = dir.join("models--funasr--campplus");
        for rev in ["aaa", "bbb"] {
            std::fs::create_dir_all(base.join("snapshots").join(rev)).unwrap();
            std::fs::write(
                base.join("snapshots")
                    .join(rev)
                    .join("campplus_cn_common.bin"),
                rev,
            )
            .unwrap();
        }
        std::fs::create_dir_all(base.join("refs")).unwrap();
        std::fs::write(base.join("refs/main"), "aaa\n").unwrap();
        let p = snapshot_file(&dir, repos::CAMPPLUS, "campplus_cn_common.bin").unwrap();
        assert!(p.ends_with("snapshots/aaa/campplus_cn_common.bin"), "{p:?}");
        std::fs::remove_file(base.join("refs/main")).unwrap();
        assert!(snapshot_file(&dir, repos::CAMPPLUS, "campplus_cn_common.bin").is_ok());
        let err = snapshot_file(&dir, repos::W2V_BERT, "model.safetensors")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("facebook/w2v-bert-2.0") && err.contains("huggingface-cli"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
