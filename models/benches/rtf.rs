//! Side-by-side speed of the candle voice and onnxruntime on the same CPU,
//! the same voice file and the same phoneme ids (noise on, default scales),
//! per group of texts: the bench's one-sentence texts, a second, different
//! set of one-sentence texts, and long sentences (10 s of audio or more).
//! Each group is timed `--repeats` times on both sides; the medians give the
//! real-time factor (compute seconds per second of audio) and the ratio.
//!
//! ```text
//! scripts/install-deps.sh && scripts/fetch-models.sh
//! cargo bench -p models --bench rtf [-- --threads 2 --repeats 5]
//! ```
//!
//! onnxruntime runs in the project's Python venv (or MODELS_PYTHON) with as
//! many intra-op threads as candle has cores (`--threads` sets both; candle's
//! through rayon's global pool).

mod support;

use support::{median, peak_rss_mib, root};

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use models::{SynthesisParams, Voice};

// The allocator tts-node and the synth example use (see tts-node/Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bench's sentences since it was written (one sentence each).
const BENCH: [&str; 8] = [
    "Hello there.",
    "The quick brown fox jumps over the lazy dog.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "Ask her to bring these things with her from the store: six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
    "Graylog shows which node fails, since when, and why.",
    "The meeting starts at 10:30 on Monday, March 3rd, 2025!",
    "A journey of a thousand miles begins with a single step.",
    "Thank you for listening, and have a wonderful evening.",
];

/// A second set of one-sentence texts, none shared with the first.
const SECOND: [&str; 12] = [
    "Please restart the inference node before noon.",
    "Your package was delivered to the front desk.",
    "Rain is expected later this afternoon, so bring an umbrella.",
    "Which service failed first, and when did it start?",
    "She sells sea shells by the sea shore.",
    "The train to Boston leaves from platform nine.",
    "All systems are running normally.",
    "Could you read the last message again, slowly?",
    "Twelve engineers reviewed the change on Friday.",
    "Latency rose sharply after the deployment at midnight.",
    "Good morning, and welcome back.",
    "The library closes at six on weekdays and at four on Saturdays.",
];

/// Long sentences: each gives 10 s of audio or more.
const LONG: [&str; 3] = [
    "When the storm finally passed over the valley, the farmers walked out into their fields to count the damage, the children ran down to the river to see how high the water had climbed, and the old men on the porch of the general store argued for hours about whether anyone had ever seen a summer quite like this one.",
    "Platform engineers who run dozens of inference nodes need to know within seconds which node is failing, since when it has been failing, and why, so every request records its node, its request identifier, its duration, the number of characters it spoke, the model and the voice it used, and the memory the device had left.",
    "If you are reading this sentence aloud to a room full of people, take a breath after every comma, keep your voice steady through the long middle part where nothing much happens, and then slow down a little at the very end, because that is where the listeners decide whether they understood you.",
];

struct Group {
    name: &'static str,
    ids: Vec<Vec<i64>>,
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
    let dir = root().join("cache_hub/piper/en_US-joe-medium");
    let voice = Voice::load(&dir, &candle_core::Device::Cpu)?;
    let ph = voice.phonemizer();
    let ids_of = |texts: &[&str]| -> Vec<Vec<i64>> {
        texts
            .iter()
            .flat_map(|t| ph.phonemize(t).unwrap_or_default())
            .map(|s| ph.to_ids(&s).ids)
            .collect()
    };
    let groups = [
        Group {
            name: "bench sentences (short)",
            ids: ids_of(&BENCH),
        },
        Group {
            name: "second set (short)",
            ids: ids_of(&SECOND),
        },
        Group {
            name: "long sentences (>= 10 s)",
            ids: ids_of(&LONG),
        },
    ];
    let params = SynthesisParams::from_voice(voice.info());
    let rate = f64::from(voice.info().sample_rate);

    // candle: a warm-up, then each group `repeats` times, interleaved.
    voice.synthesize_ids(&groups[0].ids[0], &params)?;
    let mut candle: Vec<Vec<(f64, usize)>> = vec![Vec::new(); groups.len()];
    for _ in 0..repeats {
        for (g, group) in groups.iter().enumerate() {
            let t = Instant::now();
            let mut samples = 0usize;
            for s in &group.ids {
                samples += voice.synthesize_ids(s, &params)?.len();
            }
            candle[g].push((t.elapsed().as_secs_f64(), samples));
        }
    }
    let candle_rss = peak_rss_mib();

    // onnxruntime: the same order, one line per sentence, timed per sentence.
    let py = std::env::var("MODELS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/python3"));
    let line = |s: &Vec<i64>| s.iter().map(i64::to_string).collect::<Vec<_>>().join(" ") + "\n";
    let mut stdin = line(&groups[0].ids[0]);
    for _ in 0..repeats {
        for group in &groups {
            stdin.extend(group.ids.iter().map(line));
        }
    }
    let mut child = Command::new(&py)
        .arg(root().join("models/tests/onnx_reference.py"))
        .args([
            "time",
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
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(out).lines().skip(1); // the warm-up
    let mut ort: Vec<Vec<(f64, usize)>> = vec![Vec::new(); groups.len()];
    for _ in 0..repeats {
        for (g, group) in groups.iter().enumerate() {
            let (mut secs, mut samples) = (0.0, 0usize);
            for _ in &group.ids {
                let l = lines.next().ok_or_else(|| {
                    anyhow::anyhow!("onnxruntime stopped early ({})", py.display())
                })??;
                let mut f = l.split_whitespace();
                samples += f.next().and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
                secs += f.next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            }
            ort[g].push((secs, samples));
        }
    }
    anyhow::ensure!(
        child.wait()?.success(),
        "onnxruntime run failed ({})",
        py.display()
    );

    println!(
        "{threads} threads each, noise on (default scales), median of {repeats} runs per group"
    );
    println!(
        "{:<26} {:>9} {:>9} {:>12} {:>12} {:>7}",
        "group", "sentences", "audio s", "candle RTF", "onnx RTF", "ratio"
    );
    let rtf = |runs: &[(f64, usize)]| {
        median(
            runs.iter()
                .map(|(s, n)| s / (*n as f64 / rate).max(1e-9))
                .collect(),
        )
    };
    let mut worst: f64 = 0.0;
    for (g, group) in groups.iter().enumerate() {
        let audio = candle[g].first().map_or(0.0, |(_, n)| *n as f64 / rate);
        let (c, o) = (rtf(&candle[g]), rtf(&ort[g]));
        worst = worst.max(c / o);
        println!(
            "{:<26} {:>9} {:>9.1} {:>12.4} {:>12.4} {:>7.2}",
            group.name,
            group.ids.len(),
            audio,
            c,
            o,
            c / o
        );
    }
    println!("ratio candle/onnxruntime compute time, worst group: {worst:.2}");
    println!("peak RSS of the candle process: {candle_rss:.0} MiB");
    Ok(())
}
