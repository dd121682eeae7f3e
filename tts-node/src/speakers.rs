//! The speaker library: named reference clips for the voices that clone
//! (IndexTTS2), stored as `<cache-dir>/voices/<name>.wav` and managed over
//! `/api/speakers` by admin keys. A clip is decoded and bounded as a
//! request's `reference_audio` is ([`crate::controls::decode_clip`]) and
//! stored as 16-bit mono WAV; a name is checked to be a name (never a path)
//! before it comes near the file system. A synthesis names a stored
//! speaker with `"speaker": "<name>"`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use models::engine::Clip;
use serde::Serialize;

use crate::errors::{Code, NodeError};

/// Speakers a library holds at most.
pub const MAX_SPEAKERS: usize = 256;

/// A stored speaker, as `GET /api/speakers` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SpeakerView {
    pub name: String,
    pub seconds: f64,
    pub sample_rate: u32,
}

/// The library: its directory and the clips in it.
pub struct Library {
    dir: PathBuf,
    clips: RwLock<BTreeMap<String, Arc<Clip>>>,
}

/// A speaker's name: 1 to 64 of `A-Za-z0-9_-`, starting with a letter or
/// digit (no dot, no slash: never a path).
pub fn valid_speaker_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

fn bad_name(name: &str) -> NodeError {
    let shown: String = name.chars().take(80).collect();
    NodeError::new(
        Code::BadRequest,
        format!("speaker name {shown:?} is not a name: 1 to 64 of A-Za-z0-9 _ -, starting with a letter or digit"),
    )
}

fn io_failed(what: &str, path: &Path, e: std::io::Error) -> NodeError {
    NodeError::new(
        Code::StoreFail,
        format!("speaker library: cannot {what} {}: {e}", path.display()),
    )
}

impl Library {
    /// Opens `dir` (it need not exist yet) and reads the clips in it; a
    /// file that does not decode is skipped with a warning.
    pub fn open(dir: &Path) -> Self {
        let mut clips = BTreeMap::new();
        for (name, path) in crate::voices::stored_speakers_in(dir) {
            if !valid_speaker_name(&name) {
                continue;
            }
            let read = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    models::audio::wav::read_wav_mono(&b, crate::controls::CLIP_SECONDS.1)
                        .map_err(|e| e.to_string())
                });
            match read {
                Ok(d) => {
                    clips.insert(
                        name,
                        Arc::new(Clip {
                            samples: d.samples,
                            sample_rate: d.sample_rate,
                        }),
                    );
                }
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "stored speaker skipped: the clip does not decode"
                ),
            }
        }
        Self {
            dir: dir.to_path_buf(),
            clips: RwLock::new(clips),
        }
    }

    /// The stored speakers, by name.
    pub fn list(&self) -> Vec<SpeakerView> {
        self.clips
            .read()
            .map(|c| c.iter().map(|(n, clip)| view(n, clip)).collect())
            .unwrap_or_default()
    }

    /// Whether a speaker of that name is stored.
    pub fn holds(&self, name: &str) -> bool {
        self.clips.read().is_ok_and(|c| c.contains_key(name))
    }

    /// The clip of a stored speaker.
    pub fn get(&self, name: &str) -> Result<Arc<Clip>, NodeError> {
        if !valid_speaker_name(name) {
            return Err(bad_name(name));
        }
        self.clips
            .read()
            .ok()
            .and_then(|c| c.get(name).cloned())
            .ok_or_else(|| {
                NodeError::new(
                    Code::SpeakerNotFound,
                    format!("no stored speaker {name:?} (GET /api/speakers lists them)"),
                )
            })
    }

    /// Stores (or replaces) a speaker from a base64 WAV clip: decoded and
    /// bounded as `reference_audio` is, written as 16-bit mono WAV (to a
    /// temporary file, then renamed). Returns whether it replaced one.
    pub fn add(&self, name: &str, wav_b64: &str) -> Result<(SpeakerView, bool), NodeError> {
        if !valid_speaker_name(name) {
            return Err(bad_name(name));
        }
        let clip = crate::controls::decode_clip("audio", wav_b64)?;
        // As it came (gain 1: no normalising), 16-bit.
        let wav = models::audio::wav::wav_i16_gain(&clip.samples, clip.sample_rate, 1.0).map_err(
            |e| NodeError::new(Code::BadAudio, format!("audio: cannot store the clip: {e}")),
        )?;
        let mut clips = self
            .clips
            .write()
            .map_err(|_| NodeError::new(Code::StoreFail, "speaker library lock poisoned"))?;
        if !clips.contains_key(name) && clips.len() >= MAX_SPEAKERS {
            return Err(NodeError::new(
                Code::BadRequest,
                format!("the speaker library holds {MAX_SPEAKERS} speakers; delete one first"),
            ));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| io_failed("create", &self.dir, e))?;
        let path = self.dir.join(format!("{name}.wav"));
        let tmp = self.dir.join(format!(".{name}.wav.part"));
        std::fs::write(&tmp, &wav).map_err(|e| io_failed("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_failed("rename", &path, e))?;
        let clip = Arc::new(clip);
        let shown = view(name, &clip);
        let replaced = clips.insert(name.to_owned(), clip).is_some();
        Ok((shown, replaced))
    }

    /// Deletes a stored speaker.
    pub fn remove(&self, name: &str) -> Result<(), NodeError> {
        if !valid_speaker_name(name) {
            return Err(bad_name(name));
        }
        let mut clips = self
            .clips
            .write()
            .map_err(|_| NodeError::new(Code::StoreFail, "speaker library lock poisoned"))?;
        if !clips.contains_key(name) {
            return Err(NodeError::new(
                Code::SpeakerNotFound,
                format!("no stored speaker {name:?}"),
            ));
        }
        let path = self.dir.join(format!("{name}.wav"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_failed("delete", &path, e)),
        }
        clips.remove(name);
        Ok(())
    }
}

fn view(name: &str, clip: &Clip) -> SpeakerView {
    SpeakerView {
        name: name.to_owned(),
        seconds: clip.samples.len() as f64 / f64::from(clip.sample_rate.max(1)),
        sample_rate: clip.sample_rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn wav_b64(seconds: f64) -> String {
        let n = (seconds * 16000.0) as usize;
        let samples: Vec<f32> = (0..n).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let wav = models::audio::wav::wav_i16(&samples, 16000).expect("wav");
        base64::engine::general_purpose::STANDARD.encode(wav)
    }

    #[test]
    fn names_are_names_never_paths() {
        for ok in ["alice", "Bob_2", "x-1", "9"] {
            assert!(valid_speaker_name(ok), "{ok}");
        }
        for bad in [
            "",
            "../etc/passwd",
            "a/b",
            "a\\b",
            ".hidden",
            "-x",
            "a.wav",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(!valid_speaker_name(bad), "{bad}");
        }
    }

    #[test]
    fn add_list_get_replace_remove_and_reopen() {
        let dir = std::env::temp_dir().join(format!("tts-speakers-{}", fastrand::u64(..)));
        let lib = Library::open(&dir);
        assert!(lib.list().is_empty());
        let (v, replaced) = lib.add("alice", &wav_b64(1.0)).expect("adds");
        assert!(!replaced);
        assert!((v.seconds - 1.0).abs() < 1e-3);
        assert!(dir.join("alice.wav").is_file());
        let (_, replaced) = lib.add("alice", &wav_b64(2.0)).expect("replaces");
        assert!(replaced);
        assert_eq!(lib.get("alice").expect("stored").samples.len(), 32000);
        let reopened = Library::open(&dir);
        assert_eq!(reopened.list().len(), 1);
        assert_eq!(reopened.list()[0].name, "alice");
        assert_eq!(
            lib.get("bob").expect_err("absent").code,
            Code::SpeakerNotFound
        );
        assert_eq!(
            lib.get("../alice").expect_err("path").code,
            Code::BadRequest
        );
        lib.remove("alice").expect("removes");
        assert!(!dir.join("alice.wav").exists());
        assert_eq!(
            lib.remove("alice").expect_err("gone").code,
            Code::SpeakerNotFound
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn broken_short_and_long_clips_are_refused_and_nothing_is_written() {
        let dir = std::env::temp_dir().join(format!("tts-speakers-{}", fastrand::u64(..)));
        let lib = Library::open(&dir);
        for (b64, want) in [
            ("not base64!".to_owned(), "base64"),
            (
                base64::engine::general_purpose::STANDARD.encode(b"RIFF....WAVEjunk"),
                "audio",
            ),
            (wav_b64(0.1), "clip is"),
            (wav_b64(31.0), "audio"),
        ] {
            let e = lib.add("carol", &b64).expect_err(want);
            assert_eq!(e.code, Code::BadAudio, "{}", e.message);
            assert!(e.message.contains(want), "{}", e.message);
        }
        assert!(!dir.join("carol.wav").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
