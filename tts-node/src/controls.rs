//! The controls of a synthesis request, from its JSON fields to the
//! engine's `models::Controls`: refused with `UNSUPPORTED_CONTROL` when the
//! voice's engine does not honour one (named, with those it does), with
//! `INVALID_PARAMETER` when out of range, with `BAD_AUDIO` when a reference
//! clip does not decode.
//!
//! The API's names are the engine's, except `speed` (1 is the voice's own
//! rate), which sets the engine's `length_scale` (the voice's default
//! divided by the speed: Piper's scale, FastSpeech2's duration ratio).

use std::sync::Arc;

use base64::Engine as _;
use models::{Capabilities, Clip, Control, Controls};

use crate::errors::{Code, NodeError};
use crate::voices::LoadedVoice;

/// The controls a request body carries (both synthesis routes), as sent.
#[derive(Debug, Default)]
pub struct Asked {
    pub speed: Option<f32>,
    pub noise_scale: Option<f32>,
    pub noise_w: Option<f32>,
    pub speaker: Option<u32>,
    /// Base64 of a WAV file: the voice to clone.
    pub reference_audio: Option<String>,
    /// The clip of a stored speaker named in the request (the speaker
    /// library's, already decoded): the voice to clone.
    pub stored_reference: Option<Arc<Clip>>,
    /// One weight per emotion ([`EMOTIONS`] of them).
    pub emotion: Option<Vec<f32>>,
    /// Base64 of a WAV file: the emotion to take.
    pub emotion_audio: Option<String>,
    pub emo_alpha: Option<f32>,
    pub top_k: Option<u32>,
    pub top_p: Option<f32>,
    pub temperature: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub num_beams: Option<u32>,
    pub max_mel_tokens: Option<u32>,
    pub diffusion_steps: Option<u32>,
    pub inference_cfg_rate: Option<f32>,
    pub pitch: Option<f32>,
    pub energy: Option<f32>,
}

/// Emotion weights in an `emotion` vector (IndexTTS2: happy, angry, sad,
/// afraid, disgusted, melancholic, surprised, calm).
pub const EMOTIONS: usize = 8;

/// Shortest and longest reference clip, in seconds.
pub const CLIP_SECONDS: (f64, f64) = (0.5, 30.0);

/// A numeric control's range, as the API checks it.
pub struct Bound {
    pub field: &'static str,
    pub control: Control,
    pub min: f64,
    pub max: f64,
}

/// The ranges of the numeric controls (the emotion vector's weights are
/// each 0 to 1).
pub const BOUNDS: [Bound; 14] = [
    bound("speed", Control::LengthScale, 0.25, 4.0),
    bound("noise_scale", Control::NoiseScale, 0.0, 2.0),
    bound("noise_w", Control::NoiseW, 0.0, 2.0),
    bound("emo_alpha", Control::EmoAlpha, 0.0, 1.0),
    bound("top_k", Control::TopK, 0.0, 1000.0),
    bound("top_p", Control::TopP, 0.0, 1.0),
    bound("temperature", Control::Temperature, 0.01, 5.0),
    bound("repetition_penalty", Control::RepetitionPenalty, 0.1, 20.0),
    bound("num_beams", Control::NumBeams, 1.0, 10.0),
    bound("max_mel_tokens", Control::MaxMelTokens, 1.0, 1815.0),
    bound("diffusion_steps", Control::DiffusionSteps, 1.0, 100.0),
    bound("inference_cfg_rate", Control::InferenceCfgRate, 0.0, 2.0),
    bound("pitch", Control::Pitch, 0.5, 2.0),
    bound("energy", Control::Energy, 0.5, 2.0),
];

const fn bound(field: &'static str, control: Control, min: f64, max: f64) -> Bound {
    Bound {
        field,
        control,
        min,
        max,
    }
}

/// The API's name of a control.
pub fn field(c: Control) -> &'static str {
    match c {
        Control::LengthScale => "speed",
        other => other.as_str(),
    }
}

/// The API names of the controls `caps` honours.
pub fn supported_fields(caps: &Capabilities) -> Vec<&'static str> {
    caps.controls.iter().map(|c| field(*c)).collect()
}

impl Asked {
    /// The controls set, in `Control::ALL`'s order.
    fn given(&self) -> Vec<Control> {
        let set = |c: Control| match c {
            Control::Speaker => self.speaker.is_some(),
            Control::NoiseScale => self.noise_scale.is_some(),
            Control::LengthScale => self.speed.is_some(),
            Control::NoiseW => self.noise_w.is_some(),
            Control::ReferenceAudio => {
                self.reference_audio.is_some() || self.stored_reference.is_some()
            }
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
        };
        Control::ALL.iter().copied().filter(|c| set(*c)).collect()
    }

    /// The value sent for a numeric control.
    fn number(&self, c: Control) -> Option<f64> {
        match c {
            Control::LengthScale => self.speed.map(f64::from),
            Control::NoiseScale => self.noise_scale.map(f64::from),
            Control::NoiseW => self.noise_w.map(f64::from),
            Control::EmoAlpha => self.emo_alpha.map(f64::from),
            Control::TopK => self.top_k.map(f64::from),
            Control::TopP => self.top_p.map(f64::from),
            Control::Temperature => self.temperature.map(f64::from),
            Control::RepetitionPenalty => self.repetition_penalty.map(f64::from),
            Control::NumBeams => self.num_beams.map(f64::from),
            Control::MaxMelTokens => self.max_mel_tokens.map(f64::from),
            Control::DiffusionSteps => self.diffusion_steps.map(f64::from),
            Control::InferenceCfgRate => self.inference_cfg_rate.map(f64::from),
            Control::Pitch => self.pitch.map(f64::from),
            Control::Energy => self.energy.map(f64::from),
            _ => None,
        }
    }
}

/// The engine's controls for a request to `voice`: every control it sets
/// must be honoured by the voice's engine, in range, and its clips must
/// decode.
pub fn controls_for(voice: &LoadedVoice, asked: Asked) -> Result<Controls, NodeError> {
    let caps = voice.capabilities();
    if let Err(u) = caps.check(&asked.given()) {
        let fields: Vec<&str> = u.unsupported.iter().map(|c| field(*c)).collect();
        let supported = supported_fields(caps);
        return Err(NodeError::new(
            Code::UnsupportedControl,
            format!(
                "voice {} ({} engine) does not support {}; it supports {}",
                voice.name,
                caps.engine,
                fields.join(", "),
                if supported.is_empty() {
                    "none".to_owned()
                } else {
                    supported.join(", ")
                }
            ),
        ));
    }
    for b in &BOUNDS {
        if let Some(x) = asked.number(b.control) {
            if !(x.is_finite() && x >= b.min && x <= b.max) {
                return Err(NodeError::new(
                    Code::InvalidParameter,
                    format!("{} must be from {} to {}", b.field, b.min, b.max),
                ));
            }
        }
    }
    if let Some(e) = &asked.emotion {
        if e.len() != EMOTIONS || !e.iter().all(|w| w.is_finite() && (0.0..=1.0).contains(w)) {
            return Err(NodeError::new(
                Code::InvalidParameter,
                format!("emotion must be {EMOTIONS} weights, each from 0 to 1"),
            ));
        }
    }
    let info = voice.info();
    if let Some(s) = asked.speaker {
        if s as usize >= caps.num_speakers.max(1) {
            return Err(NodeError::new(
                Code::InvalidParameter,
                format!(
                    "speaker must be below {} for voice {}",
                    caps.num_speakers.max(1),
                    voice.name
                ),
            ));
        }
    }
    if caps.reference_audio
        && caps.num_speakers == 0
        && asked.reference_audio.is_none()
        && asked.stored_reference.is_none()
    {
        return Err(NodeError::new(
            Code::BadAudio,
            format!(
                "reference_audio or a stored speaker is required: voice {} clones the voice of a clip",
                voice.name
            ),
        ));
    }
    let clip = |name: &str, b64: Option<String>| -> Result<Option<Arc<Clip>>, NodeError> {
        b64.map(|s| decode_clip(name, &s).map(Arc::new)).transpose()
    };
    Ok(Controls {
        speaker: asked.speaker,
        noise_scale: asked.noise_scale,
        length_scale: asked.speed.map(|s| info.defaults.length_scale / s),
        noise_w: asked.noise_w,
        reference_audio: match asked.stored_reference {
            Some(c) => Some(c),
            None => clip("reference_audio", asked.reference_audio)?,
        },
        emotion: asked.emotion,
        emotion_audio: clip("emotion_audio", asked.emotion_audio)?,
        emo_alpha: asked.emo_alpha,
        top_k: asked.top_k,
        top_p: asked.top_p,
        temperature: asked.temperature,
        repetition_penalty: asked.repetition_penalty,
        num_beams: asked.num_beams,
        max_mel_tokens: asked.max_mel_tokens,
        diffusion_steps: asked.diffusion_steps,
        inference_cfg_rate: asked.inference_cfg_rate,
        pitch: asked.pitch,
        energy: asked.energy,
    })
}

/// A base64 WAV file (16-bit integer or float PCM, any channels: mixed to
/// mono) as a clip of [`CLIP_SECONDS`].
pub fn decode_clip(name: &str, b64: &str) -> Result<Clip, NodeError> {
    let bad = |why: String| NodeError::new(Code::BadAudio, format!("{name}: {why}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| bad(format!("not base64 ({e})")))?;
    // Read by the models' WAV reader, which refuses a file longer than the
    // bound before decoding its samples.
    let d = models::audio::wav::read_wav_mono(&bytes, CLIP_SECONDS.1).map_err(|e| match e {
        models::Error::Audio(why) => bad(why),
        other => bad(other.to_string()),
    })?;
    if d.seconds < CLIP_SECONDS.0 {
        return Err(bad(format!(
            "{:.2} s of audio; a clip is {} to {} s",
            d.seconds, CLIP_SECONDS.0, CLIP_SECONDS.1
        )));
    }
    Ok(Clip {
        samples: d.samples,
        sample_rate: d.sample_rate,
    })
}

/// The ranges of the numeric controls `voice` honours, by API name, with the
/// voice's defaults where the node knows them (Piper's scales, IndexTTS2's
/// flow matching), and
/// `speaker` (whether a speaker can be chosen).
pub fn ranges(voice: &LoadedVoice) -> serde_json::Map<String, serde_json::Value> {
    let caps = voice.capabilities();
    let defaults = &voice.info().defaults;
    let cfm = models::indextts2::flow_matching::CfmParams::default();
    let mut out = serde_json::Map::new();
    for b in BOUNDS.iter().filter(|b| caps.supports(b.control)) {
        let mut r = serde_json::json!({ "min": b.min, "max": b.max });
        let default = match b.control {
            Control::LengthScale => Some(1.0),
            Control::NoiseScale => Some(f64::from(defaults.noise_scale)),
            Control::NoiseW => Some(f64::from(defaults.noise_w)),
            Control::Pitch | Control::Energy => Some(1.0),
            Control::DiffusionSteps => Some(cfm.steps as f64),
            Control::InferenceCfgRate => Some(cfm.cfg_rate),
            _ => None,
        };
        if let (Some(d), Some(obj)) = (default, r.as_object_mut()) {
            obj.insert("default".into(), serde_json::json!(d));
        }
        out.insert(b.field.into(), r);
    }
    out.insert(
        "speaker".into(),
        serde_json::json!(caps.supports(Control::Speaker) && caps.num_speakers > 1),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(seconds: f64, rate: u32, channels: u16) -> String {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).expect("writer");
        let n = (seconds * f64::from(rate)) as usize * usize::from(channels);
        for i in 0..n {
            // Left 0.5, right -0.25 (mono: 0.5).
            let v: i16 = if i % usize::from(channels) == 0 {
                16384
            } else {
                -8192
            };
            w.write_sample(v).expect("sample");
        }
        w.finalize().expect("finalize");
        base64::engine::general_purpose::STANDARD.encode(out.into_inner())
    }

    #[test]
    fn a_base64_wav_becomes_a_mono_clip() {
        let clip = decode_clip("reference_audio", &wav(1.0, 16000, 2)).expect("decodes");
        assert_eq!(clip.sample_rate, 16000);
        assert_eq!(clip.samples.len(), 16000);
        assert!(
            (clip.samples[0] - 0.125).abs() < 1e-6,
            "{}",
            clip.samples[0]
        );
    }

    #[test]
    fn clips_that_do_not_decode_or_are_out_of_length_are_bad_audio_naming_the_field() {
        for (b64, want) in [
            ("!!not base64!!".to_owned(), "not base64"),
            (
                base64::engine::general_purpose::STANDARD.encode(b"RIFF but no wave"),
                "not a readable WAV file",
            ),
            (wav(0.1, 16000, 1), "0.10 s of audio"),
            (wav(31.0, 8000, 1), "31.0 s of audio; at most 30 s"),
        ] {
            let e = decode_clip("emotion_audio", &b64).expect_err(want);
            assert_eq!(e.code, Code::BadAudio);
            assert!(e.message.starts_with("emotion_audio: "), "{}", e.message);
            assert!(e.message.contains(want), "{}", e.message);
        }
    }

    #[test]
    fn every_control_has_an_api_name_and_numeric_ones_a_range() {
        let names: std::collections::BTreeSet<&str> =
            Control::ALL.iter().map(|c| field(*c)).collect();
        assert_eq!(names.len(), Control::ALL.len());
        let asked = Asked {
            speed: Some(1.0),
            top_k: Some(3),
            ..Asked::default()
        };
        assert_eq!(asked.given(), vec![Control::LengthScale, Control::TopK]);
        for b in &BOUNDS {
            assert_eq!(field(b.control), b.field);
            assert!(b.min < b.max, "{}", b.field);
        }
    }
}
