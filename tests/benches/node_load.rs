//! Load benchmark of a node: one-sentence texts, a fixed number of concurrent
//! clients, requests/s and latency percentiles.
//!
//! ```text
//! cargo bench -p e2e --bench node_load -- [--url http://127.0.0.1:7860] [--requests 40] [--concurrency 2]
//! ```
//!
//! Without `--url` it starts a node with scripts/start.sh (release build and
//! the default voice needed) and stops it afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::node::{bench_node, post_json};

const TEXTS: [&str; 6] = [
    "Hello there, how can I help you today?",
    "Your order has been shipped and will arrive on Tuesday.",
    "The meeting starts in five minutes.",
    "Please hold while I transfer your call.",
    "Thank you for calling, have a nice day.",
    "The temperature outside is twelve degrees.",
];

fn main() {
    let mut url = None;
    let mut requests = 40usize;
    let mut concurrency = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--url" => url = args.next(),
            "--requests" => requests = args.next().and_then(|v| v.parse().ok()).unwrap_or(requests),
            "--concurrency" => {
                concurrency = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(concurrency)
            }
            _ => {}
        }
    }
    let (_node, port) = bench_node(url, "load-bench", &[("TTS_QUEUE_SIZE", "64".to_string())]);
    // Warm-up.
    let _ = post_json(
        port,
        "/api/tts",
        &serde_json::json!({"text": TEXTS[0]}),
        &[],
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = Arc::clone(&next);
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut audio = 0.0;
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let t = Instant::now();
                    let r = post_json(
                        port,
                        "/api/tts",
                        &serde_json::json!({"text": TEXTS[i % TEXTS.len()]}),
                        &[],
                    );
                    lat.push(t.elapsed());
                    if r.status == 200 {
                        audio += r
                            .header("x-audio-seconds")
                            .and_then(|v| v.parse::<f64>().ok())
                            .unwrap_or(0.0);
                    } else {
                        failed += 1;
                    }
                }
                (lat, audio, failed)
            })
        })
        .collect();
    let mut lat: Vec<Duration> = Vec::new();
    let mut audio = 0.0;
    let mut failed = 0;
    for w in workers {
        if let Ok((l, a, f)) = w.join() {
            lat.extend(l);
            audio += a;
            failed += f;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{requests} requests, {concurrency} concurrent, {} cores: {:.2} requests/s, p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms, {failed} failed, {:.1} s of audio ({:.1}x real time overall)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        requests as f64 / wall,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.95).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        audio,
        audio / wall
    );
}
