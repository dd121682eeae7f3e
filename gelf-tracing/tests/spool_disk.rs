//! The spool on a real size-limited file system (a tmpfs; mounting needs
//! root, which CI has), and a spool directory that turns read-only or
//! vanishes while the application runs. Whatever the disk refuses is counted
//! as dropped by its cause, `spool_bytes` is what the files hold, and once
//! Graylog is back `queued` returns to 0 with `sent + dropped == emitted`
//! and the receiver holding exactly `sent` events.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::mounts::Tmpfs;
use e2e::node::free_port;
use e2e::GelfReceiver;
use gelf_tracing::{GelfGuard, GelfLayer, GelfLayerBuilder, Stats};
use tracing_subscriber::prelude::*;

fn builder(port: u16, dir: &Path) -> GelfLayerBuilder {
    GelfLayer::builder()
        .endpoint(&format!("tcp://127.0.0.1:{port}"))
        .unwrap()
        .spool_dir(dir)
        .spool_after(Duration::from_millis(50))
        .queue_capacity(256)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .stderr_interval(Duration::from_secs(3600))
}

/// About 650 bytes per event, like the node's ERROR events.
fn emit(from: u64, to: u64) {
    for i in from..to {
        tracing::error!(
            seq = i,
            error_code = "TEXT_EMPTY",
            detail = "y".repeat(400).as_str(),
            "request failed"
        );
        if i % 64 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Waits until nothing is queued any more (everything sent or dropped).
fn settle(guard: &GelfGuard, within: Duration) -> Stats {
    let deadline = Instant::now() + within;
    loop {
        let s = guard.stats();
        if s.queued == 0 || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn events(rx: &GelfReceiver) -> (HashSet<u64>, usize, u64) {
    let r = rx.lock();
    let seqs: Vec<u64> = r
        .accepted
        .iter()
        .filter_map(|m| m.fields.get("seq").and_then(|v| v.as_u64()))
        .collect();
    let notices_spool_io: u64 = r
        .accepted
        .iter()
        .filter_map(|m| {
            m.fields
                .get("gelf_dropped_spool_io")
                .and_then(|v| v.as_u64())
        })
        .sum();
    let unique: HashSet<u64> = seqs.iter().copied().collect();
    (unique, seqs.len(), notices_spool_io)
}

#[test]
fn a_full_disk_counts_what_it_refuses_and_nothing_stays_queued() {
    let Some(fs) = Tmpfs::mount("full", "1m") else {
        return;
    };
    let port = free_port();
    let (layer, guard) = builder(port, fs.path()).build().unwrap();
    let total = 8_000u64;
    {
        let _d = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        emit(0, total);
    }
    std::thread::sleep(Duration::from_millis(500));
    let s = guard.stats();
    let on_disk = fs.file_bytes(".spool");
    assert_eq!(
        s.spool_bytes, on_disk,
        "spool_bytes is what the files hold: {s:?}"
    );
    assert!(on_disk <= 1024 * 1024);
    assert!(
        s.dropped_spool_io > 0,
        "the full disk refused events: {s:?}"
    );
    assert_eq!(s.emitted, s.sent + s.dropped + s.queued, "{s:?}");

    let rx = GelfReceiver::start_on(port).unwrap();
    let s = settle(&guard, Duration::from_secs(20));
    assert_eq!(
        s.queued, 0,
        "nothing stays queued once Graylog is back: {s:?}"
    );
    guard.flush(Duration::from_secs(5)).unwrap();
    let s = guard.stats();
    assert_eq!(s.emitted, total);
    assert_eq!(s.sent + s.dropped, s.emitted, "{s:?}");
    assert_eq!(s.dropped, s.dropped_spool_io, "{s:?}");
    assert_eq!((s.spooled, s.spool_bytes), (0, 0), "{s:?}");
    rx.wait_quiet(Duration::from_millis(300), Duration::from_secs(10));
    let (unique, n, notice_io) = events(&rx);
    assert_eq!(
        n as u64, s.sent,
        "the receiver holds exactly the sent events"
    );
    assert_eq!(unique.len(), n, "none twice");
    assert_eq!(notice_io, s.dropped_spool_io, "the notices name the cause");
    println!(
        "1 MiB tmpfs: emitted={} sent={} dropped_spool_io={} spool peaked at {on_disk} bytes",
        s.emitted, s.sent, s.dropped_spool_io
    );
}

#[test]
fn a_spool_directory_turning_read_only_is_counted() {
    let Some(mut fs) = Tmpfs::mount("ro", "16m") else {
        return;
    };
    let port = free_port();
    let (layer, guard) = builder(port, fs.path())
        .spool_max_bytes(1024 * 1024)
        .build()
        .unwrap();
    let _d = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    emit(0, 500);
    std::thread::sleep(Duration::from_millis(300));
    let before = guard.stats();
    assert!(before.spooled > 0, "{before:?}");
    fs.make_read_only();
    // Enough to fill the open segment (128 KiB) and need a new one.
    emit(500, 2_000);
    std::thread::sleep(Duration::from_millis(300));
    let s = guard.stats();
    assert!(
        s.dropped_spool_io > 0,
        "a read-only directory refuses: {s:?}"
    );
    let rx = GelfReceiver::start_on(port).unwrap();
    let s = settle(&guard, Duration::from_secs(20));
    assert_eq!(s.queued, 0, "{s:?}");
    assert_eq!(s.sent + s.dropped, 2_000, "{s:?}");
    rx.wait_quiet(Duration::from_millis(300), Duration::from_secs(10));
    let (unique, n, _) = events(&rx);
    assert_eq!((unique.len(), n as u64), (n, s.sent));
}

#[test]
fn a_vanished_spool_directory_is_made_again_and_its_loss_counted() {
    let dir = std::env::temp_dir().join(format!("gelf-spool-vanish-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let (layer, guard) = builder(port, &dir).build().unwrap();
    let _d = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    emit(0, 1_000);
    std::thread::sleep(Duration::from_millis(300));
    let lost = guard.stats().spooled;
    assert!(lost > 0);
    std::fs::remove_dir_all(&dir).unwrap();
    emit(1_000, 2_000);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        dir.join("spool.lock").exists(),
        "the directory is made again"
    );
    let rx = GelfReceiver::start_on(port).unwrap();
    let s = settle(&guard, Duration::from_secs(20));
    assert_eq!(s.queued, 0, "{s:?}");
    assert_eq!(s.sent + s.dropped, 2_000, "{s:?}");
    assert!(
        s.dropped_spool_corrupt >= lost,
        "the deleted records are counted: {s:?}"
    );
    rx.wait_quiet(Duration::from_millis(300), Duration::from_secs(10));
    let (unique, n, _) = events(&rx);
    assert_eq!((unique.len(), n as u64), (n, s.sent));
    assert!(unique.contains(&1_999), "what came after is delivered");
    let _ = std::fs::remove_dir_all(&dir);
}
