//! Side-by-side speed of the candle voice and onnxruntime on the same CPU,
//! the same voice file and the same phoneme ids (noise on, default scales):
//! seconds of audio per second of compute, and the ratio.
//!
//! ```text
//! scripts/install-deps.sh && scripts/fetch-models.sh
//! cargo bench -p models --bench rtf [-- --threads 2]
//! ```
//!
//! onnxruntime runs in the project's Python venv (or MODELS_PYTHON) with the
//! same number of intra-op threads as candle has cores.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use models::{SynthesisParams, Voice};

// The allocator tts-node and the synth example use (see tts-node/Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TEXTS: [&str; 8] = [
    "Hello there.",
    "The quick brown fox jumps over the lazy dog.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "Ask her to bring these things with her from the store: six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
    "Graylog shows which node fails, since when, and why.",
    "The meeting starts at 10:30 on Monday, March 3rd, 2025!",
    "A journey of a thousand miles begins with a single step.",
    "Thank you for listening, and have a wonderful evening.",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let dir = root().join("cache_hub/piper/en_US-joe-medium");
    let voice = Voice::load(&dir, &candle_core::Device::Cpu)?;
    let ph = voice.phonemizer();
    let ids: Vec<Vec<i64>> = TEXTS
        .iter()
        .flat_map(|t| ph.phonemize(t).unwrap_or_default())
        .map(|s| ph.to_ids(&s).ids)
        .collect();
    let params = SynthesisParams::from_voice(voice.info());
    let rate = f64::from(voice.info().sample_rate);

    // Warm-up, then timed.
    voice.synthesize_ids(&ids[0], &params)?;
    let t = Instant::now();
    let mut samples = 0usize;
    for s in &ids {
        samples += voice.synthesize_ids(s, &params)?.len();
    }
    let candle_s = t.elapsed().as_secs_f64();
    let audio_s = samples as f64 / rate;

    let py = std::env::var("MODELS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/python3"));
    let stdin: String = std::iter::once(&ids[0])
        .chain(ids.iter())
        .map(|s| s.iter().map(i64::to_string).collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    let mut child = Command::new(&py)
        .arg(root().join("models/tests/onnx_reference.py"))
        .args([
            "synth",
            dir.join("en_US-joe-medium.onnx")
                .to_str()
                .unwrap_or_default(),
        ])
        .args([
            params.noise_scale.to_string(),
            params.length_scale.to_string(),
            params.noise_w.to_string(),
            threads.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "onnxruntime run failed ({})",
        py.display()
    );
    // Parse: per sentence a u32 count and samples; the first is the warm-up.
    let mut pos = 0;
    let mut ort_samples = 0usize;
    let mut first_len = 0usize;
    for i in 0..=ids.len() {
        let n = u32::from_le_bytes(out.stdout[pos..pos + 4].try_into()?) as usize;
        pos += 4 + 4 * n;
        if i == 0 {
            first_len = n;
        } else {
            ort_samples += n;
        }
    }
    let ort_total = f64::from_le_bytes(out.stdout[pos..pos + 8].try_into()?);
    // Take the warm-up's share out, in proportion to its audio.
    let ort_s = ort_total * ort_samples as f64 / (ort_samples + first_len) as f64;
    let ort_audio_s = ort_samples as f64 / rate;

    let candle_rtf = candle_s / audio_s;
    let ort_rtf = ort_s / ort_audio_s;
    println!(
        "{} sentences, {:.1} s of audio, {threads} threads, noise on (default scales)",
        ids.len(),
        audio_s
    );
    println!(
        "candle      : {candle_s:.3} s compute  RTF {candle_rtf:.4}  ({:.1}x real time)",
        1.0 / candle_rtf
    );
    println!(
        "onnxruntime : {ort_s:.3} s compute  RTF {ort_rtf:.4}  ({:.1}x real time)",
        1.0 / ort_rtf
    );
    println!(
        "ratio candle/onnxruntime compute time: {:.2}",
        candle_rtf / ort_rtf
    );
    println!("peak RSS of the candle process: {:.0} MiB", peak_rss_mib());
    Ok(())
}
