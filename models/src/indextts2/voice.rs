//! An IndexTTS2 voice behind the engine seam ([`crate::Engine`]): the
//! pipeline of a checkpoint directory, the speakers stored as clips, and a
//! small cache of prepared reference and emotion clips (preparing one runs
//! w2v-BERT, the semantic codec, CAMPPlus and the GPT's conditioning, as the
//! reference caches per clip).
//!
//! Controls: `reference_audio` (a clip) or `speaker` (a stored clip; the
//! first one when neither is given), `emotion` (eight weights) or
//! `emotion_audio`, `emo_alpha`, and the GPT's sampling (`top_k`, `top_p`,
//! `temperature`, `repetition_penalty`, `num_beams`, `max_mel_tokens`).
//! Audio comes per text segment (at most 120 tokens), with 200 ms of
//! silence between segments.
//!
//! ```no_run
//! use models::indextts2::checkpoint::AuxModels;
//! use models::indextts2::voice::IndexTts2Voice;
//! use models::{Controls, Engine, Request};
//!
//! let voice = IndexTts2Voice::load(
//!     "cache_hub/indextts2/IndexTTS-2".as_ref(),
//!     &AuxModels::default_hub_dir(),
//!     &[("alice".into(), "cache_hub/voices/alice.wav".into())],
//!     &candle_core::Device::Cpu,
//! )?;
//! let controls = Controls { emotion: Some(vec![0.6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.0]), ..Controls::default() };
//! let audio = voice.synthesize(&Request::new("Hello there.", &controls))?;
//! println!("{} s", audio.seconds());
//! # Ok::<(), models::Error>(())
//! ```

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::{Device, Tensor};

use super::checkpoint::{AuxModels, Checkpoint};
use super::flow_matching::CfmParams;
use super::gpt::Sampling;
use super::pipeline::{Emotion, IndexTts2, Options, Speaker, MAX_CLIP_SECONDS, SAMPLE_RATE};
use crate::engine::{
    Audio, Capabilities, Clip, Control, EmotionSupport, Engine, EngineKind, IndexTts2Stats,
    Language, Request, Streamed, Streaming, Timings,
};
use crate::piper::{InferenceConfig, VoiceInfo};
use crate::Error;

/// Text tokens per segment (`infer`'s `max_text_tokens_per_segment`).
pub const MAX_TEXT_TOKENS_PER_SEGMENT: usize = 120;
/// Prepared clips kept (speaker and emotion clips each).
const CACHED_CLIPS: usize = 4;
/// The longest stored speaker clip read (seconds).
pub const MAX_STORED_CLIP_SECONDS: f64 = 30.0;

/// A clip's identity in the cache: its rate, length and a hash of its samples.
type ClipKey = (u32, usize, u64);

fn clip_key(clip: &Clip) -> ClipKey {
    // FNV-1a over the samples' bits: cheap next to preparing the clip.
    let h = clip.samples.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, x| {
        (h ^ u64::from(x.to_bits())).wrapping_mul(0x0100_0000_01B3)
    });
    (clip.sample_rate, clip.samples.len(), h)
}

/// A small most-recently-used cache.
struct Recent<T> {
    entries: Mutex<Vec<(ClipKey, Arc<T>)>>,
}

impl<T> Recent<T> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
        }
    }

    fn get_or(
        &self,
        clip: &Clip,
        make: impl FnOnce() -> Result<T, Error>,
    ) -> Result<(Arc<T>, bool), Error> {
        let key = clip_key(clip);
        if let Ok(mut e) = self.entries.lock() {
            if let Some(i) = e.iter().position(|(k, _)| *k == key) {
                let hit = e.remove(i);
                let value = hit.1.clone();
                e.push(hit);
                return Ok((value, true));
            }
        }
        let value = Arc::new(make()?);
        if let Ok(mut e) = self.entries.lock() {
            if e.len() >= CACHED_CLIPS {
                e.remove(0);
            }
            e.push((key, value.clone()));
        }
        Ok((value, false))
    }

    fn clear(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.clear();
        }
    }
}

/// An IndexTTS2 voice.
pub struct IndexTts2Voice {
    tts: IndexTts2,
    info: VoiceInfo,
    caps: Capabilities,
    stored: Vec<Arc<Clip>>,
    speakers: Recent<Speaker>,
    emotions: Recent<Tensor>,
    seeds: AtomicU64,
}

impl std::fmt::Debug for IndexTts2Voice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexTts2Voice")
            .field("name", &self.info.name)
            .field("speakers", &self.info.speaker_names)
            .finish_non_exhaustive()
    }
}

impl IndexTts2Voice {
    /// Loads the checkpoint in `dir` (its name is the voice's), the
    /// auxiliary models from the hub cache `hub`, and the stored speakers
    /// (name, WAV file) — each at most 30 s.
    pub fn load(
        dir: &Path,
        hub: &Path,
        speakers: &[(String, PathBuf)],
        device: &Device,
    ) -> Result<Self, Error> {
        let ckpt = Checkpoint::open(dir)?;
        let aux = AuxModels::locate(hub, &ckpt.config.vocoder)?;
        let tts = IndexTts2::load(&ckpt, &aux, device)?;
        let mut stored = Vec::new();
        for (name, path) in speakers {
            let bytes = std::fs::read(path).map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })?;
            let d =
                crate::audio::wav::read_wav_mono(&bytes, MAX_STORED_CLIP_SECONDS).map_err(|e| {
                    Error::Audio(format!("stored speaker {name} ({}): {e}", path.display()))
                })?;
            stored.push((
                name.clone(),
                Arc::new(Clip {
                    samples: d.samples,
                    sample_rate: d.sample_rate,
                }),
            ));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "indextts2".into());
        Ok(Self::new(tts, name, stored))
    }

    /// A voice over a loaded pipeline (with its text front end) and stored
    /// speakers.
    pub fn new(tts: IndexTts2, name: String, stored: Vec<(String, Arc<Clip>)>) -> Self {
        let speaker_names: Vec<String> = stored.iter().map(|(n, _)| n.clone()).collect();
        let mut controls = vec![
            Control::ReferenceAudio,
            Control::Emotion,
            Control::EmotionAudio,
            Control::EmoAlpha,
        ];
        if !stored.is_empty() {
            controls.insert(0, Control::Speaker);
        }
        controls.extend(Control::SAMPLING);
        let caps = Capabilities {
            engine: EngineKind::IndexTts2,
            sample_rate: SAMPLE_RATE,
            num_speakers: stored.len(),
            speakers: speaker_names.clone(),
            reference_audio: true,
            emotion: EmotionSupport {
                vector: true,
                audio: true,
            },
            sampling: Control::SAMPLING.to_vec(),
            controls,
            streaming: Streaming::PerSegment,
            languages: vec![Language::of_tag("zh"), Language::of_tag("en")],
            spells: vec![],
        };
        let info = VoiceInfo {
            name,
            language: "zh,en".into(),
            sample_rate: SAMPLE_RATE,
            num_speakers: stored.len(),
            speaker_names,
            model_version: "indextts2".into(),
            quality: "indextts2".into(),
            defaults: InferenceConfig::default(),
            licence: None,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            tts,
            info,
            caps,
            stored: stored.into_iter().map(|(_, c)| c).collect(),
            speakers: Recent::new(),
            emotions: Recent::new(),
            seeds: AtomicU64::new(seed),
        }
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &IndexTts2 {
        &self.tts
    }

    /// The reference clip of a request: its own, a stored speaker, or the
    /// first stored speaker.
    fn reference<'a>(&'a self, request: &'a Request<'_>) -> Result<&'a Clip, Error> {
        let c = request.controls;
        if let Some(clip) = &c.reference_audio {
            return Ok(clip);
        }
        let i = c.speaker.unwrap_or(0) as usize;
        self.stored.get(i).map(|c| c.as_ref()).ok_or_else(|| {
            if self.stored.is_empty() {
                Error::Audio(
                    "this IndexTTS2 voice has no stored speaker: send reference_audio".into(),
                )
            } else {
                Error::Speaker {
                    speaker: i as u32,
                    speakers: self.stored.len(),
                }
            }
        })
    }

    fn options(&self, request: &Request<'_>, emotion: Emotion) -> Options {
        let c = request.controls;
        let d = Sampling::default();
        let sampling = Sampling {
            top_k: c.top_k.map_or(d.top_k, |v| v as usize),
            top_p: c.top_p.unwrap_or(d.top_p),
            temperature: c.temperature.unwrap_or(d.temperature),
            repetition_penalty: c.repetition_penalty.unwrap_or(d.repetition_penalty),
            max_mel_tokens: c.max_mel_tokens.map_or(d.max_mel_tokens, |v| v as usize),
            num_beams: c.num_beams.map_or(d.num_beams, |v| (v as usize).max(1)),
            ..d
        };
        let dc = CfmParams::default();
        let cfm = CfmParams {
            steps: c.diffusion_steps.map_or(dc.steps, |v| (v as usize).max(1)),
            cfg_rate: c.inference_cfg_rate.map_or(dc.cfg_rate, f64::from),
        };
        Options {
            emotion,
            emo_alpha: c.emo_alpha.map_or(1.0, f64::from),
            sampling,
            cfm,
            seed: self
                .seeds
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed),
            ..Options::default()
        }
    }
}

impl Engine for IndexTts2Voice {
    fn info(&self) -> &VoiceInfo {
        &self.info
    }

    fn forget_clips(&self) {
        self.speakers.clear();
        self.emotions.clear();
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn synthesize(&self, request: &Request<'_>) -> Result<Audio, Error> {
        let (samples, s) = crate::engine::collect(self, request)?;
        let stats = s.indextts2.unwrap_or_default();
        Ok(Audio {
            samples,
            sample_rate: SAMPLE_RATE,
            timings: Timings {
                phonemize_ms: 0.0,
                infer_ms: stats.reference_ms + stats.gpt_ms + stats.s2mel_ms + stats.vocoder_ms,
            },
            unknown_phonemes: 0,
            sentences: s.sentences,
        })
    }

    fn synthesize_stream(
        &self,
        request: &Request<'_>,
        _split_first: bool,
        sink: &mut dyn FnMut(&[f32]) -> ControlFlow<()>,
    ) -> Result<Streamed, Error> {
        request.controls.check(&self.caps)?;
        let c = request.controls;
        if let Some(v) = &c.emotion {
            if v.len() != 8 || v.iter().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(Error::Config(
                    "emotion needs 8 finite, non-negative weights".into(),
                ));
            }
        }
        let segments = self
            .tts
            .text_segments(request.text, MAX_TEXT_TOKENS_PER_SEGMENT)?;
        let mut out = Streamed::default();
        if segments.is_empty() {
            out.indextts2 = Some(IndexTts2Stats::default());
            return Ok(out);
        }
        let started = Instant::now();
        let clip = self.reference(request)?;
        let (speaker, _) = self.speakers.get_or(clip, || {
            Ok(self.tts.speaker(&clip.samples, clip.sample_rate)?)
        })?;
        let emotion = match (&c.emotion, &c.emotion_audio) {
            (Some(v), _) => {
                let mut w = [0f64; 8];
                for (o, x) in w.iter_mut().zip(v) {
                    *o = f64::from(*x);
                }
                Emotion::Vector(w)
            }
            (None, Some(e)) => {
                let (emb, _) = self.emotions.get_or(e, || {
                    Ok(self.tts.emotion_clip(&e.samples, e.sample_rate)?)
                })?;
                Emotion::Clip(emb.as_ref().clone())
            }
            (None, None) => Emotion::SameAsSpeaker,
        };
        let reference_ms = started.elapsed().as_secs_f64() * 1000.0;
        let opts = self.options(request, emotion);
        let result = self
            .tts
            .synthesize(&speaker, &segments, &opts, &mut |piece| {
                if piece.is_empty() {
                    return ControlFlow::Continue(());
                }
                out.pieces += 1;
                out.samples += piece.len();
                sink(piece)
            })?;
        out.sentences = result.segments.len();
        out.stopped = result.stopped;
        out.indextts2 = Some(IndexTts2Stats {
            reference_seconds: speaker.seconds.min(MAX_CLIP_SECONDS),
            mel_tokens: result.mel_tokens,
            segments: result.segments.len(),
            reference_ms,
            gpt_ms: result.timings.gpt_ms + result.timings.emotion_ms,
            s2mel_ms: result.timings.s2mel_ms,
            vocoder_ms: result.timings.vocoder_ms,
        });
        Ok(out)
    }
}
