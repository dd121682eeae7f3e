//! Which voice speaks a text: the one the request names, when it speaks the
//! text's language, or, when it names none (or one of OpenAI's voice
//! names), the voice that speaks the script most of the text is written in
//! (Han → the Mandarin voice, Latin → the English one): the default voice
//! when it does, else the first by name that can speak without a clip.
//!
//! The text's script is `models::text::script::main_script`'s (Han
//! characters count one each, Latin words one each, an English function
//! word two; Han wins a tie), so `服务器CPU使用率` is Chinese with an English
//! word in it. Words in other scripts must be readable by the chosen voice:
//! spoken by it, by its helper for that script, or spelled. Otherwise the
//! request is a 400 `UNSUPPORTED_LANGUAGE` naming the voices that speak the
//! script, never text read as nonsense.

use std::sync::Arc;

use models::text::script::{main_script, scripts, Script};

use crate::errors::{Code, NodeError};
use crate::voices::{LoadedVoice, Voices};

/// How the voice of a request was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// The request named it.
    Requested,
    /// By the text's script.
    ByScript,
}

impl Chosen {
    /// `requested` or `script`, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Chosen::Requested => "requested",
            Chosen::ByScript => "script",
        }
    }
}

/// The voice of a request and why.
pub struct Choice {
    pub voice: Arc<LoadedVoice>,
    pub chosen: Chosen,
    /// The language tag of the text's main script in that voice (`zh`,
    /// `en`), or the voice's first language for a text without letters.
    pub language: String,
}

/// The names of the voices that speak `script`, for messages.
fn speakers_of(voices: &Voices, script: Script) -> Vec<&str> {
    voices
        .map
        .values()
        .filter(|v| v.speaks(script))
        .map(|v| v.name.as_str())
        .collect()
}

fn languages_of(v: &LoadedVoice) -> String {
    let tags: Vec<String> = v
        .capabilities()
        .languages
        .iter()
        .map(|l| l.tag.clone())
        .collect();
    if tags.is_empty() {
        "no language".into()
    } else {
        tags.join(", ")
    }
}

fn nobody(voices: &Voices, script: Script) -> NodeError {
    let mut spoken: Vec<String> = Vec::new();
    for v in voices.map.values() {
        for l in &v.capabilities().languages {
            let s = format!("{} ({})", l.tag, l.script.name());
            if !spoken.contains(&s) {
                spoken.push(s);
            }
        }
    }
    NodeError::new(
        Code::UnsupportedLanguage,
        format!(
            "the text is written in {}, which no voice on this node speaks; its voices speak {}",
            script.name(),
            spoken.join(", ")
        ),
    )
}

/// The voice for `text`: `requested` (already checked to be a valid name,
/// `None` to choose by script).
pub fn choose(voices: &Voices, requested: Option<&str>, text: &str) -> Result<Choice, NodeError> {
    let main = main_script(text);
    let (voice, chosen) = match requested {
        Some(name) => {
            let v = voices.get(Some(name)).cloned().ok_or_else(|| {
                let shown: String = name.chars().take(100).collect();
                NodeError::new(
                    Code::VoiceNotFound,
                    format!("voice {shown:?} is not served by this node"),
                )
            })?;
            if let Some(s) = main.filter(|s| !v.speaks(*s)) {
                let can = speakers_of(voices, s);
                return Err(NodeError::new(
                    Code::UnsupportedLanguage,
                    format!(
                        "voice {} speaks {}, not {}; {}",
                        v.name,
                        languages_of(&v),
                        s.name(),
                        if can.is_empty() {
                            "no voice on this node does".to_owned()
                        } else {
                            format!("voices that do: {}", can.join(", "))
                        }
                    ),
                ));
            }
            (v, Chosen::Requested)
        }
        None => {
            let default = voices.get(None).cloned();
            let v = match main {
                None => default,
                Some(s) => default.filter(|d| d.speaks(s)).or_else(|| {
                    voices
                        .map
                        .values()
                        .find(|v| v.speaks(s) && v.speaks_unprompted())
                        .or_else(|| voices.map.values().find(|v| v.speaks(s)))
                        .cloned()
                }),
            };
            let v = match (v, main) {
                (Some(v), _) => v,
                (None, Some(s)) => return Err(nobody(voices, s)),
                (None, None) => {
                    return Err(NodeError::new(
                        Code::VoiceNotFound,
                        "the default voice is not served by this node",
                    ))
                }
            };
            (v, Chosen::ByScript)
        }
    };
    for s in scripts(text) {
        if !voice.reads(s) {
            let can = speakers_of(voices, s);
            return Err(if can.is_empty() {
                nobody(voices, s)
            } else {
                NodeError::new(
                    Code::UnsupportedLanguage,
                    format!(
                        "the text has {}, which voice {} does not speak; voices that do: {}",
                        s.name(),
                        voice.name,
                        can.join(", ")
                    ),
                )
            });
        }
    }
    let caps = voice.capabilities();
    let language = main
        .and_then(|s| caps.languages.iter().find(|l| l.script == s))
        .or_else(|| caps.languages.first())
        .map_or_else(String::new, |l| l.tag.clone());
    Ok(Choice {
        voice,
        chosen,
        language,
    })
}
