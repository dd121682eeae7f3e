//! Emits numbered events through the GELF layer, then exits; used by the
//! spool tests and benchmarks as "the application" in a process of its own.
//!
//! ```text
//! gelf-emit --endpoint tcp://127.0.0.1:1 --count 100000 [--spool-dir DIR]
//!           [--queue 1024] [--spool-after-ms 50] [--flush-ms 5000]
//!           [--hold-ms 0]   # keep the layer (and its spool's lock) this long before exiting
//! ```
//!
//! Prints one line of figures at the end:
//! `emitted=N sent=N dropped=N spooled=N spool_bytes=N recovered=N elapsed_ms=T`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tracing_subscriber::prelude::*;

fn main() -> anyhow::Result<()> {
    let mut endpoint = None;
    let mut count = 1000u64;
    let mut spool_dir = None;
    let mut queue = 65_536usize;
    let mut spool_after = 50u64;
    let mut flush_ms = 5000u64;
    let mut hold_ms = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--endpoint" => endpoint = Some(value()?),
            "--count" => count = value()?.parse().context("--count")?,
            "--spool-dir" => spool_dir = Some(value()?),
            "--queue" => queue = value()?.parse().context("--queue")?,
            "--spool-after-ms" => spool_after = value()?.parse().context("--spool-after-ms")?,
            "--flush-ms" => flush_ms = value()?.parse().context("--flush-ms")?,
            "--hold-ms" => hold_ms = value()?.parse().context("--hold-ms")?,
            other => bail!("unknown argument {other}"),
        }
    }
    let endpoint = endpoint.context("--endpoint is required")?;
    let mut b = gelf_tracing::GelfLayer::builder()
        .endpoint(&endpoint)?
        .queue_capacity(queue)
        .flush_timeout(Duration::from_millis(flush_ms))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .stderr_interval(Duration::from_secs(3600));
    if let Some(d) = &spool_dir {
        b = b
            .spool_dir(d)
            .spool_after(Duration::from_millis(spool_after));
    }
    let (layer, guard) = b.build()?;
    let subscriber = tracing_subscriber::registry().with(layer);
    let start = Instant::now();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..count {
            tracing::info!(
                request_id = format!("req-{i:08}").as_str(),
                seq = i,
                char_count = 42u64,
                "Audio generation completed"
            );
        }
    });
    std::thread::sleep(Duration::from_millis(hold_ms));
    let handle = guard.handle();
    drop(guard);
    let s = handle.stats();
    println!(
        "emitted={} sent={} dropped={} spooled={} spool_bytes={} recovered={} elapsed_ms={}",
        s.emitted,
        s.sent,
        s.dropped,
        s.spooled,
        s.spool_bytes,
        s.recovered,
        start.elapsed().as_millis()
    );
    Ok(())
}
