//! Side-by-side benchmark: gelf-tracing against tracing-gelf 0.9 (and two
//! baselines) on the same event, to the same kind of loopback TCP receiver.
//!
//! ```text
//! cargo bench -p gelf-tracing --bench throughput -- [--events 200000]
//! ```
//!
//! For each contender it reports the caller's cost per event (time spent in
//! the logging call on the application thread), the end-to-end delivered rate
//! (events received by the receiver per second, from the first event emitted
//! to the last one received) and how many events never arrived. The last lines
//! give the ratios of gelf-tracing to tracing-gelf.

use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;

/// A receiver that only counts NUL-terminated frames.
struct Counter {
    port: u16,
    frames: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Counter {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let frames = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (Arc::clone(&frames), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let (f, s) = (Arc::clone(&f), Arc::clone(&s));
                        std::thread::spawn(move || {
                            let _ = conn.set_nonblocking(false);
                            let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
                            let mut buf = vec![0u8; 1 << 20];
                            while !s.load(Ordering::Relaxed) {
                                match conn.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => {
                                        let c = buf[..n].iter().filter(|&&b| b == 0).count();
                                        f.fetch_add(c as u64, Ordering::Relaxed);
                                    }
                                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                                    Err(_) => return,
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Self { port, frames, stop }
    }

    /// Waits until `n` frames arrived or none arrived for a second; returns
    /// the count and the instant the last one was seen.
    fn wait(&self, n: u64) -> (u64, Instant) {
        let mut last = self.frames.load(Ordering::Relaxed);
        let mut last_change = Instant::now();
        loop {
            let c = self.frames.load(Ordering::Relaxed);
            if c != last {
                last = c;
                last_change = Instant::now();
            }
            if c >= n || last_change.elapsed() > Duration::from_secs(1) {
                return (c, last_change);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The event every contender logs: the node's completion event inside its
/// span, one span per event as in the node. Returns the time spent in the
/// event call alone (what `on_event` costs the caller) and the whole loop
/// (span creation, entry and exit included).
fn emit_events(n: u64) -> (Duration, Duration) {
    let ids: Vec<String> = (0..1024).map(|i| format!("req-{i:08}")).collect();
    let mut in_event = Duration::ZERO;
    let start = Instant::now();
    for i in 0..n {
        let request_id = &ids[(i % 1024) as usize];
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
        in_event += t.elapsed();
    }
    (in_event, start.elapsed())
}

struct Outcome {
    name: String,
    caller_ns: f64,
    loop_ns: f64,
    delivered_per_s: f64,
    lost: u64,
    note: String,
}

fn report(o: &Outcome, n: u64) {
    println!(
        "{:<34} event call {:>6.0} ns   with span {:>6.0} ns   delivered {:>9.0} events/s   lost {:>6} of {n}  {}",
        o.name, o.caller_ns, o.loop_ns, o.delivered_per_s, o.lost, o.note
    );
}

fn run_gelf_tracing(n: u64) -> Outcome {
    let rx = Counter::start();
    let (layer, guard) = gelf_tracing::GelfLayer::builder()
        .endpoint(&format!("tcp://127.0.0.1:{}", rx.port))
        .expect("endpoint")
        .static_field("service", "bench")
        .build()
        .expect("build");
    let handle = guard.handle();
    let start = Instant::now();
    let caller =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            emit_events(n)
        });
    drop(guard);
    let (got, last) = rx.wait(n);
    let s = handle.stats();
    Outcome {
        name: "gelf-tracing".into(),
        caller_ns: caller.0.as_nanos() as f64 / n as f64,
        loop_ns: caller.1.as_nanos() as f64 / n as f64,
        delivered_per_s: got as f64 / (last - start).as_secs_f64(),
        lost: n - got,
        note: format!("(counted: sent={} dropped={})", s.sent, s.dropped),
    }
}

fn run_tracing_gelf(n: u64, buffer: Option<usize>) -> Outcome {
    let rx = Counter::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut builder = tracing_gelf::Logger::builder().additional_field("service", "bench");
    if let Some(b) = buffer {
        builder = builder.buffer(b);
    }
    let (logger, mut conn) = builder
        .connect_tcp(("127.0.0.1", rx.port))
        .expect("tracing-gelf");
    rt.spawn(async move {
        // The reconnect loop its documentation asks the user to write.
        loop {
            let _errors = conn.connect().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Let it connect before timing, as it buffers only 512 events otherwise.
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let caller =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(logger), || {
            emit_events(n)
        });
    let (got, last) = rx.wait(n);
    rt.shutdown_timeout(Duration::from_millis(100));
    Outcome {
        name: match buffer {
            None => "tracing-gelf 0.9 (default 512)".into(),
            Some(b) => format!("tracing-gelf 0.9 (buffer {b})"),
        },
        caller_ns: caller.0.as_nanos() as f64 / n as f64,
        loop_ns: caller.1.as_nanos() as f64 / n as f64,
        delivered_per_s: got as f64 / (last - start).as_secs_f64(),
        lost: n - got,
        note: "(it does not count its drops)".into(),
    }
}

fn run_fmt_json(n: u64) -> Outcome {
    let sub = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_writer(std::io::sink)
        .finish();
    let caller = tracing::subscriber::with_default(sub, || emit_events(n));
    Outcome {
        name: "baseline: fmt().json() to a sink".into(),
        caller_ns: caller.0.as_nanos() as f64 / n as f64,
        loop_ns: caller.1.as_nanos() as f64 / n as f64,
        delivered_per_s: f64::NAN,
        lost: 0,
        note: "(formats only, ships nothing)".into(),
    }
}

fn run_registry_only(n: u64) -> Outcome {
    let sub = tracing_subscriber::registry().with(tracing_subscriber::layer::Identity::new());
    let caller = tracing::subscriber::with_default(sub, || emit_events(n));
    Outcome {
        name: "floor: registry, no layer".into(),
        caller_ns: caller.0.as_nanos() as f64 / n as f64,
        loop_ns: caller.1.as_nanos() as f64 / n as f64,
        delivered_per_s: f64::NAN,
        lost: 0,
        note: "(tracing's own cost on this machine)".into(),
    }
}

fn run_raw_serde(n: u64) -> Outcome {
    let rx = Counter::start();
    let stream = TcpStream::connect(("127.0.0.1", rx.port)).expect("connect");
    let mut w = BufWriter::with_capacity(256 * 1024, stream);
    let start = Instant::now();
    for i in 0..n {
        let v = serde_json::json!({
            "version": "1.1", "host": "bench", "short_message": "Audio generation completed",
            "timestamp": 1_700_000_000.123, "level": 6, "_node_id": "tts-node-01",
            "_request_id": format!("req-{:08}", i % 1024), "_duration_ms": 412, "_char_count": 96,
            "_model_version": "piper-vits-medium/en_US-joe-medium", "_emotion": "neutral",
            "_gpu_memory_used_gb": 3.25, "_span": "synthesize",
        });
        let _ = serde_json::to_writer(&mut w, &v);
        let _ = w.write_all(&[0]);
    }
    let _ = w.flush();
    let caller = (start.elapsed(), start.elapsed());
    let (got, last) = rx.wait(n);
    Outcome {
        name: "baseline: serde_json into a socket".into(),
        caller_ns: caller.0.as_nanos() as f64 / n as f64,
        loop_ns: caller.1.as_nanos() as f64 / n as f64,
        delivered_per_s: got as f64 / (last - start).as_secs_f64(),
        lost: n - got,
        note: "(one thread, no tracing)".into(),
    }
}

/// The node's rule file, as a realistic rule set.
const NODE_RULES: &str = include_str!("node_rules.toml");

/// Caller cost of ERROR events with and without attribution rules, with and
/// without an `error_code` (the keyword fallback scans the message then).
fn run_attribution(n: u64) {
    fn one(n: u64, rules: bool, with_code: bool) -> f64 {
        let rx = Counter::start();
        let mut b = gelf_tracing::GelfLayer::builder()
            .endpoint(&format!("tcp://127.0.0.1:{}", rx.port))
            .expect("endpoint");
        if rules {
            b = b
                .attribution(gelf_tracing::AttributionRules::from_toml(NODE_RULES).expect("rules"));
        }
        let (layer, guard) = b.build().expect("build");
        let spent =
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
                let span = tracing::info_span!("synthesize", request_id = "req-00000001");
                let _e = span.enter();
                let mut spent = Duration::ZERO;
                for _ in 0..n {
                    let t = Instant::now();
                    if with_code {
                        tracing::error!(
                            error_code = "MODEL_INFER_FAIL",
                            duration_ms = 12u64,
                            "inference failed: shape mismatch in the decoder"
                        );
                    } else {
                        tracing::error!(
                            duration_ms = 12u64,
                            "inference failed: shape mismatch in the decoder"
                        );
                    }
                    spent += t.elapsed();
                }
                spent
            });
        drop(guard);
        rx.wait(n);
        spent.as_nanos() as f64 / n as f64
    }
    let base = one(n, false, false);
    let rules_no_code = one(n, true, false);
    let base_code = one(n, false, true);
    let rules_code = one(n, true, true);
    println!("attribution, ERROR event without error_code: {base:.0} ns without rules, {rules_no_code:.0} ns with the node's rules ({:+.0} ns)", rules_no_code - base);
    println!("attribution, ERROR event with error_code:    {base_code:.0} ns without rules, {rules_code:.0} ns with the node's rules ({:+.0} ns)", rules_code - base_code);
}

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let mut n = 200_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--events" {
            n = args.next().and_then(|v| v.parse().ok()).unwrap_or(n);
        }
    }
    println!(
        "{n} events, 7 fields inside a span, loopback TCP, {} cores",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    // Warm-up run so both contenders start with a warm cache.
    let _ = run_gelf_tracing(n / 10);
    let ours = run_gelf_tracing(n);
    report(&ours, n);
    let theirs = run_tracing_gelf(n, None);
    report(&theirs, n);
    let theirs_big = run_tracing_gelf(n, Some(n as usize));
    report(&theirs_big, n);
    report(&run_fmt_json(n), n);
    report(&run_registry_only(n), n);
    report(&run_raw_serde(n), n);
    println!(
        "ratio caller cost tracing-gelf/gelf-tracing: {:.2}x (default buffer), {:.2}x (buffer {n})",
        theirs.caller_ns / ours.caller_ns,
        theirs_big.caller_ns / ours.caller_ns
    );
    println!(
        "ratio delivered rate gelf-tracing/tracing-gelf: {:.2}x (default buffer), {:.2}x (buffer {n})",
        ours.delivered_per_s / theirs.delivered_per_s,
        ours.delivered_per_s / theirs_big.delivered_per_s
    );
    run_attribution(n / 2);
    if let Some(rss) = peak_rss_mib() {
        println!("peak RSS of the whole benchmark process: {rss:.0} MiB");
    }
}
