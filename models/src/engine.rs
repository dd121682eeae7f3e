//! The engine seam: what every synthesis engine offers the node. Text and
//! controls in, PCM out; each engine says what it honours in its
//! [`Capabilities`], and [`Controls::check`] refuses a control it does not
//! honour, naming it and what the engine supports.
//!
//! Three engines sit behind it: Piper's VITS ([`crate::piper`], which
//! implements [`Engine`] for [`crate::Voice`]), IndexTTS2
//! ([`crate::indextts2`]) and FastSpeech2 with MB-MelGAN
//! ([`crate::fastspeech2`]). Each declares the languages it speaks
//! ([`Capabilities::languages`]), by the script it reads.
//!
//! ```no_run
//! use models::engine::{Controls, Engine, Request};
//!
//! let voice = models::Voice::load("cache_hub/piper/en_US-joe-medium".as_ref(), &candle_core::Device::Cpu)?;
//! let engine: Box<dyn Engine> = Box::new(voice);
//! let controls = Controls { noise_scale: Some(0.0), ..Controls::default() };
//! let audio = engine.synthesize(&Request::new("Hello there.", &controls))?;
//! assert_eq!(audio.sample_rate, engine.capabilities().sample_rate);
//! # Ok::<(), models::Error>(())
//! ```

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use serde::Serialize;

use crate::text::script::Script;
use crate::{Error, VoiceInfo};

/// A synthesis engine with a loaded voice: text plus controls in, PCM out.
///
/// Object-safe: the node holds its voices as `Box<dyn Engine>`. Implementors
/// check the request's controls against their [`Capabilities`] (see
/// [`Controls::check`]) and fail with [`Error::Unsupported`] for one they do
/// not honour rather than ignoring it.
pub trait Engine: Send + Sync + fmt::Debug {
    /// What the voice is (name, language, sample rate, speakers, version).
    fn info(&self) -> &VoiceInfo;

    /// What the engine honours.
    fn capabilities(&self) -> &Capabilities;

    /// Speaks the request's text whole.
    fn synthesize(&self, request: &Request<'_>) -> Result<Audio, Error>;

    /// Speaks the request's text piece by piece (see
    /// [`Capabilities::streaming`]), handing each piece's samples to `sink`
    /// as soon as it exists. `split_first` asks for a short first piece (to
    /// start playback sooner) where the engine can cut one; `sink` returns
    /// `Break` to stop, and no further piece is synthesised.
    fn synthesize_stream(
        &self,
        request: &Request<'_>,
        split_first: bool,
        sink: &mut dyn FnMut(&[f32]) -> ControlFlow<()>,
    ) -> Result<Streamed, Error>;

    /// Drops what the engine keeps prepared from earlier clips (IndexTTS2's
    /// reference and emotion conditioning), so that a clip that changed is
    /// prepared again. Engines that keep nothing do nothing.
    fn forget_clips(&self) {}
}

/// One synthesis: the text and its controls.
///
/// ```
/// use models::engine::{Controls, Request};
/// let controls = Controls { speaker: Some(2), ..Controls::default() };
/// let request = Request::new("Hello.", &controls);
/// assert_eq!(request.text, "Hello.");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// What to say.
    pub text: &'a str,
    /// How to say it (every field optional: the voice's defaults).
    pub controls: &'a Controls,
}

impl<'a> Request<'a> {
    /// A request for `text` with `controls`.
    pub fn new(text: &'a str, controls: &'a Controls) -> Self {
        Self { text, controls }
    }
}

/// Mono PCM given as a control: a reference voice to clone or an emotion
/// reference clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// Samples, roughly in [-1, 1].
    pub samples: Vec<f32>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
}

/// The controls of a synthesis, as plain data: every field optional (unset:
/// the voice's default). Which ones an engine honours is in its
/// [`Capabilities::controls`]; [`Controls::check`] tells.
///
/// ```
/// use models::engine::{Control, Controls};
/// let c = Controls { top_k: Some(30), emo_alpha: Some(0.6), ..Controls::default() };
/// assert_eq!(c.given(), vec![Control::EmoAlpha, Control::TopK]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Controls {
    /// Speaker id of a multi-speaker voice (Piper).
    pub speaker: Option<u32>,
    /// Variation of the voice, 0 for deterministic (Piper).
    pub noise_scale: Option<f32>,
    /// Duration multiplier, 2.0 for half speed (Piper).
    pub length_scale: Option<f32>,
    /// Variation of phoneme durations, 0 for deterministic (Piper).
    pub noise_w: Option<f32>,
    /// The voice to speak with, cloned from a clip (IndexTTS2).
    pub reference_audio: Option<Arc<Clip>>,
    /// Emotion by vector: one weight per emotion of the engine (IndexTTS2:
    /// happy, angry, sad, afraid, disgusted, melancholic, surprised, calm).
    pub emotion: Option<Vec<f32>>,
    /// Emotion from a reference clip (IndexTTS2).
    pub emotion_audio: Option<Arc<Clip>>,
    /// How strongly the emotion applies, 0 to 1 (IndexTTS2).
    pub emo_alpha: Option<f32>,
    /// Sampling: keep the `k` most likely tokens (IndexTTS2).
    pub top_k: Option<u32>,
    /// Sampling: nucleus probability mass (IndexTTS2).
    pub top_p: Option<f32>,
    /// Sampling temperature (IndexTTS2).
    pub temperature: Option<f32>,
    /// Penalty on repeated tokens (IndexTTS2).
    pub repetition_penalty: Option<f32>,
    /// Beam search width (IndexTTS2).
    pub num_beams: Option<u32>,
    /// Most mel tokens generated per segment (IndexTTS2).
    pub max_mel_tokens: Option<u32>,
    /// Flow-matching (Euler) steps per segment (IndexTTS2, 25 by default):
    /// fewer is faster and less exact.
    pub diffusion_steps: Option<u32>,
    /// Flow matching's classifier-free guidance rate (IndexTTS2, 0.7 by
    /// default; 0 turns guidance off).
    pub inference_cfg_rate: Option<f32>,
    /// Pitch multiplier, 1 for the voice's own (FastSpeech2).
    pub pitch: Option<f32>,
    /// Energy (loudness contour) multiplier, 1 for the voice's own
    /// (FastSpeech2).
    pub energy: Option<f32>,
}

impl Controls {
    /// The controls that are set, in [`Control::ALL`]'s order.
    pub fn given(&self) -> Vec<Control> {
        Control::ALL
            .iter()
            .copied()
            .filter(|c| self.is_set(*c))
            .collect()
    }

    /// Whether control `c` is set.
    pub fn is_set(&self, c: Control) -> bool {
        match c {
            Control::Speaker => self.speaker.is_some(),
            Control::NoiseScale => self.noise_scale.is_some(),
            Control::LengthScale => self.length_scale.is_some(),
            Control::NoiseW => self.noise_w.is_some(),
            Control::ReferenceAudio => self.reference_audio.is_some(),
            Control::Emotion => self.emotion.is_some(),
            Control::EmotionAudio => self.emotion_audio.is_some(),
            Control::EmoAlpha => self.emo_alpha.is_some(),
            Control::TopK => self.top_k.is_some(),
            Control::TopP => self.top_p.is_some(),
            Control::Temperature => self.temperature.is_some(),
            Control::RepetitionPenalty => self.repetition_penalty.is_some(),
            Control::NumBeams => self.num_beams.is_some(),
            Control::MaxMelTokens => self.max_mel_tokens.is_some(),
            Control::DiffusionSteps => self.diffusion_steps.is_some(),
            Control::InferenceCfgRate => self.inference_cfg_rate.is_some(),
            Control::Pitch => self.pitch.is_some(),
            Control::Energy => self.energy.is_some(),
        }
    }

    /// The controls that `caps` honours, the others unset: what a request
    /// to one voice passes to another that speaks part of its text.
    ///
    /// ```
    /// use models::engine::{Control, Controls};
    /// # use models::engine::{Capabilities, EngineKind, Streaming};
    /// # let caps = Capabilities { engine: EngineKind::Piper, sample_rate: 22050, num_speakers: 1,
    /// #     speakers: vec![], reference_audio: false, emotion: Default::default(), sampling: vec![],
    /// #     controls: vec![Control::LengthScale], streaming: Streaming::PerSegment, languages: vec![],
    /// #     spells: vec![] };
    /// let c = Controls { length_scale: Some(0.8), pitch: Some(1.2), ..Controls::default() };
    /// assert_eq!(c.honoured_by(&caps).given(), vec![Control::LengthScale]);
    /// ```
    pub fn honoured_by(&self, caps: &Capabilities) -> Controls {
        let keep = |c: Control| caps.supports(c);
        Controls {
            speaker: self.speaker.filter(|_| keep(Control::Speaker)),
            noise_scale: self.noise_scale.filter(|_| keep(Control::NoiseScale)),
            length_scale: self.length_scale.filter(|_| keep(Control::LengthScale)),
            noise_w: self.noise_w.filter(|_| keep(Control::NoiseW)),
            reference_audio: self
                .reference_audio
                .clone()
                .filter(|_| keep(Control::ReferenceAudio)),
            emotion: self.emotion.clone().filter(|_| keep(Control::Emotion)),
            emotion_audio: self
                .emotion_audio
                .clone()
                .filter(|_| keep(Control::EmotionAudio)),
            emo_alpha: self.emo_alpha.filter(|_| keep(Control::EmoAlpha)),
            top_k: self.top_k.filter(|_| keep(Control::TopK)),
            top_p: self.top_p.filter(|_| keep(Control::TopP)),
            temperature: self.temperature.filter(|_| keep(Control::Temperature)),
            repetition_penalty: self
                .repetition_penalty
                .filter(|_| keep(Control::RepetitionPenalty)),
            num_beams: self.num_beams.filter(|_| keep(Control::NumBeams)),
            max_mel_tokens: self.max_mel_tokens.filter(|_| keep(Control::MaxMelTokens)),
            diffusion_steps: self
                .diffusion_steps
                .filter(|_| keep(Control::DiffusionSteps)),
            inference_cfg_rate: self
                .inference_cfg_rate
                .filter(|_| keep(Control::InferenceCfgRate)),
            pitch: self.pitch.filter(|_| keep(Control::Pitch)),
            energy: self.energy.filter(|_| keep(Control::Energy)),
        }
    }

    /// `Ok` when the engine honours every control that is set; otherwise
    /// the controls it does not honour and those it does.
    ///
    /// ```
    /// use models::engine::{Capabilities, Control, Controls, EngineKind, Streaming};
    /// let caps = Capabilities {
    ///     engine: EngineKind::Piper,
    ///     sample_rate: 22050,
    ///     num_speakers: 1,
    ///     speakers: vec![],
    ///     reference_audio: false,
    ///     emotion: Default::default(),
    ///     sampling: vec![],
    ///     controls: vec![Control::Speaker, Control::NoiseScale],
    ///     streaming: Streaming::PerSegment,
    ///     languages: vec![],
    ///     spells: vec![],
    /// };
    /// assert!(Controls { noise_scale: Some(0.5), ..Default::default() }.check(&caps).is_ok());
    /// let err = Controls { top_k: Some(5), ..Default::default() }.check(&caps).unwrap_err();
    /// assert_eq!(err.unsupported, vec![Control::TopK]);
    /// assert_eq!(
    ///     err.to_string(),
    ///     "the piper engine does not support top_k; it supports speaker, noise_scale"
    /// );
    /// ```
    pub fn check(&self, caps: &Capabilities) -> Result<(), Unsupported> {
        caps.check(&self.given())
    }
}

/// A control of a synthesis, by name (its field in [`Controls`] and in the
/// node's API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// [`Controls::speaker`].
    Speaker,
    /// [`Controls::noise_scale`].
    NoiseScale,
    /// [`Controls::length_scale`].
    LengthScale,
    /// [`Controls::noise_w`].
    NoiseW,
    /// [`Controls::reference_audio`].
    ReferenceAudio,
    /// [`Controls::emotion`].
    Emotion,
    /// [`Controls::emotion_audio`].
    EmotionAudio,
    /// [`Controls::emo_alpha`].
    EmoAlpha,
    /// [`Controls::top_k`].
    TopK,
    /// [`Controls::top_p`].
    TopP,
    /// [`Controls::temperature`].
    Temperature,
    /// [`Controls::repetition_penalty`].
    RepetitionPenalty,
    /// [`Controls::num_beams`].
    NumBeams,
    /// [`Controls::max_mel_tokens`].
    MaxMelTokens,
    /// [`Controls::diffusion_steps`].
    DiffusionSteps,
    /// [`Controls::inference_cfg_rate`].
    InferenceCfgRate,
    /// [`Controls::pitch`].
    Pitch,
    /// [`Controls::energy`].
    Energy,
}

impl Control {
    /// Every control, in [`Controls`]' order.
    pub const ALL: [Control; 18] = [
        Control::Speaker,
        Control::NoiseScale,
        Control::LengthScale,
        Control::NoiseW,
        Control::ReferenceAudio,
        Control::Emotion,
        Control::EmotionAudio,
        Control::EmoAlpha,
        Control::TopK,
        Control::TopP,
        Control::Temperature,
        Control::RepetitionPenalty,
        Control::NumBeams,
        Control::MaxMelTokens,
        Control::DiffusionSteps,
        Control::InferenceCfgRate,
        Control::Pitch,
        Control::Energy,
    ];

    /// The decoding controls of an autoregressive engine: the GPT's
    /// sampling, then flow matching's steps and guidance.
    pub const SAMPLING: [Control; 8] = [
        Control::TopK,
        Control::TopP,
        Control::Temperature,
        Control::RepetitionPenalty,
        Control::NumBeams,
        Control::MaxMelTokens,
        Control::DiffusionSteps,
        Control::InferenceCfgRate,
    ];

    /// The control's name, e.g. `noise_scale`.
    ///
    /// ```
    /// assert_eq!(models::engine::Control::RepetitionPenalty.as_str(), "repetition_penalty");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Speaker => "speaker",
            Control::NoiseScale => "noise_scale",
            Control::LengthScale => "length_scale",
            Control::NoiseW => "noise_w",
            Control::ReferenceAudio => "reference_audio",
            Control::Emotion => "emotion",
            Control::EmotionAudio => "emotion_audio",
            Control::EmoAlpha => "emo_alpha",
            Control::TopK => "top_k",
            Control::TopP => "top_p",
            Control::Temperature => "temperature",
            Control::RepetitionPenalty => "repetition_penalty",
            Control::NumBeams => "num_beams",
            Control::MaxMelTokens => "max_mel_tokens",
            Control::DiffusionSteps => "diffusion_steps",
            Control::InferenceCfgRate => "inference_cfg_rate",
            Control::Pitch => "pitch",
            Control::Energy => "energy",
        }
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The engines behind the seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Piper's VITS ([`crate::piper`]).
    Piper,
    /// IndexTTS2 ([`crate::indextts2`]).
    #[serde(rename = "indextts2")]
    IndexTts2,
    /// FastSpeech2 and multi-band MelGAN ([`crate::fastspeech2`]).
    #[serde(rename = "fastspeech2")]
    FastSpeech2,
}

impl EngineKind {
    /// `piper`, `indextts2` or `fastspeech2`.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Piper => "piper",
            EngineKind::IndexTts2 => "indextts2",
            EngineKind::FastSpeech2 => "fastspeech2",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an engine conditions on emotion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EmotionSupport {
    /// By a vector of emotion weights ([`Controls::emotion`]).
    pub vector: bool,
    /// By a reference clip ([`Controls::emotion_audio`]).
    pub audio: bool,
}

/// How the audio of a streamed synthesis arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Streaming {
    /// Sentence by sentence; a first sentence longer than
    /// `split_over_frames` latent frames comes in two pieces, the first
    /// `first_piece_frames` long (each frame is `samples_per_frame` samples).
    Pieces {
        /// Latent frames of the short first piece.
        first_piece_frames: usize,
        /// A first sentence longer than this is split.
        split_over_frames: usize,
        /// Audio samples per latent frame.
        samples_per_frame: usize,
    },
    /// One piece per text segment the engine synthesises whole.
    PerSegment,
}

/// What an engine honours, for one loaded voice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capabilities {
    /// The engine.
    pub engine: EngineKind,
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// Speakers of the voice ([`Controls::speaker`] is below this); 1 for a
    /// single-speaker voice.
    pub num_speakers: usize,
    /// Speaker names by id (empty when the voice names none, and for
    /// engines that take the speaker from reference audio).
    pub speakers: Vec<String>,
    /// Whether the voice can be cloned from [`Controls::reference_audio`].
    pub reference_audio: bool,
    /// How emotion can be given.
    pub emotion: EmotionSupport,
    /// The sampling controls honoured (a subset of [`Control::SAMPLING`]).
    pub sampling: Vec<Control>,
    /// Every control honoured, including the above.
    pub controls: Vec<Control>,
    /// How streamed audio arrives.
    pub streaming: Streaming,
    /// The languages the voice speaks (text in another script is not its
    /// to read).
    pub languages: Vec<Language>,
    /// Scripts the voice spells letter by letter when no voice speaks them
    /// (the Mandarin voice spells Latin letters in Mandarin syllables).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spells: Vec<Script>,
}

/// A language a voice speaks: a tag (`zh`, `en`) and the script it reads.
///
/// ```
/// use models::engine::Language;
/// use models::text::script::Script;
/// assert_eq!(Language::of_tag("en-us"), Language { tag: "en".into(), script: Script::Latin });
/// assert_eq!(Language::of_tag("cmn").script, Script::Han);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Language {
    /// The language's code (ISO 639-1 where there is one), lower case.
    pub tag: String,
    /// The script its text is written in.
    pub script: Script,
}

impl Language {
    /// The language of an espeak-ng voice or locale code (`en-us`,
    /// `zh_CN`, `cmn`, `ru`), with the script its text is written in.
    pub fn of_tag(code: &str) -> Self {
        use crate::text::script::OtherScript as O;
        let base = code
            .split(['-', '_'])
            .next()
            .unwrap_or(code)
            .to_ascii_lowercase();
        let (tag, script) = match base.as_str() {
            "zh" | "cmn" | "yue" | "hak" => ("zh", Script::Han),
            "ru" | "uk" | "bg" | "sr" | "mk" | "be" | "kk" | "ky" | "mn" | "tt" => {
                (base.as_str(), Script::Other(O::Cyrillic))
            }
            "el" | "grc" => (base.as_str(), Script::Other(O::Greek)),
            "ar" | "fa" | "ur" => (base.as_str(), Script::Other(O::Arabic)),
            "he" | "yi" => (base.as_str(), Script::Other(O::Hebrew)),
            "ja" => ("ja", Script::Other(O::Kana)),
            "ko" => ("ko", Script::Other(O::Hangul)),
            "th" => ("th", Script::Other(O::Thai)),
            "hi" | "ne" | "mr" => (base.as_str(), Script::Other(O::Devanagari)),
            other => (other, Script::Latin),
        };
        Self {
            tag: tag.to_owned(),
            script,
        }
    }
}

impl Capabilities {
    /// Whether the voice reads text in `script`.
    pub fn speaks(&self, script: Script) -> bool {
        self.languages.iter().any(|l| l.script == script)
    }

    /// Whether control `c` is honoured.
    pub fn supports(&self, c: Control) -> bool {
        self.controls.contains(&c)
    }

    /// `Ok` when every control in `given` is honoured; otherwise those that
    /// are not (in `given`'s order) and those that are. For callers that
    /// know which controls a request sets before they build its
    /// [`Controls`] (the node, before decoding reference audio).
    pub fn check(&self, given: &[Control]) -> Result<(), Unsupported> {
        let unsupported: Vec<Control> = given
            .iter()
            .copied()
            .filter(|c| !self.supports(*c))
            .collect();
        if unsupported.is_empty() {
            Ok(())
        } else {
            Err(Unsupported {
                engine: self.engine,
                unsupported,
                supported: self.controls.clone(),
            })
        }
    }
}

/// Controls a request set that its engine does not honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Unsupported {
    /// The engine.
    pub engine: EngineKind,
    /// The controls set but not honoured.
    pub unsupported: Vec<Control>,
    /// The controls the engine honours.
    pub supported: Vec<Control>,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[Control]| v.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ");
        write!(
            f,
            "the {} engine does not support {}; it supports {}",
            self.engine,
            list(&self.unsupported),
            if self.supported.is_empty() {
                "none".to_owned()
            } else {
                list(&self.supported)
            }
        )
    }
}

/// Where the time of one synthesis went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// The text front end (text to tokens or phoneme ids).
    pub phonemize_ms: f64,
    /// The network.
    pub infer_ms: f64,
}

/// Synthesised audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Mono samples, roughly in [-1, 1].
    pub samples: Vec<f32>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Where the time went.
    pub timings: Timings,
    /// Phonemes the voice has no id for, skipped (Piper; 0 for other engines).
    pub unknown_phonemes: usize,
    /// Sentences synthesised.
    pub sentences: usize,
}

impl Audio {
    /// Seconds of audio.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// A 16-bit WAV file, peak-normalised as Piper does ([`crate::audio::wav`]).
    pub fn to_wav_i16(&self) -> Result<Vec<u8>, crate::Error> {
        crate::audio::wav::wav_i16(&self.samples, self.sample_rate)
    }
}

/// What an IndexTTS2 synthesis adds to its report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IndexTts2Stats {
    /// Seconds of the reference clip used (after the 15 s cut).
    pub reference_seconds: f64,
    /// Mel codes the GPT produced over all segments.
    pub mel_tokens: usize,
    /// Text segments (of at most 120 tokens).
    pub segments: usize,
    /// Reference and emotion clips' conditioning (0 when cached).
    pub reference_ms: f64,
    /// GPT decoding and the latent pass.
    pub gpt_ms: f64,
    /// Length regulator and flow matching.
    pub s2mel_ms: f64,
    /// BigVGAN.
    pub vocoder_ms: f64,
}

impl IndexTts2Stats {
    /// Adds another synthesis' figures (the reference's length is kept).
    pub fn add(&mut self, other: &IndexTts2Stats) {
        self.reference_seconds = self.reference_seconds.max(other.reference_seconds);
        self.mel_tokens += other.mel_tokens;
        self.segments += other.segments;
        self.reference_ms += other.reference_ms;
        self.gpt_ms += other.gpt_ms;
        self.s2mel_ms += other.s2mel_ms;
        self.vocoder_ms += other.vocoder_ms;
    }
}

/// What a streamed synthesis ([`Engine::synthesize_stream`]) did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Streamed {
    /// Sentences synthesised (all of them unless stopped).
    pub sentences: usize,
    /// Pieces handed to the sink.
    pub pieces: usize,
    /// Samples handed to the sink.
    pub samples: usize,
    /// Phonemes the voice has no id for, skipped (Piper; 0 for other engines).
    pub unknown_phonemes: usize,
    /// The sink asked to stop before the end.
    pub stopped: bool,
    /// IndexTTS2's figures (`None` for other engines).
    pub indextts2: Option<IndexTts2Stats>,
    /// The voices that spoke, by name, when several did (a mixed text,
    /// [`crate::mixed`]); empty when the voice spoke alone.
    pub voices: Vec<String>,
    /// The languages spoken (tags, in order of first use), when several
    /// voices spoke.
    pub languages: Vec<String>,
}

impl Streamed {
    /// Hands `piece` to `sink`, counting it; `Break` (and [`Self::stopped`]
    /// set) when the sink asks to stop.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use models::engine::Streamed;
    /// let mut s = Streamed::default();
    /// let mut got = Vec::new();
    /// let mut sink = |p: &[f32]| { got.extend_from_slice(p); ControlFlow::Continue(()) };
    /// assert!(s.send(&mut sink, &[0.5, -0.5]).is_continue());
    /// assert_eq!((s.pieces, s.samples, s.stopped), (1, 2, false));
    /// ```
    pub fn send(
        &mut self,
        sink: &mut dyn FnMut(&[f32]) -> ControlFlow<()>,
        piece: &[f32],
    ) -> ControlFlow<()> {
        self.pieces += 1;
        self.samples += piece.len();
        let go = sink(piece);
        if go.is_break() {
            self.stopped = true;
        }
        go
    }
}

/// An engine's whole answer, made by its streamed synthesis: the samples
/// and what the stream reported (for engines whose [`Engine::synthesize`]
/// is their stream, collected).
pub fn collect(engine: &dyn Engine, request: &Request<'_>) -> Result<(Vec<f32>, Streamed), Error> {
    let mut samples = Vec::new();
    let s = engine.synthesize_stream(request, false, &mut |piece| {
        samples.extend_from_slice(piece);
        ControlFlow::Continue(())
    })?;
    Ok((samples, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(controls: &[Control]) -> Capabilities {
        Capabilities {
            engine: EngineKind::IndexTts2,
            sample_rate: 22050,
            num_speakers: 1,
            speakers: Vec::new(),
            reference_audio: true,
            emotion: EmotionSupport {
                vector: true,
                audio: true,
            },
            sampling: vec![Control::TopK],
            controls: controls.to_vec(),
            streaming: Streaming::PerSegment,
            languages: vec![Language::of_tag("zh"), Language::of_tag("en")],
            spells: vec![],
        }
    }

    #[test]
    fn every_control_is_named_once_and_reported_when_set() {
        let names: std::collections::BTreeSet<&str> =
            Control::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Control::ALL.len());
        assert!(Controls::default().given().is_empty());
        let clip = Arc::new(Clip {
            samples: vec![0.0; 4],
            sample_rate: 16000,
        });
        let all = Controls {
            speaker: Some(0),
            noise_scale: Some(0.1),
            length_scale: Some(1.0),
            noise_w: Some(0.1),
            reference_audio: Some(Arc::clone(&clip)),
            emotion: Some(vec![0.0; 8]),
            emotion_audio: Some(clip),
            emo_alpha: Some(0.5),
            top_k: Some(30),
            top_p: Some(0.8),
            temperature: Some(0.8),
            repetition_penalty: Some(10.0),
            num_beams: Some(3),
            max_mel_tokens: Some(1500),
            diffusion_steps: Some(25),
            inference_cfg_rate: Some(0.7),
            pitch: Some(1.1),
            energy: Some(0.9),
        };
        assert_eq!(all.given(), Control::ALL.to_vec());
    }

    #[test]
    fn check_names_every_unsupported_control_and_the_supported_ones() {
        let c = caps(&[Control::ReferenceAudio, Control::TopK]);
        let ok = Controls {
            top_k: Some(5),
            ..Controls::default()
        };
        assert_eq!(ok.check(&c), Ok(()));
        let bad = Controls {
            speaker: Some(1),
            top_k: Some(5),
            noise_w: Some(0.3),
            ..Controls::default()
        };
        let err = bad.check(&c).unwrap_err();
        assert_eq!(err.unsupported, vec![Control::Speaker, Control::NoiseW]);
        assert_eq!(
            err.to_string(),
            "the indextts2 engine does not support speaker, noise_w; \
             it supports reference_audio, top_k"
        );
        let none = caps(&[]);
        assert!(bad
            .check(&none)
            .unwrap_err()
            .to_string()
            .ends_with("it supports none"));
    }

    #[test]
    fn capabilities_serialise_with_the_api_names() {
        let json = serde_json::to_value(caps(&[Control::EmoAlpha, Control::NumBeams])).unwrap();
        assert_eq!(json["engine"], "indextts2");
        assert_eq!(
            json["controls"],
            serde_json::json!(["emo_alpha", "num_beams"])
        );
        assert_eq!(json["sampling"], serde_json::json!(["top_k"]));
        assert_eq!(
            json["emotion"],
            serde_json::json!({"vector": true, "audio": true})
        );
        assert_eq!(
            json["streaming"],
            serde_json::json!({"kind": "per_segment"})
        );
        let pieces = serde_json::to_value(Streaming::Pieces {
            first_piece_frames: 24,
            split_over_frames: 64,
            samples_per_frame: 256,
        })
        .unwrap();
        assert_eq!(pieces["kind"], "pieces");
        assert_eq!(pieces["samples_per_frame"], 256);
        assert_eq!(serde_json::to_value(EngineKind::Piper).unwrap(), "piper");
    }
}
