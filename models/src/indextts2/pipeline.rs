//! The IndexTTS2 inference pipeline (`IndexTTS2.infer` of the reference's
//! `infer_v2.py`), from a reference clip, an emotion control and the text's
//! token segments to 22,050 Hz samples:
//!
//! 1. the reference clip (at most 15 s at 22,050 Hz) → w2v-BERT's
//!    `hidden_states[17]`, normalised (`spk_cond_emb`) → semantic codes and
//!    the length-regulated prompt condition; its mel; its CAMPPlus style;
//! 2. the emotion: the speaker clip itself, a second clip (at most 15 s at
//!    16 kHz) blended by `emo_alpha`, or eight weights mixed from the
//!    emotion matrices;
//! 3. per segment: the GPT's mel codes (KV-cached decoding with the
//!    reference's sampling), the latent pass, `gpt_layer` + `vq2emb`, the
//!    length regulator (`⌊codes × 1.72⌋` frames), flow matching (25 steps,
//!    CFG 0.7) after the reference mel, BigVGAN, clamped to [−1, 1];
//! 4. segments joined by 200 ms of silence.
//!
//! ```no_run
//! use candle_core::Device;
//! use models::indextts2::checkpoint::{AuxModels, Checkpoint};
//! use models::indextts2::pipeline::{IndexTts2, Options};
//!
//! let ckpt = Checkpoint::open("checkpoints".as_ref())?;
//! let aux = AuxModels::locate(&AuxModels::default_hub_dir(), &ckpt.config.vocoder)?;
//! let tts = IndexTts2::load(&ckpt, &aux, &Device::Cpu)?;
//! let clip: Vec<f32> = vec![0.0; 22_050]; // the reference voice, mono
//! let speaker = tts.speaker(&clip, 22_050)?;
//! let out = tts.synthesize(&speaker, &[vec![11, 12, 13]], &Options::default(), &mut |_| {
//!     std::ops::ControlFlow::Continue(())
//! })?;
//! println!("{} samples, {} mel codes", out.samples.len(), out.mel_tokens);
//! # Ok::<(), models::indextts2::Error>(())
//! ```

use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::bigvgan::{BigVgan, BigVganConfig};
use super::campplus::{CampPlus, CampPlusConfig};
use super::checkpoint::{self, AuxModels, Checkpoint, IndexTts2Config};
use super::dit::Dit;
use super::emotion::{scale_emo_vector, EmotionMatrices};
use super::flow_matching::{self, CfmParams};
use super::gpt::{Sampling, UnifiedVoiceGpt};
use super::gpt_conditioning::GptConditioning;
use super::gpt_layer::{GptLayer, GptLayerConfig};
use super::length_regulator::{target_frames, LengthRegulator};
use super::rng::Draws;
use super::semantic_codec::SemanticCodec;
use super::text::TextTokenizer;
use super::w2v_bert::{self, SemanticStats, W2vBert, W2vBertConfig};
use super::weights::{pth_var_builder, read_pth, safetensors_var_builder};
use super::{Error, Result};
use crate::audio::features::{self as audio, FbankConfig};
use crate::audio::Resampler;

/// The output sample rate (BigVGAN v2 22 kHz).
pub const SAMPLE_RATE: u32 = 22_050;
/// The longest part of a reference or emotion clip used (the reference cuts
/// both at 15 s).
pub const MAX_CLIP_SECONDS: f64 = 15.0;
/// The w2v-BERT hidden state the pipeline conditions on.
const SEMANTIC_LAYER: usize = 17;
/// w2v-BERT's input rate.
const W2V_RATE: u32 = 16_000;

/// The weights of every component, one `VarBuilder` per file (each rooted
/// where its loader expects it), plus the two emotion matrices.
pub struct Weights {
    /// `gpt.pth`.
    pub gpt: VarBuilder<'static>,
    /// `s2mel.pth` under `net` (modules `cfm`, `length_regulator`,
    /// `gpt_layer`).
    pub s2mel: VarBuilder<'static>,
    /// w2v-BERT 2.0's `model.safetensors`.
    pub w2v_bert: VarBuilder<'static>,
    /// `wav2vec2bert_stats.pt` (`mean`, `var`).
    pub w2v_stats: VarBuilder<'static>,
    /// MaskGCT's `semantic_codec/model.safetensors`.
    pub semantic_codec: VarBuilder<'static>,
    /// CAMPPlus's `campplus_cn_common.bin`.
    pub campplus: VarBuilder<'static>,
    /// BigVGAN's `bigvgan_generator.pt` under `generator`.
    pub bigvgan: VarBuilder<'static>,
    /// `feat1.pt` `[Σ emo_num, style]`.
    pub spk_matrix: Tensor,
    /// `feat2.pt` `[Σ emo_num, model_dim]`.
    pub emo_matrix: Tensor,
}

/// The auxiliary models' own configurations (their `config.json`s).
#[derive(Debug, Clone, PartialEq)]
pub struct AuxConfigs {
    /// w2v-BERT 2.0.
    pub w2v_bert: W2vBertConfig,
    /// The feature extractor's padding value.
    pub w2v_padding_value: f32,
    /// BigVGAN.
    pub bigvgan: BigVganConfig,
}

/// Everything a reference clip gives the pipeline (the reference caches the
/// same per clip).
#[derive(Debug, Clone)]
pub struct Speaker {
    /// `spk_cond_emb` `[1, t, 1024]`.
    pub cond_emb: Tensor,
    /// The same clip as the emotion reference (`emo_cond_emb`): the
    /// reference loads it again at 16 kHz from the original, so it differs
    /// from `cond_emb` when the clip is not at 22,050 Hz.
    pub emo_cond_emb: Tensor,
    /// The GPT's speech conditioning latent `[1, 32, model_dim]`.
    pub speech_latent: Tensor,
    /// CAMPPlus style `[1, 192]`.
    pub style: Tensor,
    /// The length-regulated semantic embeddings `[1, frames, 512]`.
    pub prompt_condition: Tensor,
    /// The reference mel `[1, 80, frames]`.
    pub ref_mel: Tensor,
    /// Seconds of the clip used (after the 15 s cut).
    pub seconds: f64,
}

/// Where the emotion comes from.
#[derive(Debug, Clone, Default)]
pub enum Emotion {
    /// The speaker clip's own ([`Speaker::emo_cond_emb`]; `emo_alpha` is
    /// then 1, as in the reference).
    #[default]
    SameAsSpeaker,
    /// A second clip's `emo_cond_emb` ([`IndexTts2::emotion_clip`]), blended
    /// with the speaker's by `emo_alpha`.
    Clip(Tensor),
    /// Weights of happy, angry, sad, afraid, disgusted, melancholic,
    /// surprised, calm (scaled by `emo_alpha`, truncated to 4 decimals).
    Vector([f64; 8]),
}

/// The controls of one synthesis.
#[derive(Debug, Clone)]
pub struct Options {
    /// Emotion control.
    pub emotion: Emotion,
    /// Strength of the emotion clip or vector (clamped to 0–1).
    pub emo_alpha: f64,
    /// The GPT's sampling.
    pub sampling: Sampling,
    /// Flow-matching steps and guidance.
    pub cfm: CfmParams,
    /// Silence between segments (ms).
    pub interval_silence_ms: u32,
    /// Seed of the sampling draws and the flow-matching noise.
    pub seed: u64,
    /// The flow-matching noise of each segment (`[1, mels, frames]`) instead
    /// of drawing it (parity tests pass the reference's).
    pub noise: Option<Vec<Tensor>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            emotion: Emotion::SameAsSpeaker,
            emo_alpha: 1.0,
            sampling: Sampling::default(),
            cfm: CfmParams::default(),
            interval_silence_ms: 200,
            seed: 0,
            noise: None,
        }
    }
}

/// One segment's outcome.
#[derive(Debug, Clone)]
pub struct SegmentReport {
    /// Its mel codes (without the stop code).
    pub codes: Vec<u32>,
    /// Whether the stop code ended it (else `max_mel_tokens` did).
    pub stopped: bool,
    /// Its samples (silence excluded).
    pub samples: usize,
}

/// Where the time went (milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// The emotion conditioning (emotion vectors, the GPT's emotion path).
    pub emotion_ms: f64,
    /// Decoding the mel codes and the latent pass.
    pub gpt_ms: f64,
    /// `gpt_layer`, length regulator and flow matching.
    pub s2mel_ms: f64,
    /// BigVGAN.
    pub vocoder_ms: f64,
}

/// A synthesis.
#[derive(Debug, Clone)]
pub struct Synthesis {
    /// Mono samples in [−1, 1] at [`SAMPLE_RATE`].
    pub samples: Vec<f32>,
    /// Mel codes over all segments.
    pub mel_tokens: usize,
    /// Per segment.
    pub segments: Vec<SegmentReport>,
    /// Timings.
    pub timings: Timings,
    /// `on_audio` asked to stop before the end.
    pub stopped: bool,
}

/// A cached resampler and its (from, to) rates.
type Resamplers = ((u32, u32), std::sync::Arc<Resampler>);

/// The loaded IndexTTS2 pipeline.
pub struct IndexTts2 {
    cfg: IndexTts2Config,
    w2v: W2vBert,
    w2v_padding: f32,
    stats: SemanticStats,
    codec: SemanticCodec,
    campplus: CampPlus,
    conditioning: GptConditioning,
    gpt: UnifiedVoiceGpt,
    gpt_layer: GptLayer,
    length_regulator: LengthRegulator,
    dit: Dit,
    vocoder: BigVgan,
    emotions: EmotionMatrices,
    tokenizer: Option<TextTokenizer>,
    /// Resamplers by (from, to) rate: their kernels are built once.
    resamplers: std::sync::Mutex<Vec<Resamplers>>,
    device: Device,
}

impl std::fmt::Debug for IndexTts2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexTts2")
            .field("gpt_layers", &self.cfg.gpt.layers)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

impl IndexTts2 {
    /// Builds the pipeline from its configuration and weights. A missing
    /// or mis-shaped tensor fails naming the component, the tensor and the
    /// expected shape.
    pub fn new(cfg: IndexTts2Config, aux: &AuxConfigs, w: Weights) -> Result<Self> {
        let device = w.gpt.device().clone();
        let gpt_layer = in_component(
            "s2mel (gpt_layer)",
            GptLayer::load(
                &w.s2mel.pp("gpt_layer"),
                &GptLayerConfig {
                    widths: vec![
                        cfg.gpt.model_dim,
                        256,
                        128,
                        cfg.length_regulator.in_channels,
                    ],
                },
            ),
        )?;
        let emotions = in_component(
            "emotion matrices",
            EmotionMatrices::new(&w.spk_matrix, &w.emo_matrix, &cfg.emo_num),
        )?;
        Ok(Self {
            w2v: in_component("w2v-BERT", W2vBert::load(&w.w2v_bert, &aux.w2v_bert))?,
            w2v_padding: aux.w2v_padding_value,
            stats: in_component(
                "w2v-BERT statistics",
                SemanticStats::load(&w.w2v_stats, aux.w2v_bert.hidden_size),
            )?,
            codec: in_component(
                "semantic codec",
                SemanticCodec::load(&w.semantic_codec, &cfg.semantic_codec),
            )?,
            campplus: in_component(
                "CAMPPlus",
                CampPlus::load(&w.campplus, &CampPlusConfig::default()),
            )?,
            conditioning: in_component(
                "gpt (conditioning)",
                GptConditioning::load(&w.gpt, &cfg.conditioning),
            )?,
            gpt: in_component("gpt", UnifiedVoiceGpt::load(&w.gpt, &cfg.gpt))?,
            gpt_layer,
            length_regulator: in_component(
                "s2mel (length_regulator)",
                LengthRegulator::load(&w.s2mel.pp("length_regulator"), &cfg.length_regulator),
            )?,
            dit: in_component(
                "s2mel (cfm)",
                Dit::load(&w.s2mel.pp("cfm.estimator"), &cfg.dit),
            )?,
            vocoder: in_component("BigVGAN", BigVgan::load(&w.bigvgan, &aux.bigvgan))?,
            emotions,
            tokenizer: None,
            resamplers: std::sync::Mutex::new(Vec::new()),
            cfg,
            device,
        })
    }

    /// Loads a checkpoint directory and the auxiliary models from their
    /// official files. A missing tensor, or one of another shape, fails
    /// naming it and the expected shape.
    pub fn load(ckpt: &Checkpoint, aux: &AuxModels, device: &Device) -> Result<Self> {
        let f = &ckpt.config.files;
        let matrix = |name: &str| -> Result<Tensor> {
            let path = ckpt.path(name);
            let mut all = read_pth(&path, device)?;
            all.remove("").ok_or_else(|| Error::Format {
                path: path.display().to_string(),
                reason: "expected one pickled tensor".into(),
            })
        };
        let aux_cfg = AuxConfigs {
            w2v_bert: checkpoint::w2v_bert_config(&aux.w2v_bert)?,
            w2v_padding_value: checkpoint::w2v_bert_padding_value(&aux.w2v_bert)?,
            bigvgan: checkpoint::bigvgan_config(&aux.bigvgan)?,
        };
        let weights = Weights {
            gpt: pth_var_builder(&ckpt.path(&f.gpt), device)?,
            s2mel: pth_var_builder(&ckpt.path(&f.s2mel), device)?.pp("net"),
            w2v_bert: safetensors_var_builder(&aux.w2v_bert.join("model.safetensors"), device)?,
            w2v_stats: pth_var_builder(&ckpt.path(&f.w2v_stat), device)?,
            semantic_codec: safetensors_var_builder(&aux.semantic_codec, device)?,
            campplus: pth_var_builder(&aux.campplus, device)?,
            bigvgan: pth_var_builder(&aux.bigvgan.join("bigvgan_generator.pt"), device)?
                .pp("generator"),
            spk_matrix: matrix(&f.spk_matrix)?,
            emo_matrix: matrix(&f.emo_matrix)?,
        };
        let tokenizer = TextTokenizer::load(ckpt.path(&f.bpe_model))?;
        Ok(Self::new(ckpt.config.clone(), &aux_cfg, weights)?.with_tokenizer(tokenizer))
    }

    /// The pipeline with a text front end ([`Self::text_segments`]).
    pub fn with_tokenizer(mut self, tokenizer: TextTokenizer) -> Self {
        self.tokenizer = Some(tokenizer);
        self
    }

    /// `text` normalised, tokenised and split into segments of at most
    /// `max_text_tokens_per_segment` tokens (`infer`'s default is 120), as
    /// ids for [`Self::synthesize`].
    pub fn text_segments(
        &self,
        text: &str,
        max_text_tokens_per_segment: usize,
    ) -> Result<Vec<Vec<u32>>> {
        let tokenizer = self.tokenizer.as_ref().ok_or_else(|| {
            Error::Config("this pipeline was built without a text front end (bpe.model)".into())
        })?;
        if max_text_tokens_per_segment == 0 {
            return Err(Error::Config(
                "max_text_tokens_per_segment must be at least 1".into(),
            ));
        }
        tokenizer.segment_ids(text, max_text_tokens_per_segment, 0)
    }

    /// The configuration.
    pub fn config(&self) -> &IndexTts2Config {
        &self.cfg
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn resampler(&self, from: u32, to: u32) -> Result<std::sync::Arc<Resampler>> {
        let mut cache = self
            .resamplers
            .lock()
            .map_err(|_| Error::Config("resampler cache poisoned".into()))?;
        if let Some((_, r)) = cache.iter().find(|(rates, _)| *rates == (from, to)) {
            return Ok(r.clone());
        }
        let r = std::sync::Arc::new(Resampler::new(from, to)?);
        if cache.len() < 8 {
            cache.push(((from, to), r.clone()));
        }
        Ok(r)
    }

    fn semantic(&self, audio_16k: &[f32]) -> Result<Tensor> {
        let feats = w2v_bert::features(audio_16k, self.w2v_padding, &self.device)?;
        w2v_bert::semantic_embedding(&self.w2v, &self.stats, &feats, SEMANTIC_LAYER)
    }

    /// Prepares a reference clip (mono, `sample_rate` Hz): the reference
    /// loads it at 22,050 Hz (librosa's soxr resampling; here torchaudio's
    /// sinc resampling, which the reference then uses for 16 kHz) and keeps
    /// the first 15 s; as its own emotion reference it loads it again at
    /// 16 kHz (a second w2v-BERT pass unless the clip is at 22,050 Hz and
    /// within 15 s).
    pub fn speaker(&self, samples: &[f32], sample_rate: u32) -> Result<Speaker> {
        check_clip(samples, sample_rate, "reference clip")?;
        let clip = if sample_rate == SAMPLE_RATE {
            samples.to_vec()
        } else {
            self.resampler(sample_rate, SAMPLE_RATE)?.process(samples)
        };
        let keep = (MAX_CLIP_SECONDS * f64::from(SAMPLE_RATE)) as usize;
        let clip = &clip[..clip.len().min(keep)];
        let audio_16k = self.resampler(SAMPLE_RATE, W2V_RATE)?.process(clip);
        let cond_emb = self.semantic(&audio_16k)?;
        let (_, s_ref) = self.codec.quantize(&cond_emb)?;
        let ref_mel = audio::mel_spectrogram(clip, &self.cfg.mel, &self.device)?;
        let frames = ref_mel.dim(2)?;
        let prompt_condition = self.length_regulator.forward(&s_ref, frames)?;
        let fbank = audio::kaldi_fbank(&audio_16k, &FbankConfig::campplus(), &self.device)?;
        let fbank = fbank.broadcast_sub(&fbank.mean_keepdim(0)?)?;
        let style = self.campplus.forward(&fbank.unsqueeze(0)?)?;
        let speech_latent = self.conditioning.speech_latent(&cond_emb)?;
        // At 22,050 Hz and within 15 s, both paths resample the same samples
        // the same way.
        let emo_cond_emb = if sample_rate == SAMPLE_RATE && samples.len() <= keep {
            cond_emb.clone()
        } else {
            self.emotion_clip(samples, sample_rate)?
        };
        Ok(Speaker {
            cond_emb,
            emo_cond_emb,
            speech_latent,
            style,
            prompt_condition,
            ref_mel,
            seconds: clip.len() as f64 / f64::from(SAMPLE_RATE),
        })
    }

    /// An emotion clip's `emo_cond_emb` (mono, `sample_rate` Hz; the
    /// reference loads it at 16 kHz and keeps the first 15 s).
    pub fn emotion_clip(&self, samples: &[f32], sample_rate: u32) -> Result<Tensor> {
        check_clip(samples, sample_rate, "emotion clip")?;
        let audio = if sample_rate == W2V_RATE {
            samples.to_vec()
        } else {
            self.resampler(sample_rate, W2V_RATE)?.process(samples)
        };
        let keep = (MAX_CLIP_SECONDS * f64::from(W2V_RATE)) as usize;
        self.semantic(&audio[..audio.len().min(keep)])
    }

    /// The emotion vector the GPT receives, as `infer` builds it: its
    /// `merge_emovec` of the speaker and emotion clips (the speaker clip
    /// as its own emotion clip, with alpha 1, when there is no other), then the mix of
    /// the emotion matrices when weights are given.
    pub fn emotion_vector(&self, speaker: &Speaker, opts: &Options) -> Result<Tensor> {
        let (spk, own) = (&speaker.cond_emb, &speaker.emo_cond_emb);
        match &opts.emotion {
            Emotion::SameAsSpeaker => Ok(self.conditioning.merge_emovec(spk, own, 1.0)?),
            Emotion::Clip(emo) => Ok(self.conditioning.merge_emovec(spk, emo, opts.emo_alpha)?),
            Emotion::Vector(v) => {
                if v.iter().any(|x| !x.is_finite() || *x < 0.0) {
                    return Err(Error::Config(
                        "emotion weights must be finite and non-negative".into(),
                    ));
                }
                let w = scale_emo_vector(v, opts.emo_alpha);
                let base = self.conditioning.merge_emovec(spk, own, 1.0)?;
                self.emotions.blend(&speaker.style, &w, &base)
            }
        }
    }

    /// Synthesises token segments (each at most `gpt.max_text_tokens`)
    /// with `speaker`'s voice. `on_audio` receives the samples as they are
    /// made: each segment, then the silence after it (the reference's
    /// streaming order); when it answers `Break`, synthesis stops there
    /// ([`Synthesis::stopped`]).
    pub fn synthesize(
        &self,
        speaker: &Speaker,
        segments: &[Vec<u32>],
        opts: &Options,
        on_audio: &mut dyn FnMut(&[f32]) -> ControlFlow<()>,
    ) -> Result<Synthesis> {
        let c = &self.cfg.gpt;
        if segments.is_empty() {
            return Err(Error::Config("nothing to say: no text segments".into()));
        }
        for s in segments {
            if s.is_empty() || s.len() > c.max_text_tokens {
                return Err(Error::Config(format!(
                    "a segment has {} text tokens; 1 to {} are allowed",
                    s.len(),
                    c.max_text_tokens
                )));
            }
            if let Some(t) = s.iter().find(|&&t| t as usize >= c.number_text_tokens) {
                return Err(Error::Config(format!(
                    "text token {t} is outside the GPT's {} tokens",
                    c.number_text_tokens
                )));
            }
        }
        if let Some(n) = &opts.noise {
            if n.len() != segments.len() {
                return Err(Error::Config(format!(
                    "{} noise tensors given for {} segments",
                    n.len(),
                    segments.len()
                )));
            }
        }
        let mut timings = Timings::default();
        let t0 = Instant::now();
        let emovec = self.emotion_vector(speaker, opts)?;
        timings.emotion_ms = ms(t0);
        let mut sampling_draws = Draws::new(opts.seed);
        let mut noise_draws = Draws::new(opts.seed.wrapping_add(1));
        let silence = vec![
            0f32;
            (f64::from(SAMPLE_RATE) * f64::from(opts.interval_silence_ms) / 1000.0)
                as usize
        ];
        let mut out = Synthesis {
            samples: Vec::new(),
            mel_tokens: 0,
            segments: Vec::new(),
            timings,
            stopped: false,
        };
        let p = speaker.ref_mel.dim(2)?;
        let mels = speaker.ref_mel.dim(1)?;
        for (i, text) in segments.iter().enumerate() {
            let t = Instant::now();
            let prompt = self.gpt.prompt(&speaker.speech_latent, &emovec, text)?;
            let decoded = self
                .gpt
                .generate(&prompt, &opts.sampling, &mut || sampling_draws.uniform())?;
            let codes = decoded.codes;
            let wav = if codes.is_empty() {
                out.timings.gpt_ms += ms(t);
                Vec::new()
            } else {
                let latent = self
                    .gpt
                    .latent(&speaker.speech_latent, &emovec, text, &codes)?;
                out.timings.gpt_ms += ms(t);

                let t = Instant::now();
                let code_t = Tensor::new(codes.as_slice(), &self.device)?.unsqueeze(0)?;
                let s_infer = (self.codec.vq2emb(&code_t)? + self.gpt_layer.forward(&latent)?)?;
                let frames = target_frames(codes.len());
                let cond = self.length_regulator.forward(&s_infer, frames)?;
                let mu = Tensor::cat(&[&speaker.prompt_condition, &cond], 1)?;
                let total = mu.dim(1)?;
                let noise = match &opts.noise {
                    Some(n) => n[i].to_device(&self.device)?.to_dtype(DType::F32)?,
                    None => Tensor::from_vec(
                        noise_draws.normals(mels * total),
                        (1, mels, total),
                        &self.device,
                    )?,
                };
                let mel = flow_matching::inference(
                    &self.dit,
                    &mu,
                    &speaker.ref_mel,
                    &speaker.style,
                    &noise,
                    opts.cfm,
                )?;
                let mel = mel.narrow(2, p, total - p)?;
                out.timings.s2mel_ms += ms(t);

                let t = Instant::now();
                let wav = self.vocoder.forward(&mel)?.clamp(-1f32, 1f32)?;
                let wav: Vec<f32> = wav.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
                out.timings.vocoder_ms += ms(t);
                wav
            };
            let go = on_audio(&wav);
            out.samples.extend_from_slice(&wav);
            out.mel_tokens += codes.len();
            out.segments.push(SegmentReport {
                samples: wav.len(),
                codes,
                stopped: decoded.stopped,
            });
            if go.is_break() {
                out.stopped = true;
                break;
            }
            if i + 1 < segments.len() {
                out.samples.extend_from_slice(&silence);
                if on_audio(&silence).is_break() {
                    out.stopped = true;
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// Names the component in a load error, keeping the first line of the
/// tensor error (candle may append a backtrace).
fn in_component<T>(what: &str, r: Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        Error::Candle(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default().to_string();
            Error::Format {
                path: what.to_string(),
                reason: first,
            }
        }
        other => other,
    })
}

fn check_clip(samples: &[f32], sample_rate: u32, what: &str) -> Result<()> {
    if !(8_000..=192_000).contains(&sample_rate) {
        return Err(Error::Config(format!(
            "{what}: sample rate {sample_rate} Hz is outside 8,000–192,000"
        )));
    }
    // w2v-BERT's features need at least one 25 ms frame at 16 kHz, CAMPPlus
    // a few: ask for a tenth of a second.
    if (samples.len() as u64) * 10 < u64::from(sample_rate) {
        return Err(Error::Config(format!(
            "{what}: {} samples at {sample_rate} Hz is shorter than 0.1 s",
            samples.len()
        )));
    }
    if samples.iter().any(|x| !x.is_finite()) {
        return Err(Error::Config(format!("{what}: non-finite samples")));
    }
    Ok(())
}
