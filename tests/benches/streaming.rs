//! Streaming benchmark of a node: for texts of 1, 3 and 10 sentences and one
//! 400-character sentence, the time to the first audio byte of a streamed
//! response, the total time streamed, and the total time of the same text
//! whole, side by side in one process, with their ratios (median of
//! `--repeat` runs, noise off so every run synthesises the same audio).
//!
//! ```text
//! cargo bench -p e2e --bench streaming -- [--url http://127.0.0.1:7860] [--repeat 5]
//! ```
//!
//! Without `--url` it starts a node with scripts/start.sh (release build and
//! the default voice needed) and stops it afterwards.

use std::time::Duration;

use e2e::node::{bench_node, post_streamed, TEN_SENTENCES};
use serde_json::json;

const TEXTS: [(&str, &str); 4] = [
    (
        "1 sentence",
        "The meeting starts in five minutes, so please take your seats.",
    ),
    (
        "3 sentences",
        "The meeting starts in five minutes. Please take your seats and silence your phones. \
         We will begin with a short summary of last week's results.",
    ),
    ("10 sentences", TEN_SENTENCES),
    (
        "1 sentence, 400 chars",
        "When the operators of a cluster of inference nodes want to know which node fails, since \
         when, and why, they search the structured events that every node ships to Graylog, where \
         each request carries its node id, its request id, how long it took, how many characters \
         it had, which voice spoke it, how long the audio is, and how much memory the graphics \
         card was using at that moment.",
    ),
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut url = None;
    let mut repeat = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--url" => url = args.next(),
            "--repeat" => repeat = args.next().and_then(|v| v.parse().ok()).unwrap_or(repeat),
            _ => {}
        }
    }
    let (_node, port) = bench_node(url, "streaming-bench", &[]);
    let request = |text: &str, stream: bool| json!({"text": text, "stream": stream, "format": "pcm", "noise_scale": 0, "noise_w": 0});
    // Warm-up.
    let _ = post_streamed(port, "/api/tts", &request(TEXTS[0].1, true), None);
    println!(
        "{:<22} {:>8} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "text", "audio_s", "first_ms", "stream_ms", "whole_ms", "first/all", "stream/whole"
    );
    for (name, text) in TEXTS {
        let (mut first, mut streamed, mut whole) = (Vec::new(), Vec::new(), Vec::new());
        let mut audio_s = 0.0;
        for _ in 0..repeat {
            let s = post_streamed(port, "/api/tts", &request(text, true), None);
            assert!(s.status == 200 && s.complete, "streamed request failed");
            first.push(s.arrivals.first().map(|a| a.0).unwrap_or_default());
            streamed.push(s.arrivals.last().map(|a| a.0).unwrap_or_default());
            audio_s = s.body.len() as f64 / 2.0 / 22050.0;
            let w = post_streamed(port, "/api/tts", &request(text, false), None);
            assert_eq!(w.status, 200, "whole request failed");
            whole.push(w.arrivals.last().map(|a| a.0).unwrap_or_default());
        }
        let (f, s, w) = (median(first), median(streamed), median(whole));
        println!(
            "{:<22} {:>8.2} {:>12.0} {:>12.0} {:>12.0} {:>10.3} {:>10.3}",
            name,
            audio_s,
            f.as_secs_f64() * 1e3,
            s.as_secs_f64() * 1e3,
            w.as_secs_f64() * 1e3,
            f.as_secs_f64() / w.as_secs_f64(),
            s.as_secs_f64() / w.as_secs_f64(),
        );
    }
}
