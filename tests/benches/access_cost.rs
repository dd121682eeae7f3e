//! What API keys and per-key limits cost a request, side by side in one run:
//! a node that requires a key (its key with every limit set: requests per
//! second, audio seconds per minute, concurrency) against a node without
//! keys, both started here on loopback.
//!
//! ```text
//! cargo bench -p e2e --bench access_cost -- [--cheap 2000] [--synth 30]
//! ```
//!
//! The cost is measured on a cheap route (`GET /api/voices`, answered in
//! well under a millisecond), where it is not lost in the noise: the median
//! time with a key minus the median without, in rounds that alternate the
//! two nodes. It is then set against the median of a one-sentence synthesis
//! (`POST /api/tts`), measured on both nodes the same way. Prints the
//! figures and the ratio; the goal is under 2 %.

use std::time::Instant;

use e2e::node::{self, http, Node};

const KEY: &str = "bench-7c9e1a3b5d7f9a1c3e5b7d9f";
const SENTENCE: &str = "Hello there, how can I help you today?";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds per request of `f`, `n` times, in rounds of `round` that
/// alternate the two nodes (`f(true)`: with the key).
fn alternate(n: usize, round: usize, mut f: impl FnMut(bool)) -> (Vec<f64>, Vec<f64>) {
    let (mut with, mut without) = (Vec::with_capacity(n), Vec::with_capacity(n));
    while with.len() < n {
        for keyed in [true, false] {
            for _ in 0..round {
                let t = Instant::now();
                f(keyed);
                let s = t.elapsed().as_secs_f64();
                if keyed {
                    with.push(s);
                } else {
                    without.push(s);
                }
            }
        }
    }
    (with, without)
}

fn main() {
    let mut cheap = 2000usize;
    let mut synth = 30usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cheap" => cheap = args.next().and_then(|v| v.parse().ok()).unwrap_or(cheap),
            "--synth" => synth = args.next().and_then(|v| v.parse().ok()).unwrap_or(synth),
            _ => {}
        }
    }
    let keys = node::root().join("target/e2e-run/access-bench-keys.toml");
    std::fs::create_dir_all(keys.parent().expect("parent")).expect("dir");
    std::fs::write(
        &keys,
        format!(
            "[[keys]]\nname = \"bench\"\nrole = \"user\"\nhash = \"{}\"\nrequests_per_second = 100000\nburst = 100000\naudio_seconds_per_minute = 10000000\nmax_concurrent = 64\n",
            node::hash_api_key(KEY)
        ),
    )
    .expect("keys file");
    let keyed = Node::start(
        "access-bench-keyed",
        &[("TTS_API_KEYS_FILE", keys.display().to_string())],
    );
    let open = Node::start("access-bench-open", &[]);
    let auth = format!("Bearer {KEY}");
    let call = |with_key: bool, method: &str, path: &str, body: &[u8]| {
        let (port, headers): (u16, Vec<(&str, &str)>) = if with_key {
            (
                keyed.port,
                vec![
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/json"),
                ],
            )
        } else {
            (open.port, vec![("Content-Type", "application/json")])
        };
        let r = http(port, method, path, &headers, body);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    };
    let body = serde_json::json!({"text": SENTENCE, "noise_scale": 0, "noise_w": 0}).to_string();
    // Warm-up: both nodes, both routes.
    for k in [true, false] {
        for _ in 0..20 {
            call(k, "GET", "/api/voices", b"");
        }
        call(k, "POST", "/api/tts", body.as_bytes());
    }

    let (cw, co) = alternate(cheap, 100, |k| call(k, "GET", "/api/voices", b""));
    let (sw, so) = alternate(synth, 5, |k| call(k, "POST", "/api/tts", body.as_bytes()));
    let (cw, co, sw, so) = (median(cw), median(co), median(sw), median(so));
    let cost = cw - co;
    println!(
        "access_cost: a node with API keys and every per-key limit against one without, one run"
    );
    println!(
        "  GET /api/voices   median {:8.1} µs with a key, {:8.1} µs without ({cheap} each): the key and limits cost {:+.1} µs",
        cw * 1e6,
        co * 1e6,
        cost * 1e6
    );
    println!(
        "  POST /api/tts     median {:8.2} ms with a key, {:8.2} ms without ({synth} each, one sentence): ratio {:.3}",
        sw * 1e3,
        so * 1e3,
        sw / so
    );
    let share = cost.max(0.0) / so * 100.0;
    println!(
        "  the cost per request is {share:.3} % of a one-sentence synthesis (goal: under 2 %): {}",
        if share < 2.0 { "met" } else { "NOT met" }
    );
}
