//! Parity with upstream Piper on the real voice:
//! - phoneme ids against PyPI `piper-phonemize` on the same sentences;
//! - audio against onnxruntime running the same `.onnx` on the same ids, with
//!   the noise off: same length and Pearson correlation ≥ 0.999 per sentence.
//!
//! Needs the default voice (scripts/fetch-models.sh) and the Python venv with
//! onnxruntime and piper-phonemize (scripts/install-deps.sh). Without them the
//! tests say so and pass, unless MODELS_REQUIRE_VOICE is set (CI sets it),
//! in which case they fail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use models::{SynthesisParams, Voice};

pub const SENTENCES: [&str; 24] = [
    "Hello there.",
    "The quick brown fox jumps over the lazy dog.",
    "How are you doing today, my friend?",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "Please call Stella.",
    "Ask her to bring these things with her from the store: six spoons of fresh snow peas.",
    "I have 23 apples and 4.5 oranges.",
    "Dr. Smith lives on Elm St. near the station.",
    "The meeting starts at 10:30 on Monday, March 3rd, 2025!",
    "Wow; that was unexpected.",
    "Can you hear me now?",
    "The node served 1,024 requests in 7 seconds.",
    "She sells seashells by the seashore.",
    "Peter Piper picked a peck of pickled peppers.",
    "A journey of a thousand miles begins with a single step.",
    "GPU memory usage is 3.25 gigabytes.",
    "Don't stop believing, hold on to that feeling.",
    "To be, or not to be: that is the question.",
    "Numbers like 7, 42 and 1999 are read aloud.",
    "The weather will be sunny with a high of 75 degrees.",
    "Please, wait a moment... I'll be right back.",
    "Email me at john at example dot com.",
    "Graylog shows which node fails, since when, and why.",
    "Thank you for listening.",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn voice_dir() -> PathBuf {
    root().join("cache_hub/piper/en_US-joe-medium")
}

/// The Python with onnxruntime and piper-phonemize: MODELS_PYTHON, else the
/// project's .venv.
fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MODELS_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = root().join(".venv/bin/python3");
    venv.exists().then_some(venv)
}

/// True when the test can run; false (after saying why) when it must be skipped.
fn prerequisites() -> Option<PathBuf> {
    let missing = if !voice_dir().join("en_US-joe-medium.onnx").exists() {
        Some("the voice (run scripts/fetch-models.sh)")
    } else if python().is_none() {
        Some("the Python venv with onnxruntime and piper-phonemize (run scripts/install-deps.sh)")
    } else {
        None
    };
    match missing {
        None => python(),
        Some(what) if std::env::var_os("MODELS_REQUIRE_VOICE").is_some() => {
            panic!("MODELS_REQUIRE_VOICE is set but {what} is missing")
        }
        Some(what) => {
            eprintln!("SKIPPED: parity with upstream needs {what}");
            None
        }
    }
}

fn run_python(py: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(py)
        .arg(root().join("models/tests/onnx_reference.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().expect("python");
    assert!(out.status.success(), "onnx_reference.py {args:?} failed");
    out.stdout
}

/// piper-phonemize's ids: one Vec per sentence, grouped per input line.
fn upstream_ids(py: &Path, lines: &[&str]) -> Vec<Vec<Vec<i64>>> {
    let json = voice_dir().join("en_US-joe-medium.onnx.json");
    let out = run_python(
        py,
        &["ids", "en-us", json.to_str().unwrap()],
        lines.join("\n").as_bytes(),
    );
    let text = String::from_utf8(out).unwrap();
    let groups: Vec<Vec<Vec<i64>>> = text
        .split("\n\n")
        .filter(|g| !g.trim().is_empty())
        .map(|g| {
            g.lines()
                .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
                .collect()
        })
        .collect();
    assert_eq!(groups.len(), lines.len());
    groups
}

fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (
        a.iter().map(|&x| x as f64).sum::<f64>() / n,
        b.iter().map(|&x| x as f64).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}

#[test]
fn phoneme_ids_match_piper_phonemize() {
    let Some(py) = prerequisites() else { return };
    let voice = Voice::load(&voice_dir(), &candle_core::Device::Cpu).unwrap();
    let upstream = upstream_ids(&py, &SENTENCES);
    let ph = voice.phonemizer();
    let mut differ = Vec::new();
    for (line, want) in SENTENCES.iter().zip(&upstream) {
        let ours: Vec<Vec<i64>> = ph
            .phonemize(line)
            .unwrap()
            .iter()
            .map(|s| ph.to_ids(s).ids)
            .collect();
        if &ours != want {
            differ.push(format!(
                "{line:?}\n  ours:     {ours:?}\n  upstream: {want:?}"
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} lines differ:\n{}",
        differ.len(),
        SENTENCES.len(),
        differ.join("\n")
    );
}

#[test]
fn audio_matches_onnxruntime_with_noise_off() {
    let Some(py) = prerequisites() else { return };
    let voice = Voice::load(&voice_dir(), &candle_core::Device::Cpu).unwrap();
    // The same ids for both: piper-phonemize's, one sentence each.
    let ids: Vec<Vec<i64>> = upstream_ids(&py, &SENTENCES)
        .into_iter()
        .flatten()
        .collect();
    assert!(ids.len() >= 20);
    let stdin: String = ids
        .iter()
        .map(|s| s.iter().map(i64::to_string).collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    let onnx = voice_dir().join("en_US-joe-medium.onnx");
    let out = run_python(
        &py,
        &["synth", onnx.to_str().unwrap(), "0", "1", "0", "2"],
        stdin.as_bytes(),
    );
    let mut refs = Vec::new();
    let mut pos = 0;
    for _ in &ids {
        let n = u32::from_le_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 4;
        let samples: Vec<f32> = out[pos..pos + 4 * n]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        pos += 4 * n;
        refs.push(samples);
    }
    let params = SynthesisParams {
        noise_scale: 0.0,
        length_scale: 1.0,
        noise_w: 0.0,
        speaker: None,
    };
    let mut worst = f64::INFINITY;
    for (i, (sentence_ids, reference)) in ids.iter().zip(&refs).enumerate() {
        let ours = voice.synthesize_ids(sentence_ids, &params).unwrap();
        assert_eq!(ours.len(), reference.len(), "sentence {i}: sample count");
        let r = pearson(&ours, reference);
        worst = worst.min(r);
        assert!(r >= 0.9999, "sentence {i}: correlation {r:.6}");
    }
    eprintln!(
        "parity: {} sentences, worst Pearson correlation {worst:.9} (1 - r = {:.1e})",
        ids.len(),
        1.0 - worst
    );
}
