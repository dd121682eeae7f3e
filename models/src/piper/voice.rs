//! The public voice API of the Piper engine: load a Piper voice directory,
//! synthesise text.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use serde::Deserialize;

use super::decode::Network;
use super::onnx::Weights;
use super::phonemize::Phonemizer;
use super::vits::Scales;
use crate::engine::{
    Audio, Capabilities, Control, Controls, EmotionSupport, Engine, EngineKind, Language, Request,
    Streamed, Streaming, Timings,
};
use crate::Error;

/// The parts of a Piper `.onnx.json` the voice uses.
#[derive(Debug, Clone, Deserialize)]
pub struct VoiceConfig {
    /// Audio settings.
    pub audio: AudioConfig,
    /// espeak settings.
    pub espeak: EspeakConfig,
    /// Default scales.
    #[serde(default)]
    pub inference: InferenceConfig,
    /// Phoneme (one character) to ids.
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    /// Number of speakers (1 for single-speaker voices).
    #[serde(default = "one")]
    pub num_speakers: usize,
    /// Speaker names to ids.
    #[serde(default)]
    pub speaker_id_map: HashMap<String, u32>,
    /// The phoneme type; only `espeak` is supported.
    #[serde(default = "espeak")]
    pub phoneme_type: String,
    /// Version of Piper that exported the voice.
    #[serde(default)]
    pub piper_version: Option<String>,
}

fn one() -> usize {
    1
}

fn espeak() -> String {
    "espeak".into()
}

/// `audio` in the voice config.
#[derive(Debug, Clone, Deserialize)]
pub struct AudioConfig {
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// `x_low`, `low`, `medium` or `high`.
    #[serde(default)]
    pub quality: Option<String>,
}

/// `espeak` in the voice config.
#[derive(Debug, Clone, Deserialize)]
pub struct EspeakConfig {
    /// The espeak-ng voice, e.g. `en-us`.
    pub voice: String,
}

/// `inference` in the voice config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InferenceConfig {
    /// Default noise scale.
    #[serde(default = "default_noise_scale")]
    pub noise_scale: f32,
    /// Default length scale.
    #[serde(default = "default_length_scale")]
    pub length_scale: f32,
    /// Default noise width.
    #[serde(default = "default_noise_w")]
    pub noise_w: f32,
}

fn default_noise_scale() -> f32 {
    0.667
}
fn default_length_scale() -> f32 {
    1.0
}
fn default_noise_w() -> f32 {
    0.8
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            noise_scale: default_noise_scale(),
            length_scale: default_length_scale(),
            noise_w: default_noise_w(),
        }
    }
}

/// What a loaded voice is.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceInfo {
    /// The directory name, e.g. `en_US-joe-medium`.
    pub name: String,
    /// The espeak language, e.g. `en-us`.
    pub language: String,
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// Number of speakers.
    pub num_speakers: usize,
    /// Speaker names ordered by id (empty for single-speaker voices).
    pub speaker_names: Vec<String>,
    /// A stable description of the model, e.g. `piper-vits-medium/en_US-joe-medium`.
    pub model_version: String,
    /// Piper quality.
    pub quality: String,
    /// Default scales from the voice config.
    pub defaults: InferenceConfig,
    /// What a user of the voice must know about its licence (its training
    /// data's, say), when there is something to say.
    pub licence: Option<String>,
}

/// Synthesis settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthesisParams {
    /// Variation of the voice (0: deterministic).
    pub noise_scale: f32,
    /// Duration multiplier (2.0: half speed).
    pub length_scale: f32,
    /// Variation of phoneme durations (0: deterministic).
    pub noise_w: f32,
    /// Speaker id for multi-speaker voices.
    pub speaker: Option<u32>,
}

impl SynthesisParams {
    /// The voice's own defaults.
    pub fn from_voice(info: &VoiceInfo) -> Self {
        Self {
            noise_scale: info.defaults.noise_scale,
            length_scale: info.defaults.length_scale,
            noise_w: info.defaults.noise_w,
            speaker: None,
        }
    }

    /// The voice's defaults, overridden by the Piper controls that are set
    /// (the others are not looked at: see [`Controls::check`]).
    ///
    /// ```
    /// # use models::{Controls, SynthesisParams, VoiceInfo};
    /// # let info = VoiceInfo { name: "v".into(), language: "en-us".into(), sample_rate: 22050,
    /// #     num_speakers: 1, speaker_names: vec![], model_version: "v".into(),
    /// #     quality: "medium".into(), defaults: Default::default(), licence: None };
    /// let c = Controls { noise_w: Some(0.0), ..Controls::default() };
    /// let p = SynthesisParams::from_controls(&info, &c);
    /// assert_eq!(p.noise_w, 0.0);
    /// assert_eq!(p.noise_scale, info.defaults.noise_scale);
    /// ```
    pub fn from_controls(info: &VoiceInfo, c: &Controls) -> Self {
        let d = Self::from_voice(info);
        Self {
            noise_scale: c.noise_scale.unwrap_or(d.noise_scale),
            length_scale: c.length_scale.unwrap_or(d.length_scale),
            noise_w: c.noise_w.unwrap_or(d.noise_w),
            speaker: c.speaker,
        }
    }
}

/// The controls a Piper voice honours.
pub const PIPER_CONTROLS: [Control; 4] = [
    Control::Speaker,
    Control::NoiseScale,
    Control::LengthScale,
    Control::NoiseW,
];

/// The first piece of a long first sentence, in latent frames (about
/// 0.28 s of audio at 22,050 Hz): what a listener waits for.
pub const FIRST_PIECE_FRAMES: usize = 24;
/// A first sentence longer than this (about 0.74 s) is decoded in two pieces.
pub const SPLIT_OVER_FRAMES: usize = 64;

/// Sentences whose peaks calibrate a voice's output gain (noise off).
const CALIBRATION: &str = "Hello there, how can I help you today? \
    The quick brown fox jumps over the lazy dog! \
    Is it really ten past seven already?";
/// Where the calibration sentences' loudest sample lands after the gain.
const CALIBRATION_PEAK: f32 = 0.9;

/// A Piper voice ready to speak.
#[derive(Debug)]
pub struct Voice {
    info: VoiceInfo,
    caps: Capabilities,
    phonemizer: Phonemizer,
    vits: Network,
}

impl Voice {
    /// Loads the voice in `dir` (one `*.onnx` and its `*.onnx.json`) onto
    /// `device`. Every weight is shape-checked as it is read: a file with a
    /// missing tensor or one of the wrong shape is [`Error::NotPiperVoice`],
    /// naming the tensor (and the shape expected).
    pub fn load(dir: &Path, device: &Device) -> Result<Self, Error> {
        let (onnx, json) = find_files(dir)?;
        let text = std::fs::read_to_string(&json).map_err(|e| Error::Io {
            path: json.display().to_string(),
            source: e,
        })?;
        let config: VoiceConfig =
            serde_json::from_str(&text).map_err(|e| Error::NotPiperVoice {
                path: json.display().to_string(),
                reason: format!("bad voice config: {e}"),
            })?;
        if config.phoneme_type != "espeak" {
            return Err(Error::Config(format!(
                "phoneme_type {:?} is not supported (only espeak)",
                config.phoneme_type
            )));
        }
        let weights = Weights::load(&onnx, device)?;
        // A missing tensor or a wrong shape is a bad voice file, named.
        let vits = Network::load(&weights.var_builder(device)).map_err(|e| match e {
            Error::Candle(c) => Error::NotPiperVoice {
                path: weights.path().to_owned(),
                // The message, without the backtrace RUST_BACKTRACE adds.
                reason: match c {
                    candle_core::Error::WithBacktrace { inner, .. } => inner.to_string(),
                    other => other.to_string(),
                },
            },
            other => other,
        })?;
        drop(weights);
        let phonemizer = Phonemizer::new(&config.espeak.voice, &config.phoneme_id_map)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "voice".into());
        let quality = config
            .audio
            .quality
            .clone()
            .unwrap_or_else(|| "medium".into());
        let mut speakers: Vec<(String, u32)> = config.speaker_id_map.clone().into_iter().collect();
        speakers.sort_by_key(|(_, id)| *id);
        let info = VoiceInfo {
            model_version: format!("piper-vits-{quality}/{name}"),
            name,
            language: config.espeak.voice.clone(),
            sample_rate: config.audio.sample_rate,
            num_speakers: config.num_speakers.max(1),
            speaker_names: speakers.into_iter().map(|(n, _)| n).collect(),
            quality,
            defaults: config.inference.clone(),
            licence: None,
        };
        let caps = Capabilities {
            engine: EngineKind::Piper,
            sample_rate: info.sample_rate,
            num_speakers: info.num_speakers,
            speakers: info.speaker_names.clone(),
            reference_audio: false,
            emotion: EmotionSupport::default(),
            sampling: Vec::new(),
            controls: PIPER_CONTROLS.to_vec(),
            streaming: Streaming::Pieces {
                first_piece_frames: FIRST_PIECE_FRAMES,
                split_over_frames: SPLIT_OVER_FRAMES,
                samples_per_frame: vits.samples_per_frame(),
            },
            languages: vec![Language::of_tag(&config.espeak.voice)],
            spells: vec![],
        };
        Ok(Self {
            info,
            caps,
            phonemizer,
            vits,
        })
    }

    /// What the voice is.
    pub fn info(&self) -> &VoiceInfo {
        &self.info
    }

    /// The voice's text front end.
    pub fn phonemizer(&self) -> &Phonemizer {
        &self.phonemizer
    }

    /// Speaks `text`: sentence by sentence, joined.
    pub fn synthesize(&self, text: &str, params: &SynthesisParams) -> Result<Audio, Error> {
        let t0 = Instant::now();
        let sentences = self.phonemizer.phonemize(text)?;
        let ids: Vec<_> = sentences
            .iter()
            .map(|s| self.phonemizer.to_ids(s))
            .collect();
        let phonemize_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let mut samples = Vec::new();
        // Sentences are joined directly, as Piper does by default.
        for s in &ids {
            samples.extend(self.synthesize_ids(&s.ids, params)?);
        }
        Ok(Audio {
            samples,
            sample_rate: self.info.sample_rate,
            timings: Timings {
                phonemize_ms,
                infer_ms: t1.elapsed().as_secs_f64() * 1e3,
            },
            unknown_phonemes: ids.iter().map(|s| s.unknown).sum(),
            sentences: ids.len(),
        })
    }

    /// Speaks `text` piece by piece, handing each piece's samples to `sink`
    /// as soon as it exists: sentence by sentence, and when `split_first`,
    /// the first sentence (if longer than [`SPLIT_OVER_FRAMES`]) in two
    /// pieces, the first [`FIRST_PIECE_FRAMES`] frames long. The decoder sees
    /// enough context on each side of a cut that the samples are those of
    /// decoding the sentence whole. `sink` returns `Break` to stop (a client
    /// that went away): no further piece is synthesised.
    ///
    /// ```no_run
    /// # use std::ops::ControlFlow;
    /// # let voice = models::Voice::load("cache_hub/piper/en_US-joe-medium".as_ref(), &candle_core::Device::Cpu)?;
    /// let params = models::SynthesisParams::from_voice(voice.info());
    /// let mut audio = Vec::new();
    /// voice.synthesize_stream("Hello. How are you?", &params, true, &mut |piece: &[f32]| {
    ///     audio.extend_from_slice(piece);
    ///     ControlFlow::Continue(())
    /// })?;
    /// # Ok::<(), models::Error>(())
    /// ```
    pub fn synthesize_stream(
        &self,
        text: &str,
        params: &SynthesisParams,
        split_first: bool,
        sink: &mut dyn FnMut(&[f32]) -> ControlFlow<()>,
    ) -> Result<Streamed, Error> {
        let mut out = Streamed::default();
        let scales = self.scales(params)?;
        for (i, sentence) in self.phonemizer.phonemize(text)?.iter().enumerate() {
            let ids = self.phonemizer.to_ids(sentence);
            out.unknown_phonemes += ids.unknown;
            out.sentences += 1;
            let Some(latent) = self.vits.latent(&ids.ids, scales, params.speaker)? else {
                continue;
            };
            let n = latent.frames();
            let cuts: &[usize] = if split_first && i == 0 && n > SPLIT_OVER_FRAMES {
                &[0, FIRST_PIECE_FRAMES, usize::MAX]
            } else {
                &[0, usize::MAX]
            };
            for w in cuts.windows(2) {
                let samples = self.vits.decode(&latent, w[0], w[1])?;
                if out.send(sink, &samples).is_break() {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// The gain that brings this voice's output to a steady loudness:
    /// calibration sentences (noise off) peak at 0.9 of full scale. Unlike
    /// a peak normalisation of each output, it needs no look-ahead, so
    /// streamed and whole responses get the same samples, and loudness no
    /// longer depends on the loudest moment of each text.
    pub fn calibrated_gain(&self) -> Result<f32, Error> {
        let quiet = SynthesisParams {
            noise_scale: 0.0,
            noise_w: 0.0,
            ..SynthesisParams::from_voice(&self.info)
        };
        let audio = self.synthesize(CALIBRATION, &quiet)?;
        let peak = audio
            .samples
            .iter()
            .filter(|x| x.is_finite())
            .fold(0.0f32, |m, x| m.max(x.abs()));
        Ok(if peak > 1e-3 {
            CALIBRATION_PEAK / peak
        } else {
            1.0
        })
    }

    fn scales(&self, params: &SynthesisParams) -> Result<Scales, Error> {
        if let Some(s) = params.speaker {
            if s as usize >= self.info.num_speakers {
                return Err(Error::Speaker {
                    speaker: s,
                    speakers: self.info.num_speakers,
                });
            }
        }
        Ok(Scales {
            noise_scale: params.noise_scale.max(0.0),
            length_scale: params.length_scale.max(0.01),
            noise_w: params.noise_w.max(0.0),
        })
    }

    /// Speaks one sentence's phoneme ids (as `^ _ p1 _ … _ $`).
    pub fn synthesize_ids(&self, ids: &[i64], params: &SynthesisParams) -> Result<Vec<f32>, Error> {
        let scales = self.scales(params)?;
        self.vits.infer(ids, scales, params.speaker)
    }
}

/// A Piper voice behind the engine seam: it honours [`PIPER_CONTROLS`] and
/// fails with [`Error::Unsupported`] for any other control.
///
/// ```no_run
/// use models::{Controls, Engine, Request, Voice};
/// let voice = Voice::load("cache_hub/piper/en_US-joe-medium".as_ref(), &candle_core::Device::Cpu)?;
/// let c = Controls { top_k: Some(5), ..Controls::default() };
/// let err = Engine::synthesize(&voice, &Request::new("Hi.", &c)).unwrap_err();
/// assert!(err.to_string().contains("does not support top_k"));
/// # Ok::<(), models::Error>(())
/// ```
impl Engine for Voice {
    fn info(&self) -> &VoiceInfo {
        &self.info
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn synthesize(&self, request: &Request<'_>) -> Result<Audio, Error> {
        request.controls.check(&self.caps)?;
        let params = SynthesisParams::from_controls(&self.info, request.controls);
        // The speaker is checked here as in the streamed path.
        self.scales(&params)?;
        Voice::synthesize(self, request.text, &params)
    }

    fn synthesize_stream(
        &self,
        request: &Request<'_>,
        split_first: bool,
        sink: &mut dyn FnMut(&[f32]) -> ControlFlow<()>,
    ) -> Result<Streamed, Error> {
        request.controls.check(&self.caps)?;
        let params = SynthesisParams::from_controls(&self.info, request.controls);
        Voice::synthesize_stream(self, request.text, &params, split_first, sink)
    }
}

/// The `.onnx` and `.onnx.json` of a voice directory.
fn find_files(dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let hint = "run scripts/fetch-models.sh to install the default voice";
    let entries = std::fs::read_dir(dir).map_err(|_| {
        Error::Missing(format!(
            "voice directory {} does not exist: {hint}",
            dir.display()
        ))
    })?;
    let onnx: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    match onnx.as_slice() {
        [one] => {
            let mut json = one.clone().into_os_string();
            json.push(".json");
            let json = PathBuf::from(json);
            if json.is_file() {
                Ok((one.clone(), json))
            } else {
                Err(Error::Missing(format!(
                    "{} is missing: {hint}",
                    json.display()
                )))
            }
        }
        [] => Err(Error::Missing(format!(
            "no .onnx voice in {}: {hint}",
            dir.display()
        ))),
        _ => Err(Error::Missing(format!(
            "several .onnx files in {}: a voice directory holds one",
            dir.display()
        ))),
    }
}
