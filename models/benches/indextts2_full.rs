//! IndexTTS2 at full size on the CPU: a random checkpoint of the official
//! configuration (about 1.7 billion parameters, written once from the
//! generator), loaded by the official-file loaders, each stage timed.
//!
//! ```text
//! cargo bench -p models --bench indextts2_full -- [--dir /tmp/indextts2-full] [--tokens 40]
//!     [--reference-seconds 5] [--threads N]
//! ```
//!
//! Reports: write and load times; the reference clip's preparation; the GPT
//! per mel code (greedy, and with the reference's 3 sampled beams); s2mel per
//! flow-matching step (25 steps, CFG); BigVGAN per second of audio; the real-time
//! factor of the whole; peak resident memory. Random weights never emit the
//! stop code on purpose, so decoding runs to `--tokens`. Not run in CI (6.5 GB
//! of files and about 8 GB of memory).

mod support;

use support::peak_rss_mib;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::Device;
use models::indextts2::checkpoint::{AuxModels, Checkpoint};
use models::indextts2::gpt::Sampling;
use models::indextts2::pipeline::{IndexTts2, Options, SAMPLE_RATE};
use models::indextts2::random_checkpoint::{self, Spec};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BPE: &[u8] = include_bytes!("../tests/fixtures/indextts2/bpe.model");

fn main() -> anyhow::Result<()> {
    let mut dir = PathBuf::from("/tmp/indextts2-full");
    let mut tokens = 40usize;
    let mut ref_seconds = 5.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--dir" => dir = PathBuf::from(val()?),
            "--tokens" => tokens = val()?.parse().context("--tokens")?,
            "--reference-seconds" => ref_seconds = val()?.parse().context("--reference-seconds")?,
            "--bench" => {}
            other => bail!("unknown argument {other:?}"),
        }
    }
    let hub = dir.join("hub");
    if !dir.join("config.yaml").is_file() {
        let t = Instant::now();
        let w = random_checkpoint::write(&Spec::full_size(20_250_917, BPE.to_vec()), &dir, &hub)?;
        println!(
            "wrote {} tensors, {:.2} GB in {:.1} s",
            w.tensors,
            w.bytes as f64 / 1e9,
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let ckpt = Checkpoint::open(&dir)?;
    let aux = AuxModels::locate(&hub, &ckpt.config.vocoder)?;
    let tts = IndexTts2::load(&ckpt, &aux, &Device::Cpu)?;
    println!(
        "load: {:.1} s, resident peak {:.0} MiB",
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );

    // A voiced-like reference: a few harmonics with a slow vibrato.
    let n = (ref_seconds * f64::from(SAMPLE_RATE)) as usize;
    let clip: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(SAMPLE_RATE);
            let f0 = 140.0 + 10.0 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            (1..=5)
                .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() * 0.2 / h as f64)
                .sum::<f64>() as f32
        })
        .collect();
    let t = Instant::now();
    let speaker = tts.speaker(&clip, SAMPLE_RATE)?;
    let prep = t.elapsed().as_secs_f64();
    println!(
        "reference clip {ref_seconds} s: prepared in {:.2} s ({} mel frames)",
        prep,
        speaker.ref_mel.dim(2)?
    );

    let text: Vec<u32> = (20..40).collect();
    let greedy = Options {
        sampling: Sampling {
            max_mel_tokens: tokens,
            ..Sampling::greedy()
        },
        ..Options::default()
    };
    let t = Instant::now();
    let out = tts.synthesize(&speaker, std::slice::from_ref(&text), &greedy, &mut |_| {
        ControlFlow::Continue(())
    })?;
    let total = t.elapsed().as_secs_f64();
    let audio = out.samples.len() as f64 / f64::from(SAMPLE_RATE);
    let tm = out.timings;
    let steps = greedy.cfm.steps as f64;
    println!(
        "greedy, {} codes → {:.2} s of audio in {:.2} s (RTF {:.2})",
        out.mel_tokens,
        audio,
        total,
        total / audio
    );
    println!(
        "  gpt: {:.1} ms per code (decoding and the latent pass: {:.0} ms)",
        tm.gpt_ms / out.mel_tokens.max(1) as f64,
        tm.gpt_ms
    );
    println!(
        "  s2mel: {:.0} ms per flow-matching step ({} frames with the prompt, CFG batch of 2; {:.0} ms in all)",
        tm.s2mel_ms / steps,
        speaker.ref_mel.dim(2)? + models::indextts2::length_regulator::target_frames(out.mel_tokens),
        tm.s2mel_ms
    );
    println!(
        "  vocoder: {:.0} ms per second of audio ({:.0} ms)",
        tm.vocoder_ms / audio,
        tm.vocoder_ms
    );
    let beams = Options {
        sampling: Sampling {
            max_mel_tokens: tokens,
            ..Sampling::default()
        },
        ..Options::default()
    };
    let t = Instant::now();
    let out = tts.synthesize(
        &speaker,
        &[text],
        &beams,
        &mut |_| ControlFlow::Continue(()),
    )?;
    println!(
        "3 sampled beams (the reference's default), {} codes: gpt {:.1} ms per code; whole {:.2} s",
        out.mel_tokens,
        out.timings.gpt_ms / out.mel_tokens.max(1) as f64,
        t.elapsed().as_secs_f64()
    );
    println!("peak resident memory: {:.0} MiB", peak_rss_mib());
    Ok(())
}
