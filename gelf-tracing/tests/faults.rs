//! Fault tests of the GELF layer with real sockets: Graylog absent, killed and
//! restarted, a full queue, and shutdown. The accounting must be exact:
//! every emitted event is sent or counted as dropped.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::node::free_port;
use e2e::{field_str, short_message, GelfReceiver};
use gelf_tracing::{GelfLayer, GelfLayerBuilder, OverflowPolicy};
use tracing_subscriber::prelude::*;

fn builder(port: u16) -> GelfLayerBuilder {
    GelfLayer::builder()
        .endpoint(&format!("tcp://127.0.0.1:{port}"))
        .unwrap()
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(200))
        .stderr_interval(Duration::from_secs(3600))
}

fn emit_numbered(from: u64, to: u64, slowest: &mut Duration) {
    for i in from..to {
        let t = Instant::now();
        tracing::info!(seq = i, request_id = %format!("req-{i}"), "numbered");
        *slowest = (*slowest).max(t.elapsed());
    }
}

fn seqs(rx: &e2e::Received) -> HashSet<u64> {
    rx.accepted
        .iter()
        .filter_map(|m| m.fields.get("seq").and_then(|v| v.as_u64()))
        .collect()
}

#[test]
fn receiver_absent_at_start_then_appearing_gets_everything() {
    let port = free_port();
    let errors = Arc::new(AtomicUsize::new(0));
    let e2 = Arc::clone(&errors);
    let (layer, guard) = builder(port)
        .on_error(move |_| {
            e2.fetch_add(1, Ordering::Relaxed);
            // Logging from the callback must not feed back into the layer.
            tracing::error!("graylog unreachable");
        })
        .build()
        .unwrap();
    let sub = tracing_subscriber::registry().with(layer);
    let mut slowest = Duration::ZERO;
    tracing::subscriber::with_default(sub, || emit_numbered(0, 1000, &mut slowest));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        errors.load(Ordering::Relaxed) > 0,
        "connection errors are reported"
    );
    assert_eq!(guard.stats().sent, 0);
    let rx = GelfReceiver::start_on(port).unwrap();
    guard.flush(Duration::from_secs(10)).unwrap();
    let s = guard.stats();
    assert_eq!((s.emitted, s.sent, s.dropped), (1000, 1000, 0), "{s:?}");
    assert_eq!(rx.wait_for(1000, Duration::from_secs(5)), 1000);
    let r = rx.lock();
    assert_eq!(seqs(&r).len(), 1000);
    assert!(
        r.accepted.iter().all(|m| short_message(m) == "numbered"),
        "no callback event leaked in"
    );
    println!("slowest on_event while Graylog was down: {slowest:?}");
}

#[test]
fn receiver_killed_while_idle_nothing_is_written_into_the_dead_connection() {
    let rx = GelfReceiver::start();
    let port = rx.port();
    let (layer, guard) = builder(port).build().unwrap();
    let _d = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let mut slowest = Duration::ZERO;
    emit_numbered(0, 2_000, &mut slowest);
    guard.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(rx.wait_for(2_000, Duration::from_secs(5)), 2_000);
    let first = rx.kill();
    // Graylog is gone; the worker must notice the closed connection before writing.
    emit_numbered(2_000, 4_000, &mut slowest);
    std::thread::sleep(Duration::from_millis(200));
    let rx2 = GelfReceiver::start_on(port).unwrap();
    guard.flush(Duration::from_secs(10)).unwrap();
    let s = guard.stats();
    assert_eq!((s.emitted, s.sent, s.dropped), (4_000, 4_000, 0));
    assert_eq!(rx2.wait_for(2_000, Duration::from_secs(5)), 2_000);
    let mut all = seqs(&first);
    all.extend(seqs(&rx2.lock()));
    assert_eq!(all.len(), 4_000, "every event delivered exactly once");
    assert!(s.reconnects >= 1);
    println!("slowest on_event: {slowest:?}");
}

#[test]
fn receiver_killed_and_restarted_mid_stream_accounting_is_exact() {
    let rx = GelfReceiver::start();
    let port = rx.port();
    let (layer, guard) = builder(port).build().unwrap();
    let _d = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let total = 30_000u64;
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let chaos = std::thread::spawn(move || {
        kill_rx.recv().unwrap();
        let first = rx.kill();
        std::thread::sleep(Duration::from_millis(300));
        let rx2 = GelfReceiver::start_on(port).unwrap();
        (first, rx2)
    });
    let mut slowest = Duration::ZERO;
    for i in 0..total {
        if i == 5_000 {
            kill_tx.send(()).unwrap();
        }
        emit_numbered(i, i + 1, &mut slowest);
        if i % 100 == 0 {
            // Spread the stream over the outage (about 0.6 s in all).
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let (first, rx2) = chaos.join().unwrap();
    guard.flush(Duration::from_secs(10)).unwrap();
    let s = guard.stats();
    assert_eq!(s.emitted, total);
    assert_eq!(
        s.emitted,
        s.sent + s.dropped,
        "every event sent or counted dropped: {s:?}"
    );
    assert_eq!(s.dropped, 0, "the queue holds an outage this short");
    rx2.wait_quiet(Duration::from_millis(300), Duration::from_secs(10));
    let second = rx2.lock();
    let n_received = first.accepted.len() + second.accepted.len();
    let mut all = seqs(&first);
    all.extend(seqs(&second));
    assert_eq!(all.len(), n_received, "no event delivered twice");
    assert!(n_received as u64 <= s.sent);
    // Only frames already in the dead peer's socket at the kill may be lost (TCP
    // gives no acknowledgement); everything after the reconnection arrives.
    let lost = s.sent - n_received as u64;
    assert!(
        (total - 1_000..total).all(|i| all.contains(&i)),
        "tail delivered"
    );
    assert!(second.protocol_errors.is_empty() && second.rejected.is_empty());
    println!(
        "kill mid-stream: sent={} received={n_received} lost_in_dead_socket={lost} reconnects={} slowest_on_event={slowest:?}",
        s.sent, s.reconnects
    );
    // A blocking caller would show the connect or write time-out (seconds).
    assert!(
        slowest < Duration::from_millis(250),
        "on_event blocked for {slowest:?}"
    );
}

#[test]
fn queue_overflow_drops_exactly_and_sends_a_notice() {
    let port = free_port();
    let (layer, guard) = builder(port)
        .queue_capacity(100)
        .batch_max_bytes(1)
        .static_field("node_id", "n-7")
        .build()
        .unwrap();
    let _d = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let mut slowest = Duration::ZERO;
    emit_numbered(0, 1_000, &mut slowest);
    let s = guard.stats();
    // The queue holds 100; the worker holds at most one batch in hand.
    assert!(
        s.dropped_queue_full >= 899 && s.dropped_queue_full <= 900,
        "{s:?}"
    );
    let rx = GelfReceiver::start_on(port).unwrap();
    guard.flush(Duration::from_secs(10)).unwrap();
    let s = guard.stats();
    assert_eq!(s.emitted, 1_000);
    assert_eq!(s.sent + s.dropped, 1_000);
    // The notice follows the first delivery.
    let want = s.sent as usize + 1;
    assert_eq!(rx.wait_for(want, Duration::from_secs(5)), want);
    let r = rx.lock();
    let notices: Vec<_> = r
        .accepted
        .iter()
        .filter(|m| m.fields.contains_key("gelf_dropped"))
        .collect();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].fields["gelf_dropped"], s.dropped);
    assert_eq!(notices[0].fields["gelf_dropped_total"], s.dropped);
    assert_eq!(field_str(notices[0], "node_id"), Some("n-7"));
    assert_eq!(notices[0].standard["level"], 4);
    assert_eq!(seqs(&r).len() as u64, s.sent);
    assert_eq!(s.notices_sent, 1);
    // Drop-newest keeps the oldest events.
    assert!(seqs(&r).contains(&0));
}

#[test]
fn drop_oldest_policy_keeps_the_newest() {
    let port = free_port();
    let (layer, guard) = builder(port)
        .queue_capacity(100)
        .batch_max_bytes(1)
        .overflow_policy(OverflowPolicy::DropOldest)
        .build()
        .unwrap();
    let _d = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let mut slowest = Duration::ZERO;
    emit_numbered(0, 1_000, &mut slowest);
    let rx = GelfReceiver::start_on(port).unwrap();
    guard.flush(Duration::from_secs(10)).unwrap();
    let s = guard.stats();
    assert_eq!(s.sent + s.dropped, 1_000);
    rx.wait_for(s.sent as usize + 1, Duration::from_secs(5));
    let got = seqs(&rx.lock());
    assert!(
        (900..1_000).all(|i| got.contains(&i)),
        "the newest 100 survive"
    );
    assert_eq!(got.len() as u64, s.sent);
}

#[test]
fn guard_drop_delivers_everything_queued() {
    let rx = GelfReceiver::start();
    let (layer, guard) = builder(rx.port()).build().unwrap();
    let handle = guard.handle();
    let mut slowest = Duration::ZERO;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        emit_numbered(0, 50_000, &mut slowest)
    });
    drop(guard);
    let s = handle.stats();
    assert_eq!(
        (s.emitted, s.sent, s.dropped, s.queued),
        (50_000, 50_000, 0, 0)
    );
    assert_eq!(rx.wait_for(50_000, Duration::from_secs(10)), 50_000);
}

#[test]
fn guard_drop_honours_its_deadline_when_graylog_is_down() {
    let port = free_port();
    let (layer, guard) = builder(port)
        .flush_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let handle = guard.handle();
    let mut slowest = Duration::ZERO;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        emit_numbered(0, 100, &mut slowest)
    });
    let t = Instant::now();
    drop(guard);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "guard drop took {took:?}");
    let s = handle.stats();
    assert_eq!((s.emitted, s.sent, s.dropped_shutdown), (100, 0, 100));
    println!("guard drop with Graylog down took {took:?} (deadline 300 ms)");
}

#[test]
fn explicit_flush_times_out_with_the_pending_count() {
    let port = free_port();
    let (layer, guard) = builder(port).build().unwrap();
    let mut slowest = Duration::ZERO;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        emit_numbered(0, 10, &mut slowest)
    });
    match guard.flush(Duration::from_millis(100)) {
        Err(gelf_tracing::FlushError::Timeout { pending, .. }) => assert_eq!(pending, 10),
        other => panic!("expected a time-out, got {other:?}"),
    }
}
