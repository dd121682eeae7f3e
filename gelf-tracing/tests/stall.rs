//! A Graylog that accepts connections but stops reading (full journal, paused
//! JVM, half-dead host), over real loopback sockets: the layer must count it
//! as down, fail over to the next endpoint without a reconnect loop on the
//! stalled one, send what it had not acknowledged again, and at shutdown
//! account for every event exactly.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use e2e::receivers::StalledReceiver;
use e2e::GelfReceiver;
use gelf_tracing::graylog::Accepted;
use gelf_tracing::GelfLayer;
use tracing_subscriber::prelude::*;

fn seqs<'a>(msgs: impl IntoIterator<Item = &'a Accepted>) -> Vec<u64> {
    msgs.into_iter()
        .filter_map(|m| m.fields.get("seq").and_then(|v| v.as_u64()))
        .collect()
}

fn emit(from: u64, to: u64) {
    for i in from..to {
        tracing::info!(seq = i, pad = "x".repeat(200).as_str(), "numbered");
    }
}

#[test]
fn a_stalled_first_endpoint_fails_over_and_every_event_is_accounted_once() {
    let stalled = StalledReceiver::start();
    let good = GelfReceiver::start();
    let stall = Duration::from_secs(1);
    let (layer, guard) = GelfLayer::builder()
        .endpoint(&format!("{},{}", stalled.endpoint(), good.endpoint()))
        .unwrap()
        .stall_timeout(stall)
        .failback_after(Duration::from_secs(600))
        .stderr_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let _d = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let total = 20_000u64;
    let start = Instant::now();
    let mut first_at_good = None;
    for chunk in 0..100 {
        emit(chunk * 200, (chunk + 1) * 200);
        std::thread::sleep(Duration::from_millis(25));
        if first_at_good.is_none() && good.count() > 0 {
            first_at_good = Some(start.elapsed());
        }
    }
    guard.flush(Duration::from_secs(20)).unwrap();
    let first_at_good = first_at_good.unwrap_or_else(|| start.elapsed());
    let s = guard.stats();
    assert_eq!(s.emitted, total);
    assert_eq!((s.sent, s.dropped, s.queued), (total, 0, 0), "{s:?}");
    assert_eq!((s.stalls, s.endpoints[0].stalled), (1, 1), "{s:?}");
    assert!(s.unacknowledged_resent > 0, "{s:?}");
    assert_eq!(
        stalled.connections(),
        1,
        "no reconnect loop on the stalled endpoint"
    );
    // The healthy endpoint took over within the stall timeout plus a batch.
    assert!(
        first_at_good <= stall + Duration::from_millis(1500),
        "first event at the second endpoint after {first_at_good:?}"
    );
    good.wait_for(s.endpoints[1].sent as usize, Duration::from_secs(10));
    let at_good = seqs(&good.lock().accepted);
    let at_stalled = seqs(&stalled.drain());
    // What counts as sent to each endpoint is exactly what it holds.
    assert_eq!(at_good.len() as u64, s.endpoints[1].sent, "{s:?}");
    assert_eq!(at_stalled.len() as u64, s.endpoints[0].sent, "{s:?}");
    let all: HashSet<u64> = at_good.iter().chain(&at_stalled).copied().collect();
    assert_eq!(all.len() as u64, total, "every event once, none twice");
    println!(
        "stalled endpoint: {} events acknowledged by it, {} re-sent after the stall; second endpoint: first event after {first_at_good:?}, {} in all",
        s.endpoints[0].sent, s.unacknowledged_resent, s.endpoints[1].sent
    );
}

#[test]
fn shutdown_against_a_stalled_endpoint_counts_every_event_within_the_deadline() {
    let stalled = StalledReceiver::start();
    let deadline = Duration::from_secs(2);
    let (layer, guard) = GelfLayer::builder()
        .endpoint(&stalled.endpoint())
        .unwrap()
        .flush_timeout(deadline)
        .stderr_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let handle = guard.handle();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        emit(0, 200_000)
    });
    let t = Instant::now();
    drop(guard);
    let took = t.elapsed();
    let s = handle.stats();
    assert!(
        took <= deadline + Duration::from_millis(300),
        "guard drop took {took:?}"
    );
    assert_eq!(s.emitted, 200_000);
    assert_eq!(s.emitted, s.sent + s.dropped, "{s:?}");
    assert_eq!(s.queued, 0, "{s:?}");
    assert!(s.dropped_shutdown > 0, "{s:?}");
    // Counted as sent: exactly what the stalled peer's kernel holds.
    assert_eq!(stalled.drain().len() as u64, s.sent, "{s:?}");
    println!(
        "guard drop against a stalled endpoint: {took:?}; sent={} dropped_queue_full={} dropped_shutdown={}",
        s.sent, s.dropped_queue_full, s.dropped_shutdown
    );
}
