//! Speaks text with a Piper voice and writes a 16-bit WAV.
//!
//! ```text
//! cargo run --release -p models --example synth -- --voice cache_hub/piper/en_US-joe-medium \
//!     --text "Hello there." --out out.wav [--noise-scale F] [--length-scale F] [--noise-w F] \
//!     [--speaker N] [--device cpu|cuda] [--print-ids] [--ids "1 0 20 0 … 2"] [--repeat N]
//! ```
//!
//! Last line: `samples=N sample_rate=R synth_ms=T rtf=X`. With `--print-ids`
//! the phoneme ids used are printed before it, one line per sentence. With
//! `--repeat N` the text is synthesised N times in the same process (the first
//! run pays for loading kernels; on CUDA, for compiling them), each run's time
//! is printed as `run=I synth_ms=T`, and the last line reports the median.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use models::{SynthesisParams, Voice};

// As in tts-node: the voice's large per-convolution buffers are reused.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut voice = None;
    let mut text = None;
    let mut out = None;
    let mut ids = None;
    let mut device = "cpu".to_string();
    let mut print_ids = false;
    let mut repeat = 1usize;
    let (mut noise_scale, mut length_scale, mut noise_w, mut speaker) = (None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--voice" => voice = Some(PathBuf::from(val()?)),
            "--text" => text = Some(val()?),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--ids" => ids = Some(val()?),
            "--device" => device = val()?,
            "--noise-scale" => noise_scale = Some(val()?.parse::<f32>().context("--noise-scale")?),
            "--length-scale" => {
                length_scale = Some(val()?.parse::<f32>().context("--length-scale")?)
            }
            "--noise-w" => noise_w = Some(val()?.parse::<f32>().context("--noise-w")?),
            "--speaker" => speaker = Some(val()?.parse::<u32>().context("--speaker")?),
            "--print-ids" => print_ids = true,
            "--repeat" => repeat = val()?.parse::<usize>().context("--repeat")?.max(1),
            other => bail!("unknown argument {other:?} (see the example's doc comment)"),
        }
    }
    let voice_dir = voice.context("--voice DIR is required")?;
    let out = out.context("--out FILE is required")?;
    let dev = match device.as_str() {
        "cpu" => candle_core::Device::Cpu,
        "cuda" => candle_core::Device::new_cuda(0).context("--device cuda")?,
        other => bail!("--device must be cpu or cuda, not {other:?}"),
    };
    let voice = Voice::load(&voice_dir, &dev)?;
    let mut p = SynthesisParams::from_voice(voice.info());
    p.noise_scale = noise_scale.unwrap_or(p.noise_scale);
    p.length_scale = length_scale.unwrap_or(p.length_scale);
    p.noise_w = noise_w.unwrap_or(p.noise_w);
    p.speaker = speaker;

    let sentences: Vec<Vec<i64>> = match (&ids, &text) {
        (Some(ids), _) => vec![ids
            .split_whitespace()
            .map(|s| s.parse::<i64>().context("--ids takes integers"))
            .collect::<anyhow::Result<_>>()?],
        (None, Some(text)) => {
            let ph = voice.phonemizer();
            ph.phonemize(text)?
                .iter()
                .map(|s| ph.to_ids(s).ids)
                .collect()
        }
        (None, None) => bail!("--text or --ids is required"),
    };
    if print_ids {
        for ids in &sentences {
            let line: Vec<String> = ids.iter().map(i64::to_string).collect();
            println!("{}", line.join(" "));
        }
    }
    let mut samples = Vec::new();
    let mut times = Vec::with_capacity(repeat);
    for run in 1..=repeat {
        let started = Instant::now();
        samples.clear();
        for ids in &sentences {
            samples.extend(voice.synthesize_ids(ids, &p)?);
        }
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if repeat > 1 {
            println!("run={run} synth_ms={ms:.1}");
        }
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    let ms = times[times.len() / 2];
    let rate = voice.info().sample_rate;
    std::fs::write(&out, models::audio::wav::wav_i16(&samples, rate)?)
        .with_context(|| format!("writing {}", out.display()))?;
    let audio_s = samples.len() as f64 / f64::from(rate);
    println!(
        "samples={} sample_rate={rate} synth_ms={ms:.1} rtf={:.4}",
        samples.len(),
        ms / 1e3 / audio_s.max(1e-9)
    );
    Ok(())
}
