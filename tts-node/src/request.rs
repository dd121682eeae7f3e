//! The bodies of the synthesis routes and their one mapping to a job:
//! `POST /api/tts` (JSON or a multipart form) and `POST /v1/audio/speech`
//! (OpenAI's shape, turned into the former by [`From`]), each mapped by
//! [`TtsRequest::into_job`] to the engine's job and how to answer it.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;

use crate::access::Caller;
use crate::audio::Format;
use crate::config::valid_voice_name;
use crate::controls::{controls_for, Asked};
use crate::engine::Job;
use crate::errors::{Code, NodeError};
use crate::language::Choice;
use crate::respond::Answer;
use crate::state::{AppState, Ready};

/// `Json` whose rejections are [`NodeError`]s (400 BAD_REQUEST, 413 BODY_TOO_LARGE).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = NodeError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(NodeError::new(
                Code::BodyTooLarge,
                "request body is over the size limit (--max-body-bytes)",
            )),
            Err(rej) => Err(NodeError::new(Code::BadRequest, rej.body_text())),
        }
    }
}

/// A body as JSON, or as `multipart/form-data` (an HTML form or `curl -F`)
/// whose parts are the JSON body's fields: `text`, `voice`, `format` and
/// `name` as text; `reference_audio`, `emotion_audio` and `audio` as WAV
/// files (the raw file, not base64); `speaker` a number or a name; the
/// others as JSON values (`0.7`, `true`, `[0.6, 0, 0, 0, 0, 0, 0.2, 0]`).
/// The same checks apply: unknown or mistyped fields are `BAD_REQUEST`, the
/// body limit `BODY_TOO_LARGE`. `POST /api/tts` and `POST /api/speakers`
/// take it.
pub struct Form<T>(pub T);

/// `POST /api/tts`'s body.
pub type TtsBody = Form<TtsRequest>;

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = NodeError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            });
        if !multipart {
            return ApiJson::<T>::from_request(req, state)
                .await
                .map(|j| Self(j.0));
        }
        let bad = |m: String| NodeError::new(Code::BadRequest, m);
        let too_large = || {
            NodeError::new(
                Code::BodyTooLarge,
                "request body is over the size limit (--max-body-bytes)",
            )
        };
        let mut form = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|e| bad(format!("multipart body: {}", e.body_text())))?;
        let mut fields = serde_json::Map::new();
        loop {
            let part = match form.next_field().await {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
                Err(e) => return Err(bad(format!("multipart body: {}", e.body_text()))),
            };
            let name = part.name().unwrap_or_default().to_owned();
            let bytes = match part.bytes().await {
                Ok(b) => b,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
                Err(e) => return Err(bad(format!("multipart part {name:?}: {}", e.body_text()))),
            };
            let value = match name.as_str() {
                "reference_audio" | "emotion_audio" | "audio" => serde_json::Value::String(
                    base64::engine::general_purpose::STANDARD.encode(&bytes),
                ),
                _ => {
                    let text = std::str::from_utf8(&bytes)
                        .map_err(|_| bad(format!("multipart part {name:?} is not UTF-8 text")))?;
                    match name.as_str() {
                        "text" | "voice" | "format" | "name" => {
                            serde_json::Value::String(text.to_owned())
                        }
                        // A number, or a stored speaker's name.
                        "speaker" => serde_json::from_str::<u32>(text.trim()).map_or_else(
                            |_| serde_json::Value::String(text.to_owned()),
                            Into::into,
                        ),
                        _ => serde_json::from_str(text.trim()).map_err(|_| {
                            bad(format!(
                                "multipart part {name:?}: {text:?} is not a JSON value"
                            ))
                        })?,
                    }
                }
            };
            if fields.insert(name.clone(), value).is_some() {
                return Err(bad(format!("multipart part {name:?} given twice")));
            }
        }
        serde_json::from_value(serde_json::Value::Object(fields))
            .map(Self)
            .map_err(|e| bad(format!("multipart body: {e}")))
    }
}

/// `speaker`: a number (a voice's own speakers, or the speakers stored when
/// the node started) or the name of a speaker in the library.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SpeakerRef {
    Number(u32),
    Name(String),
}

/// `POST /api/tts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtsRequest {
    text: String,
    voice: Option<String>,
    /// Speaking rate: 1 is the voice's own, 2 twice as fast (length_scale = 1/speed).
    speed: Option<f32>,
    noise_scale: Option<f32>,
    noise_w: Option<f32>,
    speaker: Option<SpeakerRef>,
    /// wav (default), pcm, mp3, opus or flac.
    format: Option<String>,
    /// Send the audio as it is synthesised (chunked), default false.
    stream: Option<bool>,
    /// IndexTTS2 controls (a voice whose engine does not honour one answers
    /// 400 UNSUPPORTED_CONTROL): base64 WAV clips, the emotion vector, the
    /// emotion's weight and the sampling controls.
    reference_audio: Option<String>,
    emotion: Option<Vec<f32>>,
    emotion_audio: Option<String>,
    emo_alpha: Option<f32>,
    top_k: Option<u32>,
    top_p: Option<f32>,
    temperature: Option<f32>,
    repetition_penalty: Option<f32>,
    num_beams: Option<u32>,
    max_mel_tokens: Option<u32>,
    /// IndexTTS2 flow matching: Euler steps (25) and guidance rate (0.7).
    diffusion_steps: Option<u32>,
    inference_cfg_rate: Option<f32>,
    /// FastSpeech2 controls: multipliers of the predicted pitch and energy.
    pitch: Option<f32>,
    energy: Option<f32>,
}

/// `POST /v1/audio/speech` body, as OpenAI's API defines it (plus `stream`
/// and the node's controls).
#[derive(Debug, Deserialize)]
pub struct OpenAiSpeech {
    #[allow(dead_code)]
    model: Option<String>,
    input: String,
    /// An OpenAI voice name (the voice is then chosen by the text's
    /// script), a voice of the node, or a stored speaker's name (spoken by
    /// the default voice that clones).
    voice: Option<String>,
    /// mp3 (OpenAI's default), opus, flac, wav or pcm; aac is not served.
    response_format: Option<String>,
    speed: Option<f32>,
    /// Streamed by default, as OpenAI's API answers, except FLAC: a whole
    /// file, whose header has the length (libsndfile, the usual Python
    /// decoder, reads no FLAC stream of unknown length). `false`: a whole file.
    stream: Option<bool>,
    /// Extensions, as in `/api/tts` (0 and 0: the same audio every time).
    noise_scale: Option<f32>,
    noise_w: Option<f32>,
    speaker: Option<SpeakerRef>,
    /// IndexTTS2 controls, as in `/api/tts`.
    reference_audio: Option<String>,
    emotion: Option<Vec<f32>>,
    emotion_audio: Option<String>,
    emo_alpha: Option<f32>,
    top_k: Option<u32>,
    top_p: Option<f32>,
    temperature: Option<f32>,
    repetition_penalty: Option<f32>,
    num_beams: Option<u32>,
    max_mel_tokens: Option<u32>,
    /// IndexTTS2 flow matching: Euler steps (25) and guidance rate (0.7).
    diffusion_steps: Option<u32>,
    inference_cfg_rate: Option<f32>,
    /// FastSpeech2 controls, as in `/api/tts`.
    pitch: Option<f32>,
    energy: Option<f32>,
}

/// OpenAI's built-in voice names choose the voice by the text's script (the
/// default voice for English), so existing clients work unchanged.
const OPENAI_VOICES: [&str; 11] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
];

impl From<OpenAiSpeech> for TtsRequest {
    /// OpenAI's names and defaults: `input` is the text, `response_format`
    /// the format (mp3 by default), streamed unless FLAC or asked not to be;
    /// OpenAI's voice names leave the choice to the node.
    fn from(r: OpenAiSpeech) -> Self {
        let format = r.response_format.unwrap_or_else(|| "mp3".into());
        let flac = format.eq_ignore_ascii_case("flac");
        let voice = r
            .voice
            .filter(|v| !OPENAI_VOICES.contains(&v.to_ascii_lowercase().as_str()));
        Self {
            text: r.input,
            voice,
            speed: r.speed,
            noise_scale: r.noise_scale,
            noise_w: r.noise_w,
            speaker: r.speaker,
            stream: Some(r.stream.unwrap_or(!flac)),
            format: Some(format),
            reference_audio: r.reference_audio,
            emotion: r.emotion,
            emotion_audio: r.emotion_audio,
            emo_alpha: r.emo_alpha,
            top_k: r.top_k,
            top_p: r.top_p,
            temperature: r.temperature,
            repetition_penalty: r.repetition_penalty,
            num_beams: r.num_beams,
            max_mel_tokens: r.max_mel_tokens,
            diffusion_steps: r.diffusion_steps,
            inference_cfg_rate: r.inference_cfg_rate,
            pitch: r.pitch,
            energy: r.energy,
        }
    }
}

impl TtsRequest {
    /// The one mapping of both routes: the format, the text's bounds, the
    /// voice (named, or chosen by the text's script; a stored speaker's name
    /// as the voice picks the voice that clones), and the controls checked
    /// against the voice.
    pub fn into_job(
        self,
        state: &AppState,
        caller: Option<Caller>,
    ) -> Result<(Job, Answer), NodeError> {
        let format = format_of(self.format.as_deref(), Format::Wav)?;
        check_text(state, &self.text)?;
        let ready = state.ready()?;
        let (voice_name, speaker) = match (self.voice, self.speaker) {
            // OpenAI clients name the speaker as the voice.
            (Some(v), None) if ready.voices.get(Some(&v)).is_none() && state.speakers.holds(&v) => {
                (
                    cloning_voice(ready).map(str::to_owned),
                    Some(SpeakerRef::Name(v)),
                )
            }
            (v, s) => (v, s),
        };
        let choice = find_voice(ready, voice_name.as_deref(), &self.text)?;
        let voice = Arc::clone(&choice.voice);
        let clones = voice.capabilities().reference_audio;
        // A voice that clones speaks the library's speakers; a number is
        // their place in the library's order (as /api/voices lists them).
        let speaker = match speaker {
            Some(SpeakerRef::Number(n)) if clones => {
                let names = state.speakers.list();
                let name = names.get(n as usize).map(|s| s.name.clone()).ok_or_else(|| {
                    NodeError::new(
                        Code::InvalidParameter,
                        format!(
                            "speaker must be below {} for voice {} (the stored speakers, GET /api/voices)",
                            names.len(),
                            voice.name
                        ),
                    )
                })?;
                Some(SpeakerRef::Name(name))
            }
            other => other,
        };
        let (speaker, stored_reference) = match speaker {
            None => (None, None),
            Some(SpeakerRef::Number(n)) => (Some(n), None),
            Some(SpeakerRef::Name(name)) => {
                if !clones {
                    return Err(NodeError::new(
                        Code::InvalidParameter,
                        format!(
                            "speaker {:?}: voice {} does not clone; its speakers are numbered (GET /api/voices)",
                            name.chars().take(64).collect::<String>(),
                            voice.name
                        ),
                    ));
                }
                if self.reference_audio.is_some() {
                    return Err(NodeError::new(
                        Code::BadRequest,
                        "give a stored speaker or reference_audio, not both",
                    ));
                }
                (None, Some(state.speakers.get(&name)?))
            }
        };
        let asked = Asked {
            speed: self.speed,
            noise_scale: self.noise_scale,
            noise_w: self.noise_w,
            speaker,
            reference_audio: self.reference_audio,
            stored_reference,
            emotion: self.emotion,
            emotion_audio: self.emotion_audio,
            emo_alpha: self.emo_alpha,
            top_k: self.top_k,
            top_p: self.top_p,
            temperature: self.temperature,
            repetition_penalty: self.repetition_penalty,
            num_beams: self.num_beams,
            max_mel_tokens: self.max_mel_tokens,
            diffusion_steps: self.diffusion_steps,
            inference_cfg_rate: self.inference_cfg_rate,
            pitch: self.pitch,
            energy: self.energy,
        };
        let controls = controls_for(&voice, asked)?;
        let job = Job {
            voice,
            text: self.text,
            controls,
            language: choice.language,
            chosen: choice.chosen,
        };
        let answer = Answer {
            format,
            streamed: self.stream.unwrap_or(false),
            caller,
        };
        Ok((job, answer))
    }
}

/// The voice a stored speaker's name as `voice` is spoken by: the default
/// voice when it clones, else the first that does.
fn cloning_voice(ready: &Ready) -> Option<&str> {
    let clones = |v: &crate::voices::LoadedVoice| v.capabilities().reference_audio;
    match ready.voices.get(None) {
        Some(d) if clones(d) => Some(d.name.as_str()),
        _ => ready
            .voices
            .map
            .values()
            .find(|v| clones(v))
            .map(|v| v.name.as_str()),
    }
}

fn check_text(state: &AppState, text: &str) -> Result<(), NodeError> {
    if text.trim().is_empty() {
        return Err(NodeError::new(Code::TextEmpty, "text is empty"));
    }
    let chars = text.chars().count();
    let max = state.cfg.max_text_chars;
    if chars > max {
        return Err(NodeError::new(
            Code::TextTooLong,
            format!("text has {chars} characters; the limit is {max}"),
        ));
    }
    Ok(())
}

/// The voice for `text`: the one named (checked to be a voice name, never
/// used as a path), or one chosen by the text's script (see
/// [`crate::language`]).
fn find_voice(ready: &Ready, name: Option<&str>, text: &str) -> Result<Choice, NodeError> {
    if let Some(n) = name {
        if !valid_voice_name(n) {
            return Err(voice_not_found(n));
        }
    }
    crate::language::choose(&ready.voices, name, text)
}

fn voice_not_found(name: &str) -> NodeError {
    let shown: String = name.chars().take(100).collect();
    NodeError::new(
        Code::VoiceNotFound,
        format!("voice {shown:?} is not served by this node"),
    )
}

/// The format named in a request (`default` when none).
fn format_of(name: Option<&str>, default: Format) -> Result<Format, NodeError> {
    match name {
        None => Ok(default),
        Some(n) => Format::parse(n).ok_or_else(|| {
            let shown: String = n.chars().take(32).collect();
            NodeError::new(
                Code::UnsupportedFormat,
                format!(
                    "format {shown:?} is not served; the node serves {}",
                    Format::SERVED
                ),
            )
        }),
    }
}
