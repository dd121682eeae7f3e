//! Emits N "Audio generation completed" events to a GELF endpoint and prints
//! the layer's accounting. Used by the benchmarks and to check an installation:
//!
//! ```text
//! cargo run --release -p gelf-tracing --example emit -- --endpoint tcp://127.0.0.1:12201 --count 100000 [--rate 5000]
//! ```
//!
//! Last line: `emitted=N sent=S dropped=D caller_ns_per_event=X`.

use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;

struct Args {
    endpoint: String,
    count: u64,
    rate: Option<f64>,
}

fn parse_args() -> Result<Args, String> {
    let mut endpoint = None;
    let mut count = None;
    let mut rate = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--endpoint" => endpoint = Some(value("--endpoint")?),
            "--count" => {
                count = Some(
                    value("--count")?
                        .parse()
                        .map_err(|e| format!("--count: {e}"))?,
                )
            }
            "--rate" => {
                let r: f64 = value("--rate")?
                    .parse()
                    .map_err(|e| format!("--rate: {e}"))?;
                if r <= 0.0 || !r.is_finite() {
                    return Err("--rate must be a positive number of events per second".into());
                }
                rate = Some(r);
            }
            "-h" | "--help" => {
                return Err(
                    "usage: emit --endpoint tcp://HOST:PORT --count N [--rate PER_SEC]".into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        endpoint: endpoint.ok_or("--endpoint is required")?,
        count: count.ok_or("--count is required")?,
        rate,
    })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("emit: {e}");
            std::process::exit(2);
        }
    };
    let (gelf, guard) = match gelf_tracing::GelfLayer::builder()
        .endpoint(&args.endpoint)
        .and_then(|b| b.static_field("node_id", "emit-example").build())
    {
        Ok(x) => x,
        Err(e) => {
            eprintln!("emit: {e}");
            std::process::exit(2);
        }
    };
    let handle = guard.handle();
    let subscriber = tracing_subscriber::registry().with(gelf);
    let mut caller = Duration::ZERO;
    tracing::subscriber::with_default(subscriber, || {
        let start = Instant::now();
        for i in 0..args.count {
            if let Some(rate) = args.rate {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let request_id = format!("req-{i:08}");
            let span = tracing::info_span!("synthesize", request_id = %request_id);
            let _e = span.enter();
            let t = Instant::now();
            tracing::info!(
                node_id = "tts-node-01",
                request_id = %request_id,
                duration_ms = 412u64,
                char_count = 96u64,
                model_version = "piper-vits-medium/en_US-joe-medium",
                emotion = "neutral",
                gpu_memory_used_gb = 3.25f64,
                "Audio generation completed"
            );
            caller += t.elapsed();
        }
    });
    drop(guard);
    let s = handle.stats();
    println!(
        "emitted={} sent={} dropped={} caller_ns_per_event={:.0}",
        s.emitted,
        s.sent,
        s.dropped,
        caller.as_nanos() as f64 / args.count.max(1) as f64
    );
}
