//! A voice that speaks a text written in several scripts: the runs of the
//! text in a script its main voice does not read go to a helper voice that
//! reads it (the English words of a Chinese sentence to the English voice,
//! and back), and the pieces are joined into one stream at the main voice's
//! rate.
//!
//! - The text is cut into runs by [`crate::text::script::runs`]: numbers and
//!   punctuation stay with the language around them, so `显存 3.2 GB` is
//!   Mandarin 显存三点二 and English "GB". In a Chinese text, measures after a
//!   number become their Chinese words first (`120ms` → 120毫秒, `25km` →
//!   25公里, `3GHz` → 3吉赫兹); byte sizes (`GB`, `MB`) stay English, as
//!   engineers say them.
//! - Each run is synthesised whole by its voice, with the request's controls
//!   that voice honours (the speed carries over; a helper's noise is off, so
//!   the same text gives the same samples), resampled to the main
//!   voice's rate ([`crate::audio::Resampler`]), and scaled so that it is as
//!   loud as that voice on its own (each voice has its calibrated gain).
//! - At each join the silence a voice puts around a run is cut to
//!   [`JOIN_PAUSE_MS`] and the edges fade over [`FADE_MS`]: no click, and no
//!   long pause inside a sentence.
//! - A text in one script only goes to its voice unchanged (its own
//!   streaming, sample for sample).
//!
//! ```no_run
//! use std::sync::Arc;
//! use models::engine::{Controls, Engine, Request};
//! use models::mixed::{Mixed, Part};
//! use models::text::script::Script;
//! # fn voices() -> (Arc<dyn Engine>, Arc<dyn Engine>) { unimplemented!() }
//! let (mandarin, english) = voices();
//! let mixed = Mixed::new(
//!     Part::new("zh_CN-baker", mandarin, 1.0),
//!     vec![(Script::Latin, Part::new("en_US-joe-medium", english, 1.2))],
//! )?;
//! let audio = mixed.synthesize(&Request::new("服务器CPU使用率达到95%。", &Controls::default()))?;
//! # Ok::<(), models::Error>(())
//! ```

use std::ops::ControlFlow;
use std::sync::Arc;

use crate::audio::Resampler;
use crate::engine::{Audio, Capabilities, Engine, Request, Streamed, Timings};
use crate::text::script::{main_script, runs, Script};
use crate::{Error, VoiceInfo};

/// Longest silence kept at a join between two voices, in ms.
pub const JOIN_PAUSE_MS: f32 = 60.0;
/// Length of the fade at each side of a join, in ms.
pub const FADE_MS: f32 = 5.0;

/// A voice taking part: its served name, its engine and its calibrated
/// output gain.
#[derive(Clone)]
pub struct Part {
    /// The voice's name.
    pub name: String,
    /// The voice.
    pub engine: Arc<dyn Engine>,
    /// The gain the node applies to this voice alone.
    pub gain: f32,
}

impl Part {
    /// A voice called `name` with its gain.
    pub fn new(name: impl Into<String>, engine: Arc<dyn Engine>, gain: f32) -> Self {
        Self {
            name: name.into(),
            engine,
            gain,
        }
    }

    fn language(&self, script: Script) -> String {
        let caps = self.engine.capabilities();
        caps.languages
            .iter()
            .find(|l| l.script == script)
            .or_else(|| caps.languages.first())
            .map_or_else(|| script.as_str().to_owned(), |l| l.tag.clone())
    }
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("name", &self.name)
            .field("gain", &self.gain)
            .finish()
    }
}

/// A part of a text and who speaks it: a helper's index, or `None` for the
/// main voice.
type Turn = (Option<usize>, std::ops::Range<usize>);

/// A main voice and a helper per script it does not read.
#[derive(Debug)]
pub struct Mixed {
    main: Part,
    helpers: Vec<(Script, Part, Option<Resampler>)>,
}

/// Measures after a number that a Chinese text reads in Chinese.
const CHINESE_UNITS: [(&str, &str); 18] = [
    ("GHz", "吉赫兹"),
    ("MHz", "兆赫兹"),
    ("kHz", "千赫兹"),
    ("Hz", "赫兹"),
    ("ms", "毫秒"),
    ("min", "分钟"),
    ("km", "公里"),
    ("cm", "厘米"),
    ("mm", "毫米"),
    ("kg", "千克"),
    ("kW", "千瓦"),
    ("°C", "摄氏度"),
    ("℃", "摄氏度"),
    ("s", "秒"),
    ("h", "小时"),
    ("m", "米"),
    ("g", "克"),
    ("W", "瓦"),
];

/// `text` with each measure that follows a number (with or without a
/// space, and not followed by another letter) in its Chinese word.
///
/// ```
/// assert_eq!(models::mixed::chinese_units("延迟120ms，温度25℃，3.2GB"), "延迟120毫秒，温度25摄氏度，3.2GB");
/// ```
pub fn chinese_units(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut after_digit = false;
    while let Some(c) = rest.chars().next() {
        if after_digit {
            let skip = usize::from(rest.starts_with(' '));
            let tail = &rest[skip..];
            let unit = CHINESE_UNITS.iter().find(|(u, _)| {
                tail.starts_with(u)
                    && !tail[u.len()..]
                        .chars()
                        .next()
                        .is_some_and(|n| n.is_ascii_alphabetic())
            });
            if let Some((u, zh)) = unit {
                out.push_str(zh);
                rest = &tail[u.len()..];
                after_digit = false;
                continue;
            }
        }
        after_digit = c.is_ascii_digit();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Where the loud part of `x` starts and ends (`None` for silence).
fn loud(x: &[f32]) -> Option<(usize, usize)> {
    let peak = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let threshold = (0.02 * peak).max(1e-4);
    let first = x.iter().position(|v| v.abs() > threshold)?;
    let last = x.iter().rposition(|v| v.abs() > threshold)?;
    Some((first, last))
}

/// A raised-cosine ramp over `n` samples at the start (`rising`) or end.
fn fade(x: &mut [f32], n: usize, rising: bool) {
    let n = n.min(x.len());
    let len = x.len();
    for i in 0..n {
        let g = 0.5 - 0.5 * (std::f32::consts::PI * (i as f32 + 0.5) / n as f32).cos();
        if rising {
            x[i] *= g;
        } else {
            x[len - 1 - i] *= g;
        }
    }
}

impl Mixed {
    /// `main` with a helper for each of `helpers`' scripts. A helper for a
    /// script the main voice reads, or two for one script, is refused.
    pub fn new(main: Part, helpers: Vec<(Script, Part)>) -> Result<Self, Error> {
        let rate = main.engine.capabilities().sample_rate;
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for (script, part) in helpers {
            if main.engine.capabilities().speaks(script) || seen.contains(&script) {
                return Err(Error::Config(format!(
                    "voice {} already has a voice for {}",
                    main.name,
                    script.name()
                )));
            }
            seen.push(script);
            let from = part.engine.capabilities().sample_rate;
            let resampler = if from == rate {
                None
            } else {
                Some(Resampler::new(from, rate)?)
            };
            out.push((script, part, resampler));
        }
        Ok(Self { main, helpers: out })
    }

    /// The scripts helpers speak, and the helpers' names.
    pub fn helpers(&self) -> Vec<(Script, &str)> {
        self.helpers
            .iter()
            .map(|(s, p, _)| (*s, p.name.as_str()))
            .collect()
    }

    /// The text as read (measures in Chinese words in a Chinese text), its
    /// parts and who speaks each (`None`: the main voice), neighbours with
    /// the same speaker merged.
    fn plan(&self, text: &str) -> (String, Vec<Turn>) {
        let caps = self.main.engine.capabilities();
        let own = caps.languages.first().map_or(Script::Latin, |l| l.script);
        let text = match main_script(text) {
            Some(Script::Han) => chinese_units(text),
            _ => text.to_owned(),
        };
        let mut plan: Vec<Turn> = Vec::new();
        for r in runs(&text, own) {
            let who = if caps.speaks(r.script) {
                None
            } else {
                self.helpers.iter().position(|(s, _, _)| *s == r.script)
            };
            let range = r.at..r.at + r.text.len();
            match plan.last_mut() {
                Some((w, rg)) if *w == who => rg.end = range.end,
                _ => plan.push((who, range)),
            }
        }
        (text, plan)
    }
}

impl Engine for Mixed {
    fn info(&self) -> &VoiceInfo {
        self.main.engine.info()
    }

    fn forget_clips(&self) {
        self.main.engine.forget_clips();
    }

    fn capabilities(&self) -> &Capabilities {
        self.main.engine.capabilities()
    }

    fn synthesize(&self, request: &Request<'_>) -> Result<Audio, Error> {
        let started = std::time::Instant::now();
        let (samples, s) = crate::engine::collect(self, request)?;
        Ok(Audio {
            samples,
            sample_rate: self.capabilities().sample_rate,
            timings: Timings {
                phonemize_ms: 0.0,
                infer_ms: started.elapsed().as_secs_f64() * 1e3,
            },
            unknown_phonemes: s.unknown_phonemes,
            sentences: s.sentences,
        })
    }

    fn synthesize_stream(
        &self,
        request: &Request<'_>,
        split_first: bool,
        sink: &mut dyn FnMut(&[f32]) -> ControlFlow<()>,
    ) -> Result<Streamed, Error> {
        let (text, plan) = self.plan(request.text);
        if plan.iter().all(|(who, _)| who.is_none()) {
            let r = Request::new(&text, request.controls);
            return self.main.engine.synthesize_stream(&r, split_first, sink);
        }
        let rate = self.capabilities().sample_rate as f32;
        let pause = (JOIN_PAUSE_MS / 1000.0 * rate) as usize;
        let ramp = ((FADE_MS / 1000.0 * rate) as usize).max(1);
        let mut out = Streamed::default();
        let last = plan.len() - 1;
        for (k, (who, range)) in plan.iter().enumerate() {
            let part_text = &text[range.clone()];
            let (part, resampler) = match who {
                None => (&self.main, None),
                Some(i) => (&self.helpers[*i].1, self.helpers[*i].2.as_ref()),
            };
            let mut controls = request.controls.honoured_by(part.engine.capabilities());
            if who.is_some() {
                // A helper speaks its words the same way every time, so a
                // streamed and a whole answer hold the same samples.
                let caps = part.engine.capabilities();
                if caps.supports(crate::engine::Control::NoiseScale) {
                    controls.noise_scale = Some(0.0);
                }
                if caps.supports(crate::engine::Control::NoiseW) {
                    controls.noise_w = Some(0.0);
                }
            }
            let mut audio = Vec::new();
            let s = part.engine.synthesize_stream(
                &Request::new(part_text, &controls),
                false,
                &mut |piece| {
                    audio.extend_from_slice(piece);
                    ControlFlow::Continue(())
                },
            )?;
            out.sentences += s.sentences;
            out.unknown_phonemes += s.unknown_phonemes;
            let script = runs(part_text, Script::Latin)
                .first()
                .map_or(Script::Latin, |r| r.script);
            let tag = part.language(script);
            if !out.voices.contains(&part.name) {
                out.voices.push(part.name.clone());
            }
            if !out.languages.contains(&tag) {
                out.languages.push(tag);
            }
            let mut audio = match resampler {
                Some(r) => r.process(&audio),
                None => audio,
            };
            // As loud as this voice alone once the node applies the main
            // voice's gain.
            if who.is_some() && self.main.gain > 0.0 {
                let g = part.gain / self.main.gain;
                audio.iter_mut().for_each(|v| *v *= g);
            }
            let Some((first, end)) = loud(&audio) else {
                continue;
            };
            let start = if k > 0 {
                first.saturating_sub(pause)
            } else {
                0
            };
            let stop = if k < last {
                (end + 1 + pause).min(audio.len())
            } else {
                audio.len()
            };
            let mut piece = audio[start..stop].to_vec();
            if k > 0 {
                fade(&mut piece, ramp, true);
            }
            if k < last {
                fade(&mut piece, ramp, false);
            }
            if out.send(sink, &piece).is_break() {
                return Ok(out);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_after_numbers_are_read_in_chinese() {
        assert_eq!(chinese_units("延迟 120 ms"), "延迟 120毫秒");
        assert_eq!(chinese_units("3GHz的CPU"), "3吉赫兹的CPU");
        // Not after a number, or part of a longer word: left alone.
        assert_eq!(chinese_units("ms级别"), "ms级别");
        assert_eq!(chinese_units("5 mins"), "5 mins");
        assert_eq!(chinese_units("8GB显存"), "8GB显存");
    }

    #[test]
    fn fades_reach_zero_at_the_join() {
        let mut x = vec![1.0f32; 100];
        fade(&mut x, 10, true);
        fade(&mut x, 10, false);
        assert!(x[0] < 0.05 && x[99] < 0.05, "{} {}", x[0], x[99]);
        assert!((x[50] - 1.0).abs() < 1e-6);
        assert!(x[0] < x[5] && x[5] < x[9]);
        assert_eq!(loud(&[0.0, 0.0, 0.5, 0.0, 0.1, 0.0]), Some((2, 4)));
        assert_eq!(loud(&[0.0; 4]), None);
    }
}
