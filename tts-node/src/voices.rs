//! The voices the node serves: every Piper voice found under
//! `<cache-dir>/piper/`, loaded once at start. Requests name a voice; the
//! name is looked up in this map and never used to build a path.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::config::valid_voice_name;

/// A voice ready to synthesise.
pub struct LoadedVoice {
    pub name: String,
    voice: models::Voice,
    /// Fixed output gain (`models::Voice::calibrated_gain`), the same for
    /// streamed and whole responses.
    gain: f32,
}

impl LoadedVoice {
    /// The voice's description (sample rate, speakers, model version).
    pub fn info(&self) -> &models::VoiceInfo {
        self.voice.info()
    }

    /// Synthesises one segment piece by piece (see
    /// `models::Voice::synthesize_stream`).
    pub fn synthesize_stream(
        &self,
        text: &str,
        params: &models::SynthesisParams,
        split_first: bool,
        sink: &mut dyn FnMut(&[f32]) -> std::ops::ControlFlow<()>,
    ) -> Result<models::Streamed, models::Error> {
        self.voice
            .synthesize_stream(text, params, split_first, sink)
    }

    /// The voice's fixed output gain.
    pub fn gain(&self) -> f32 {
        self.gain
    }
}

/// All loaded voices and the default one.
pub struct Voices {
    pub default: String,
    pub map: BTreeMap<String, Arc<LoadedVoice>>,
    pub load_time: Duration,
}

impl Voices {
    /// Loads the default voice (required) and every other voice in the cache.
    pub fn load(
        cache_dir: &Path,
        default: &str,
        device: &candle_core::Device,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let root = cache_dir.join("piper");
        let default_dir = root.join(default);
        if !default_dir.is_dir() {
            bail!(
                "voice {default:?} is not in {} (--voice / TTS_VOICE): run scripts/fetch-models.sh",
                root.display()
            );
        }
        let mut map = BTreeMap::new();
        let mut names = vec![default.to_owned()];
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name != default && valid_voice_name(&name) && e.path().is_dir() {
                    names.push(name);
                }
            }
        }
        for name in names {
            let dir = root.join(&name);
            // Loading includes one phonemisation, so that missing espeak-ng
            // data or an espeak voice the library lacks stop the start, not
            // the first request.
            // The gain calibration synthesises a few sentences: it also
            // proves the voice runs on this device.
            let loaded = models::Voice::load(&dir, device).and_then(|voice| {
                voice.phonemizer().phonemize("Ready.")?;
                let gain = voice.calibrated_gain()?;
                Ok((voice, gain))
            });
            match loaded {
                Ok((voice, gain)) => {
                    tracing::debug!(voice = %name, gain = f64::from(gain), "voice loaded");
                    map.insert(name.clone(), Arc::new(LoadedVoice { name, voice, gain }));
                }
                Err(e) if name == default => {
                    return Err(e).with_context(|| {
                        format!("loading the default voice from {}", dir.display())
                    });
                }
                Err(e) => {
                    tracing::warn!(voice = %name, error = %e, "skipping a voice that does not load");
                }
            }
        }
        Ok(Self {
            default: default.to_owned(),
            map,
            load_time: started.elapsed(),
        })
    }

    /// The voice called `name` (the default when `None`).
    pub fn get(&self, name: Option<&str>) -> Option<&Arc<LoadedVoice>> {
        self.map.get(name.unwrap_or(&self.default))
    }
}
