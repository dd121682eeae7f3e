//! Every transport side by side in one run, with TCP as the reference: the
//! caller's cost per event, the delivered rate (events the receiver accepted
//! per second, first emit to last arrival) and losses; then the spool path:
//! writing 100% of the events to disk while Graylog is down, and replaying
//! them to a live receiver.
//!
//! ```text
//! cargo bench -p e2e --bench transports -- [--events 100000]
//! ```
//!
//! The receivers check every message with Graylog's rules (JSON parse and
//! field checks), so on a small machine they share the cores with the layer:
//! figures are for comparing transports, not a ceiling.

use std::time::{Duration, Instant};

use e2e::receivers::{HttpReceiver, TestPki, TlsReceiver, UdpReceiver};
use e2e::{GelfReceiver, Inbox};
use gelf_tracing::{Compression, GelfLayer, GelfLayerBuilder, Stats};
use tracing_subscriber::prelude::*;

/// The node's completion event inside its span.
fn emit(n: u64) -> Duration {
    let mut in_event = Duration::ZERO;
    for i in 0..n {
        let span = tracing::info_span!("synthesize", request_id = i);
        let _e = span.enter();
        let t = Instant::now();
        tracing::info!(
            node_id = "tts-node-01",
            seq = i,
            duration_ms = 412u64,
            char_count = 96u64,
            model_version = "piper-vits-medium/en_US-joe-medium",
            gpu_memory_used_gb = 3.25f64,
            "Audio generation completed"
        );
        in_event += t.elapsed();
    }
    in_event
}

struct Row {
    name: String,
    caller_ns: f64,
    per_s: f64,
    lost: u64,
    stats: Stats,
}

fn run(name: &str, b: GelfLayerBuilder, inbox: &Inbox, n: u64) -> Row {
    let (layer, guard) = b
        .queue_capacity(n as usize)
        .flush_timeout(Duration::from_secs(120))
        .build()
        .expect("build");
    let handle = guard.handle();
    let start = Instant::now();
    let caller =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || emit(n));
    drop(guard);
    let got = inbox.wait_for(n as usize, Duration::from_secs(5)) as u64;
    let elapsed = start.elapsed();
    Row {
        name: name.into(),
        caller_ns: caller.as_nanos() as f64 / n as f64,
        per_s: got as f64 / elapsed.as_secs_f64(),
        lost: n.saturating_sub(got),
        stats: handle.stats(),
    }
}

fn report(r: &Row, reference: Option<&Row>, n: u64) {
    let ratio = reference.map_or(String::new(), |t| {
        format!(
            "  caller {:.2}x, rate {:.2}x of tcp",
            r.caller_ns / t.caller_ns,
            r.per_s / t.per_s
        )
    });
    println!(
        "{:<22} event call {:>6.0} ns   delivered {:>8.0} events/s   lost {:>5} of {n} (counted dropped {}){ratio}",
        r.name, r.caller_ns, r.per_s, r.lost, r.stats.dropped
    );
}

fn builder(endpoint: &str) -> GelfLayerBuilder {
    GelfLayer::builder()
        .endpoint(endpoint)
        .expect("endpoint")
        .stderr_interval(Duration::from_secs(3600))
}

fn main() {
    let mut n = 100_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--events" {
            n = args.next().and_then(|v| v.parse().ok()).unwrap_or(n);
        }
    }
    println!(
        "{n} events, 6 fields inside a span, loopback, {} cores",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    let warm = GelfReceiver::start();
    let _ = run("warm-up", builder(&warm.endpoint()), &warm, n / 10);

    let rx = GelfReceiver::start();
    let tcp = run("tcp", builder(&rx.endpoint()), &rx, n);
    report(&tcp, None, n);
    drop(rx);

    let pki = TestPki::generate("bench");
    let rx = TlsReceiver::start(pki.server_config(false));
    let r = run(
        "tls",
        builder(&rx.endpoint()).tls_ca_file(&pki.ca_file),
        &rx,
        n,
    );
    report(&r, Some(&tcp), n);
    drop(rx);

    for (name, c) in [
        ("udp gzip", Compression::Gzip),
        ("udp none", Compression::None),
    ] {
        let rx = UdpReceiver::start();
        let r = run(name, builder(&rx.endpoint()).udp_compression(c), &rx, n);
        report(&r, Some(&tcp), n);
    }

    // One POST per message: a tenth of the events keeps the run short.
    let nh = n / 10;
    for (name, c) in [
        ("http", Compression::None),
        ("http gzip", Compression::Gzip),
    ] {
        let rx = HttpReceiver::start();
        let r = run(name, builder(&rx.endpoint()).http_compression(c), &rx, nh);
        report(&r, Some(&tcp), nh);
    }

    // The spool: Graylog down, every event to disk, then replayed.
    let dir = std::env::temp_dir().join(format!("gelf-bench-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("tcp://{}", l.local_addr().expect("addr"))
    };
    let (layer, guard) = builder(&down)
        .queue_capacity(1024)
        .spool_dir(&dir)
        .spool_after(Duration::from_millis(10))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .expect("build");
    let handle = guard.handle();
    let start = Instant::now();
    let caller =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || emit(n));
    drop(guard);
    let spool_elapsed = start.elapsed();
    let s = handle.stats();
    println!(
        "{:<22} event call {:>6.0} ns   spooled  {:>8.0} events/s   {} events, {:.1} MiB on disk, dropped {}  caller {:.2}x of tcp",
        "spool (graylog down)",
        caller.as_nanos() as f64 / n as f64,
        s.spooled as f64 / spool_elapsed.as_secs_f64(),
        s.spooled,
        s.spool_bytes as f64 / 1048576.0,
        s.dropped,
        caller.as_nanos() as f64 / n as f64 / tcp.caller_ns
    );
    let rx = GelfReceiver::start();
    let start = Instant::now();
    let (layer, guard) = builder(&rx.endpoint())
        .spool_dir(&dir)
        .build()
        .expect("build");
    let recovered = guard.stats().recovered;
    let got = rx.wait_for(recovered as usize, Duration::from_secs(120)) as u64;
    let replay = start.elapsed();
    println!(
        "{:<22} replayed {} of {} events in {:.2} s: {:>8.0} events/s  rate {:.2}x of tcp",
        "spool replay",
        got,
        recovered,
        replay.as_secs_f64(),
        got as f64 / replay.as_secs_f64(),
        got as f64 / replay.as_secs_f64() / tcp.per_s
    );
    drop(layer);
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}
