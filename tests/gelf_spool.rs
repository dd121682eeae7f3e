//! The durable spool across real processes: an application emits while
//! Graylog is down and exits; the next process with the same spool
//! directory delivers everything to a live receiver. A damaged last segment
//! loses only its damaged tail, counted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::node::free_port;
use e2e::{field_str, GelfReceiver};
use gelf_tracing::{GelfLayer, Stats};

fn spool_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gelf-spool-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs the `gelf-emit` binary and returns its figures line as pairs.
fn emit_process(endpoint: &str, count: u64, dir: &Path) -> Vec<(String, u64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_gelf-emit"))
        .args(["--endpoint", endpoint, "--count", &count.to_string()])
        .args([
            "--queue",
            "1024",
            "--spool-after-ms",
            "50",
            "--flush-ms",
            "2000",
        ])
        .arg("--spool-dir")
        .arg(dir)
        .output()
        .expect("run gelf-emit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gelf-emit failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(u64::MAX)))
        .collect()
}

fn figure(f: &[(String, u64)], name: &str) -> u64 {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| *v).unwrap()
}

/// Opens the spool in this process with a live receiver and waits until it
/// is empty; returns the final stats.
fn deliver(dir: &Path, rx: &GelfReceiver) -> Stats {
    let (layer, guard) = GelfLayer::builder()
        .endpoint(&rx.endpoint())
        .unwrap()
        .spool_dir(dir)
        .build()
        .unwrap();
    let recovered = guard.stats().recovered;
    assert!(recovered > 0, "the spool was found");
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let s = guard.stats();
        if s.spooled == 0 && s.sent + s.dropped >= s.recovered {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(layer);
    let h = guard.handle();
    drop(guard);
    h.stats()
}

fn request_ids(rx: &GelfReceiver) -> HashSet<String> {
    rx.lock()
        .accepted
        .iter()
        .filter_map(|m| field_str(m, "request_id").map(str::to_owned))
        .collect()
}

#[test]
fn outage_then_restart_delivers_all_100k() {
    let dir = spool_dir("100k");
    // Graylog is down: nothing listens on this port.
    let down = format!("tcp://127.0.0.1:{}", free_port());
    let f = emit_process(&down, 100_000, &dir);
    assert_eq!(figure(&f, "emitted"), 100_000);
    assert_eq!(figure(&f, "dropped"), 0, "{f:?}");
    assert_eq!(figure(&f, "sent"), 0);
    assert_eq!(figure(&f, "spooled"), 100_000, "{f:?}");

    let rx = GelfReceiver::start();
    let s = deliver(&dir, &rx);
    assert_eq!(s.recovered, 100_000);
    assert_eq!((s.sent, s.dropped, s.spooled), (100_000, 0, 0), "{s:?}");
    rx.wait_for(100_000, Duration::from_secs(10));
    let ids = request_ids(&rx);
    assert_eq!(ids.len(), 100_000, "every request id arrived");
    assert!(ids.contains("req-00000000") && ids.contains("req-00099999"));
    // The segments are gone once delivered; the lock file stays.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["spool.lock"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cut_last_segment_loses_only_its_damaged_tail_counted() {
    let dir = spool_dir("cut");
    let down = format!("tcp://127.0.0.1:{}", free_port());
    let f = emit_process(&down, 20_000, &dir);
    assert_eq!(figure(&f, "spooled"), 20_000, "{f:?}");

    // Power loss: the last segment ends in the middle of a record.
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "spool"))
        .collect();
    segs.sort();
    let last = segs.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    file.set_len(len - 40).unwrap();
    drop(file);

    let rx = GelfReceiver::start();
    let s = deliver(&dir, &rx);
    rx.wait_for(s.sent as usize, Duration::from_secs(10));
    let ids = request_ids(&rx);
    // A record is ~330 bytes: cutting 40 bytes damages exactly the last one.
    assert_eq!(s.dropped_spool_corrupt, 1, "{s:?}");
    assert_eq!(s.recovered, 20_000);
    assert_eq!(s.sent + s.dropped, 20_000, "{s:?}");
    assert_eq!(ids.len(), 19_999, "only the cut record is missing");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_spool_settings_fail_at_build() {
    let file = std::env::temp_dir().join(format!("gelf-spool-file-{}", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let err = GelfLayer::builder()
        .endpoint("tcp://127.0.0.1:1")
        .unwrap()
        .spool_dir(&file)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("spool_dir"), "{err}");
    let err = GelfLayer::builder()
        .endpoint("tcp://127.0.0.1:1")
        .unwrap()
        .spool_dir(spool_dir("small"))
        .spool_max_bytes(1000)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("spool_max_bytes"), "{err}");
    let _ = std::fs::remove_file(file);
}

#[test]
fn a_second_process_on_the_same_spool_directory_is_refused_at_start() {
    let dir = spool_dir("two-writers");
    let down = format!("tcp://127.0.0.1:{}", free_port());
    let args = |count: &str, hold: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gelf-emit"));
        c.args(["--endpoint", &down, "--count", count, "--hold-ms", hold])
            .args(["--flush-ms", "200", "--spool-dir"])
            .arg(&dir);
        c
    };
    let mut first = args("1000", "3000")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the first process");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.join("spool.lock").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let second = args("10", "0").output().expect("run the second process");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "two writers on one spool directory"
    );
    assert!(
        stderr.contains("is in use by another process"),
        "the error says why: {stderr}"
    );
    assert!(first.wait().expect("first process").success());
    // Once the first has exited, the directory is free again.
    let third = args("10", "0").output().expect("run a third process");
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
