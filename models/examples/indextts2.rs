//! Speaks text with IndexTTS2 in the voice of a reference clip and writes a
//! 16-bit WAV at 22,050 Hz.
//!
//! ```text
//! cargo run --release -p models --example indextts2 -- --checkpoints DIR --reference REF.wav \
//!     --text T --out F [--emotion v1,…,v8 | --emotion-audio E.wav] [--emo-alpha A] [--seed N] \
//!     [--top-k K] [--top-p P] [--temperature T] [--num-beams B] [--repetition-penalty R] \
//!     [--max-mel-tokens N] [--max-text-tokens-per-segment N] [--fm-noise FILE.npy] \
//!     [--diffusion-steps N] [--inference-cfg-rate R] \
//!     [--codes-out FILE.json] [--hub DIR] [--device cpu|cuda] [--tokens 1,2,3]
//! ```
//!
//! The auxiliary models are read from the Hugging Face cache (`--hub`, else
//! `$HF_HUB_CACHE`, `$HF_HOME/hub` or `~/.cache/huggingface/hub`).
//! `--emotion` takes the eight weights (happy, angry, sad, afraid, disgusted,
//! melancholic, surprised, calm) as `infer` does (the web UI's bias and cap
//! are not applied). `--fm-noise` replaces the flow-matching noise of a
//! single segment with a float32 array `[1, 80, T]`; `--codes-out` writes
//! the mel codes of every segment; `--tokens` skips the text front end.
//! Sampling defaults are the reference's (top_k 30, top_p 0.8, temperature
//! 0.8, 3 beams, repetition penalty 10, 1500 codes); `--top-k 1 --num-beams
//! 1` decodes deterministically. Flow matching takes the reference's 25
//! steps and guidance rate 0.7 unless `--diffusion-steps` or
//! `--inference-cfg-rate` says otherwise.
//!
//! The stage line on stderr gives the front end (the speaker's and the
//! emotion clip's conditioning) apart from the synthesis stages.
//!
//! Last line: `samples=N sample_rate=22050 mel_tokens=M synth_ms=T rtf=X`.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::{Device, Tensor};
use models::indextts2::checkpoint::{AuxModels, Checkpoint};
use models::indextts2::flow_matching::CfmParams;
use models::indextts2::gpt::Sampling;
use models::indextts2::pipeline::{Emotion, IndexTts2, Options, SAMPLE_RATE};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn parse_list<T: std::str::FromStr>(s: &str, what: &str) -> anyhow::Result<Vec<T>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<T>()
                .map_err(|_| anyhow::anyhow!("{what}: {x:?} is not a number"))
        })
        .collect()
}

fn read_wav(path: &PathBuf, what: &str) -> anyhow::Result<models::audio::wav::Decoded> {
    let bytes = std::fs::read(path).with_context(|| format!("{what} {}", path.display()))?;
    models::audio::wav::read_wav_mono(&bytes, 600.0)
        .with_context(|| format!("{what} {}", path.display()))
}

fn main() -> anyhow::Result<()> {
    let (mut checkpoints, mut reference, mut text, mut out) = (None, None, None, None);
    let (mut emotion, mut emotion_audio, mut emo_alpha) = (None, None, 1.0f64);
    let (mut fm_noise, mut codes_out, mut hub, mut tokens) = (None, None, None, None);
    let mut device = "cpu".to_string();
    let mut seed = 0u64;
    let mut max_segment = 120usize;
    let mut sampling = Sampling::default();
    let mut cfm = CfmParams::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--checkpoints" => checkpoints = Some(PathBuf::from(val()?)),
            "--reference" => reference = Some(PathBuf::from(val()?)),
            "--text" => text = Some(val()?),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--emotion" => emotion = Some(parse_list::<f64>(&val()?, "--emotion")?),
            "--emotion-audio" => emotion_audio = Some(PathBuf::from(val()?)),
            "--emo-alpha" => emo_alpha = val()?.parse().context("--emo-alpha")?,
            "--seed" => seed = val()?.parse().context("--seed")?,
            "--top-k" => sampling.top_k = val()?.parse().context("--top-k")?,
            "--top-p" => sampling.top_p = val()?.parse().context("--top-p")?,
            "--temperature" => sampling.temperature = val()?.parse().context("--temperature")?,
            "--num-beams" => sampling.num_beams = val()?.parse().context("--num-beams")?,
            "--repetition-penalty" => {
                sampling.repetition_penalty = val()?.parse().context("--repetition-penalty")?
            }
            "--max-mel-tokens" => {
                sampling.max_mel_tokens = val()?.parse().context("--max-mel-tokens")?
            }
            "--max-text-tokens-per-segment" => {
                max_segment = val()?.parse().context("--max-text-tokens-per-segment")?
            }
            "--diffusion-steps" => cfm.steps = val()?.parse().context("--diffusion-steps")?,
            "--inference-cfg-rate" => {
                cfm.cfg_rate = val()?.parse().context("--inference-cfg-rate")?
            }
            "--fm-noise" => fm_noise = Some(PathBuf::from(val()?)),
            "--codes-out" => codes_out = Some(PathBuf::from(val()?)),
            "--hub" => hub = Some(PathBuf::from(val()?)),
            "--device" => device = val()?,
            "--tokens" => tokens = Some(parse_list::<u32>(&val()?, "--tokens")?),
            other => bail!("unknown argument {other:?} (see the example's doc comment)"),
        }
    }
    let checkpoints = checkpoints.context("--checkpoints DIR is required")?;
    let reference = reference.context("--reference REF.wav is required")?;
    let out = out.context("--out FILE is required")?;
    if text.is_none() && tokens.is_none() {
        bail!("--text T (or --tokens ids) is required");
    }
    if sampling.num_beams == 0
        || sampling.temperature <= 0.0
        || !(0.0..=1.0).contains(&sampling.top_p)
    {
        bail!("--num-beams must be at least 1, --temperature above 0, --top-p within 0–1");
    }
    if cfm.steps == 0 || !(cfm.cfg_rate.is_finite() && cfm.cfg_rate >= 0.0) {
        bail!("--diffusion-steps must be at least 1, --inference-cfg-rate 0 or more");
    }
    let dev = match device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0).context("--device cuda")?,
        other => bail!("--device must be cpu or cuda, not {other:?}"),
    };

    let t = Instant::now();
    let ckpt = Checkpoint::open(&checkpoints)?;
    let hub = hub.unwrap_or_else(AuxModels::default_hub_dir);
    let aux = AuxModels::locate(&hub, &ckpt.config.vocoder)?;
    let tts = IndexTts2::load(&ckpt, &aux, &dev)?;
    let segments = match tokens {
        Some(ids) => vec![ids],
        None => tts.text_segments(text.as_deref().unwrap_or_default(), max_segment)?,
    };
    eprintln!(
        "loaded in {:.1} s; {} segment(s) of {:?} tokens",
        t.elapsed().as_secs_f64(),
        segments.len(),
        segments.iter().map(Vec::len).collect::<Vec<_>>()
    );

    let t = Instant::now();
    let clip = read_wav(&reference, "--reference")?;
    let speaker = tts.speaker(&clip.samples, clip.sample_rate)?;
    let emotion = match (emotion, emotion_audio) {
        (Some(_), Some(_)) => bail!("give --emotion or --emotion-audio, not both"),
        (Some(v), None) => {
            let v: [f64; 8] = v.try_into().map_err(|v: Vec<f64>| {
                anyhow::anyhow!("--emotion needs 8 values, got {}", v.len())
            })?;
            Emotion::Vector(v)
        }
        (None, Some(path)) => {
            let e = read_wav(&path, "--emotion-audio")?;
            Emotion::Clip(tts.emotion_clip(&e.samples, e.sample_rate)?)
        }
        (None, None) => Emotion::SameAsSpeaker,
    };
    let front_ms = t.elapsed().as_secs_f64() * 1000.0;
    let noise = match fm_noise {
        Some(path) => {
            if segments.len() != 1 {
                bail!(
                    "--fm-noise applies to one segment; the text makes {}",
                    segments.len()
                );
            }
            let n = Tensor::read_npy(&path)
                .with_context(|| format!("--fm-noise {}", path.display()))?;
            Some(vec![n])
        }
        None => None,
    };
    let opts = Options {
        emotion,
        emo_alpha,
        sampling,
        cfm,
        seed,
        noise,
        ..Options::default()
    };
    let result = tts.synthesize(&speaker, &segments, &opts, &mut |_| {
        ControlFlow::Continue(())
    })?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    std::fs::write(
        &out,
        models::audio::wav::wav_i16_gain(&result.samples, SAMPLE_RATE, 1.0)?,
    )
    .with_context(|| format!("--out {}", out.display()))?;
    if let Some(path) = codes_out {
        let codes: Vec<&Vec<u32>> = result.segments.iter().map(|s| &s.codes).collect();
        std::fs::write(&path, serde_json::to_string(&codes)?)
            .with_context(|| format!("--codes-out {}", path.display()))?;
    }
    let t = &result.timings;
    eprintln!(
        "reference {:.1} s; front end {front_ms:.0} ms, gpt {:.0} ms, s2mel {:.0} ms ({} steps, cfg {}), vocoder {:.0} ms; stopped: {:?}",
        speaker.seconds,
        t.gpt_ms,
        t.s2mel_ms,
        opts.cfm.steps,
        opts.cfm.cfg_rate,
        t.vocoder_ms,
        result
            .segments
            .iter()
            .map(|s| s.stopped)
            .collect::<Vec<_>>()
    );
    let seconds = result.samples.len() as f64 / f64::from(SAMPLE_RATE);
    println!(
        "samples={} sample_rate={SAMPLE_RATE} mel_tokens={} synth_ms={ms:.0} rtf={:.3}",
        result.samples.len(),
        result.mel_tokens,
        if seconds > 0.0 {
            ms / 1000.0 / seconds
        } else {
            0.0
        }
    );
    Ok(())
}
