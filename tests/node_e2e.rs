//! The node end to end: real processes started by the project's scripts, real
//! HTTP over loopback, the real voice, and a GELF receiver applying Graylog's
//! rules.

use std::collections::HashMap;
use std::time::Duration;

use e2e::cluster::Cluster;
use e2e::node::{
    self, events_where, gelf_env, http, node_pids_on_port, post_json, script, Node, Wav,
};
use e2e::{field_str, short_message, GelfReceiver};
use gelf_tracing::graylog::Accepted;
use serde_json::json;

const COMPLETED: &str = "Audio generation completed";

fn completion_for<'a>(events: &'a [Accepted], request_id: &str) -> Vec<&'a Accepted> {
    events
        .iter()
        .filter(|m| short_message(m) == COMPLETED && field_str(m, "request_id") == Some(request_id))
        .collect()
}

#[test]
fn start_twice_leaves_one_node_then_stop_leaves_none() {
    let _serial = node::serial();
    let n = Node::start("start-twice", &[]);
    let first = node_pids_on_port(n.port);
    assert_eq!(first.len(), 1, "one node after the first start: {first:?}");
    let again = script("start.sh", &[], &n.env);
    assert!(again.status.success());
    let second = node_pids_on_port(n.port);
    assert_eq!(
        second.len(),
        1,
        "still one node after starting twice: {second:?}"
    );
    assert_ne!(first, second, "the second start replaced the first node");
    let status = script("status.sh", &[&n.port.to_string()], &n.env);
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("running"));
    let stop = n.stop();
    assert!(stop.status.success());
    assert!(
        node_pids_on_port(n.port).is_empty(),
        "no node left after stop.sh"
    );
    let status = script("status.sh", &[&n.port.to_string()], &n.env);
    assert!(!status.status.success(), "status.sh reports the node gone");
}

#[test]
fn synthesis_returns_speech_and_exactly_one_typed_event_per_request() {
    let _serial = node::serial();
    let rx = GelfReceiver::start();
    let n = Node::start("synthesis", &gelf_env(&rx, "node-synth"));

    let short = post_json(
        n.port,
        "/api/tts",
        &json!({"text": "Hello there."}),
        &[("X-Request-Id", "req-short-1")],
    );
    assert_eq!(
        short.status,
        200,
        "{}",
        String::from_utf8_lossy(&short.body)
    );
    assert_eq!(short.header("x-request-id"), Some("req-short-1"));
    assert_eq!(short.header("content-type"), Some("audio/wav"));
    let short_wav = Wav::parse(&short.body).unwrap();
    assert_eq!(short_wav.sample_rate, 22050);
    assert!(
        short_wav.rms() > 0.02,
        "not silent: rms {}",
        short_wav.rms()
    );

    let long_text = "The quick brown fox jumps over the lazy dog. It was a bright cold day in April, and the clocks were striking thirteen.";
    let long = post_json(
        n.port,
        "/api/tts",
        &json!({"text": long_text, "voice": "en_US-joe-medium"}),
        &[],
    );
    assert_eq!(long.status, 200);
    let long_rid = long.header("x-request-id").unwrap().to_owned();
    assert!(long_rid.len() >= 16, "generated request id: {long_rid}");
    let long_wav = Wav::parse(&long.body).unwrap();
    let ratio = long_wav.seconds() / short_wav.seconds();
    assert!(
        ratio > 4.0 && ratio < 20.0,
        "duration follows the text: {:.2}s vs {:.2}s",
        long_wav.seconds(),
        short_wav.seconds()
    );

    let openai = post_json(
        n.port,
        "/v1/audio/speech",
        &json!({"model": "tts-1", "input": "Good morning.", "voice": "alloy", "response_format": "wav"}),
        &[("X-Request-Id", "req-openai-wav")],
    );
    assert_eq!(openai.status, 200);
    let ow = Wav::parse(&openai.body).unwrap();
    assert!(ow.seconds() > 0.3 && ow.rms() > 0.02);
    let pcm = post_json(
        n.port,
        "/v1/audio/speech",
        &json!({"model": "tts-1", "input": "Good morning.", "voice": "alloy", "response_format": "pcm"}),
        &[("X-Request-Id", "req-openai-pcm")],
    );
    assert_eq!(pcm.status, 200);
    assert_eq!(pcm.header("content-type"), Some("audio/pcm"));
    assert_eq!(pcm.body.len() % 2, 0);
    assert!(
        pcm.body.len() > 22050,
        "at least half a second of 16-bit PCM"
    );

    let voices = http(n.port, "GET", "/api/voices", &[], b"").json();
    assert_eq!(voices["default"], "en_US-joe-medium");
    assert_eq!(voices["voices"][0]["sample_rate"], 22050);
    // The real Piper voice, behind the engine seam.
    let caps = &voices["voices"][0]["capabilities"];
    assert_eq!(voices["voices"][0]["engine"], "piper");
    assert_eq!(caps["engine"], "piper");
    assert_eq!(
        caps["fields"],
        json!(["speaker", "noise_scale", "speed", "noise_w"])
    );
    assert_eq!(caps["reference_audio"], false);
    assert_eq!(caps["streaming"]["samples_per_frame"], 256);

    let events = events_where(&rx, 4, |m| short_message(m) == COMPLETED);
    for rid in ["req-short-1", &long_rid, "req-openai-wav", "req-openai-pcm"] {
        let e = completion_for(&events, rid);
        assert_eq!(e.len(), 1, "exactly one completion event for {rid}");
        let f = &e[0].fields;
        assert_eq!(field_str(e[0], "node_id"), Some("node-synth"));
        assert_eq!(field_str(e[0], "voice"), Some("en_US-joe-medium"));
        assert!(field_str(e[0], "model_version").is_some_and(|v| v.contains("en_US-joe-medium")));
        assert_eq!(field_str(e[0], "device"), Some("cpu"));
        for int_field in ["duration_ms", "queue_wait_ms", "char_count", "segments"] {
            assert!(
                f[int_field].is_u64(),
                "{int_field} is an integer: {:?}",
                f[int_field]
            );
        }
        for float_field in ["audio_seconds", "rtf"] {
            assert!(
                f[float_field].as_f64().is_some_and(|x| x > 0.0),
                "{float_field}: {:?}",
                f[float_field]
            );
        }
        assert!(
            !f.contains_key("gpu_memory_used_gb"),
            "no invented GPU figures on CPU"
        );
        assert_eq!(e[0].standard["level"], 6);
    }
    let first = completion_for(&events, "req-short-1")[0];
    assert_eq!(first.fields["char_count"], 12);
    let long_event = completion_for(&events, &long_rid)[0];
    let secs = long_event.fields["audio_seconds"].as_f64().unwrap();
    assert!(
        (secs - long_wav.seconds()).abs() < 0.01,
        "audio_seconds matches the WAV"
    );
    let r = rx.lock();
    assert!(
        r.dropped_fields.is_empty(),
        "Graylog would drop: {:?}",
        r.dropped_fields
    );
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    assert!(
        r.accepted
            .iter()
            .any(|m| short_message(m).starts_with("Node ready")),
        "startup event"
    );
    drop(r);
    node::assert_fields_catalogued(&rx);
}

#[test]
fn every_error_case_has_its_code_and_one_error_event() {
    let _serial = node::serial();
    let rx = GelfReceiver::start();
    let mut env = gelf_env(&rx, "node-errors");
    env.push(("TTS_MAX_TEXT_CHARS", "200".into()));
    env.push(("TTS_MAX_BODY_BYTES", "4096".into()));
    let n = Node::start("errors", &env);
    let big_body = format!("{{\"text\":\"{}\"}}", "a".repeat(10_000));
    let cases: Vec<(&str, u16, &str, Vec<u8>, &str)> = vec![
        (
            "err-empty",
            400,
            "TEXT_EMPTY",
            json!({"text": ""}).to_string().into_bytes(),
            "/api/tts",
        ),
        (
            "err-blank",
            400,
            "TEXT_EMPTY",
            json!({"text": " \n\t "}).to_string().into_bytes(),
            "/api/tts",
        ),
        (
            "err-long",
            413,
            "TEXT_TOO_LONG",
            json!({"text": "word ".repeat(60)}).to_string().into_bytes(),
            "/api/tts",
        ),
        (
            "err-voice",
            404,
            "VOICE_NOT_FOUND",
            json!({"text": "hi", "voice": "nobody"})
                .to_string()
                .into_bytes(),
            "/api/tts",
        ),
        (
            "err-path",
            404,
            "VOICE_NOT_FOUND",
            json!({"text": "hi", "voice": "../../etc/passwd"})
                .to_string()
                .into_bytes(),
            "/api/tts",
        ),
        (
            "err-json",
            400,
            "BAD_REQUEST",
            b"{\"text\": ".to_vec(),
            "/api/tts",
        ),
        (
            "err-type",
            400,
            "BAD_REQUEST",
            json!({"text": 42}).to_string().into_bytes(),
            "/api/tts",
        ),
        (
            "err-field",
            400,
            "BAD_REQUEST",
            json!({"text": "hi", "sped": 2}).to_string().into_bytes(),
            "/api/tts",
        ),
        (
            "err-body",
            413,
            "BODY_TOO_LARGE",
            big_body.into_bytes(),
            "/api/tts",
        ),
        (
            "err-speed",
            400,
            "INVALID_PARAMETER",
            json!({"text": "hi", "speed": 10}).to_string().into_bytes(),
            "/api/tts",
        ),
        (
            "err-speaker",
            400,
            "INVALID_PARAMETER",
            json!({"text": "hi", "speaker": 3}).to_string().into_bytes(),
            "/api/tts",
        ),
        (
            "err-control",
            400,
            "UNSUPPORTED_CONTROL",
            json!({"text": "hi", "top_k": 5, "emotion": [0, 0, 0, 0, 0, 0, 0, 1]})
                .to_string()
                .into_bytes(),
            "/api/tts",
        ),
        (
            "err-oa-control",
            400,
            "UNSUPPORTED_CONTROL",
            json!({"input": "hi", "emo_alpha": 0.5})
                .to_string()
                .into_bytes(),
            "/v1/audio/speech",
        ),
        (
            "err-format",
            400,
            "UNSUPPORTED_FORMAT",
            json!({"input": "hi", "response_format": "aac"})
                .to_string()
                .into_bytes(),
            "/v1/audio/speech",
        ),
        (
            "err-oa-empty",
            400,
            "TEXT_EMPTY",
            json!({"input": "", "model": "tts-1"})
                .to_string()
                .into_bytes(),
            "/v1/audio/speech",
        ),
    ];
    for (rid, status, code, body, path) in &cases {
        let r = http(
            n.port,
            "POST",
            path,
            &[("Content-Type", "application/json"), ("X-Request-Id", rid)],
            body,
        );
        assert_eq!(
            r.status,
            *status,
            "{rid}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        assert_eq!(j["error"]["code"], *code, "{rid}");
        assert_eq!(j["error"]["request_id"], *rid, "{rid}");
        assert!(j["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(r.header("x-request-id"), Some(*rid));
        if *rid == "err-control" {
            assert_eq!(
                j["error"]["message"],
                "voice en_US-joe-medium (piper engine) does not support emotion, top_k; \
                 it supports speaker, noise_scale, speed, noise_w"
            );
        }
    }
    // An insane request id is replaced, not echoed.
    let r = post_json(
        n.port,
        "/api/tts",
        &json!({"text": ""}),
        &[("X-Request-Id", "bad id with spaces")],
    );
    assert_ne!(r.header("x-request-id"), Some("bad id with spaces"));

    let errors = events_where(&rx, cases.len(), |m| {
        m.standard["level"] == 3 && field_str(m, "error_code").is_some()
    });
    for (rid, _, code, _, _) in &cases {
        let mine: Vec<_> = errors
            .iter()
            .filter(|m| field_str(m, "request_id") == Some(*rid))
            .collect();
        assert_eq!(mine.len(), 1, "one ERROR event for {rid}");
        assert_eq!(field_str(mine[0], "error_code"), Some(*code));
        assert_eq!(field_str(mine[0], "node_id"), Some("node-errors"));
        // Attributed at the source from the node's rule file.
        for f in [
            "component",
            "error_category",
            "severity",
            "root_cause",
            "solution",
        ] {
            assert!(
                field_str(mine[0], f).is_some_and(|v| !v.is_empty()),
                "{rid}: {f} missing"
            );
        }
        assert_ne!(
            field_str(mine[0], "error_category"),
            Some("unknown"),
            "{rid}"
        );
    }
    assert!(
        rx.lock()
            .accepted
            .iter()
            .all(|m| short_message(m) != COMPLETED),
        "no failed request logged a completion"
    );
    // The node survived all of it.
    assert_eq!(http(n.port, "GET", "/healthz", &[], b"").status, 200);
    let metrics = String::from_utf8(http(n.port, "GET", "/metrics", &[], b"").body).unwrap();
    assert!(
        metrics.contains("tts_errors_total{code=\"TEXT_EMPTY\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("tts_gelf_sent_total"));
    assert!(rx.lock().dropped_fields.is_empty());
    node::assert_fields_catalogued(&rx);
}

#[test]
fn three_nodes_ship_to_one_receiver_separable_by_node_id() {
    let _serial = node::serial();
    let rx = GelfReceiver::start();
    let cluster = Cluster::start("cluster", 3, &[("GELF_ENDPOINT", rx.endpoint())]);
    let mut want = HashMap::new();
    for i in 1..=3u16 {
        for k in 0..i {
            let r = post_json(
                cluster.node_port(i),
                "/api/tts",
                &json!({"text": format!("Node {i}, request {k}.")}),
                &[],
            );
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-node-id"), Some(cluster.node_id(i).as_str()));
        }
        want.insert(cluster.node_id(i), usize::from(i));
    }
    let status = cluster.script("status.sh", &["--all"], &[]);
    assert!(status.status.success());
    let events = events_where(&rx, 6, |m| short_message(m) == COMPLETED);
    let mut got: HashMap<String, usize> = HashMap::new();
    for e in &events {
        *got.entry(field_str(e, "node_id").unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    assert_eq!(got, want);
    let ports: Vec<u16> = (1..=3).map(|i| cluster.node_port(i)).collect();
    drop(cluster);
    for p in ports {
        assert!(node_pids_on_port(p).is_empty());
    }
}

#[test]
fn overload_gets_queue_full_and_the_node_stays_up() {
    let _serial = node::serial();
    let env = vec![
        ("TTS_QUEUE_SIZE", "2".to_string()),
        ("TTS_WORKERS", "1".to_string()),
    ];
    let n = Node::start("overload", &env);
    let port = n.port;
    let text =
        "This sentence keeps the only worker busy for a little while, so that the queue fills.";
    let handles: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || post_json(port, "/api/tts", &json!({"text": text}), &[]))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.status == 200).count();
    let full: Vec<_> = results.iter().filter(|r| r.status == 503).collect();
    assert!(ok >= 1, "some requests succeed");
    assert!(!full.is_empty(), "some requests are refused");
    assert_eq!(ok + full.len(), results.len(), "only 200 or 503");
    for r in &full {
        assert_eq!(r.json()["error"]["code"], "QUEUE_FULL");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    for r in results.iter().filter(|r| r.status == 200) {
        assert!(Wav::parse(&r.body).is_ok());
    }
    let pid = n.pid().expect("pid");
    let rss_mib = node::rss_kib(pid).unwrap_or(0) / 1024;
    eprintln!(
        "overload: {ok} ok, {} QUEUE_FULL, RSS {rss_mib} MiB",
        full.len()
    );
    assert!(rss_mib < 2048, "RSS stays bounded: {rss_mib} MiB");
    assert_eq!(http(port, "GET", "/healthz", &[], b"").status, 200);
    assert_eq!(http(port, "GET", "/readyz", &[], b"").status, 200);
}

#[test]
fn sigterm_finishes_queued_requests_and_flushes_gelf() {
    let _serial = node::serial();
    let rx = GelfReceiver::start();
    let n = Node::start("sigterm", &gelf_env(&rx, "node-term"));
    let port = n.port;
    let handles: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                post_json(
                    port,
                    "/api/tts",
                    &json!({"text": "Finishing what was asked before stopping."}),
                    &[("X-Request-Id", if i == 0 { "term-0" } else { "term-1" })],
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let stop = n.stop();
    assert!(stop.status.success());
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "queued request finished during shutdown");
    }
    let stopped = events_where(&rx, 1, |m| short_message(m) == "Node stopped");
    assert_eq!(
        stopped.len(),
        1,
        "the last event arrived: the guard flushed on exit"
    );
    assert_eq!(
        events_where(&rx, 2, |m| short_message(m) == COMPLETED).len(),
        2
    );
    assert!(node_pids_on_port(port).is_empty());
}

/// Runs the release binary directly (the scripts would stop a node already on
/// the port), expecting it to fail at start.
fn failed_start(rx: &GelfReceiver, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    node::require_node_prerequisites();
    let out = std::process::Command::new(node::node_bin())
        .args(args)
        .envs(env.iter().copied())
        .args(["--gelf", &rx.endpoint(), "--node-id", "node-start-fail"])
        .current_dir(node::root())
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run tts-node");
    assert!(!out.status.success(), "the node must not start");
    out
}

#[test]
fn start_failures_are_told_apart_by_error_code() {
    let _serial = node::serial();
    let rx = GelfReceiver::start();

    // The port is taken: LISTEN_FAIL, not a model failure.
    let port = node::free_port_run(1);
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = failed_start(&rx, &["--port", &port.to_string()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    // A voice that is not there: MODEL_LOAD_FAIL.
    let port = node::free_port_run(1);
    let out = failed_start(
        &rx,
        &[
            "--port",
            &port.to_string(),
            "--voice",
            "en_US-nobody-medium",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("en_US-nobody-medium"), "{stderr}");
    // espeak-ng's data missing: the start fails with a message (espeak's own
    // initialisation would exit() the process on the first request).
    let empty = node::run_dir("no-espeak-data");
    std::fs::create_dir_all(empty.join("espeak-ng-data")).unwrap();
    let out = failed_start(
        &rx,
        &["--port", &port.to_string()],
        &[("ESPEAK_DATA_PATH", empty.to_str().unwrap())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("espeak-ng initialisation failed"),
        "{stderr}"
    );

    let failed = events_where(&rx, 3, |m| short_message(m).contains("node failed"));
    let codes: Vec<_> = failed
        .iter()
        .map(|m| field_str(m, "error_code").unwrap_or_default())
        .collect();
    assert_eq!(codes, ["LISTEN_FAIL", "MODEL_LOAD_FAIL", "MODEL_LOAD_FAIL"]);
    for m in &failed {
        assert_eq!(m.standard["level"], 3, "ERROR");
        assert_eq!(field_str(m, "component"), Some("startup"));
        assert_eq!(field_str(m, "error_category"), Some("configuration"));
        assert_eq!(field_str(m, "severity"), Some("critical"));
        assert_eq!(field_str(m, "node_id"), Some("node-start-fail"));
    }
    assert!(field_str(&failed[0], "solution").is_some_and(|s| s.contains("TTS_PORT")));
    assert!(rx.lock().dropped_fields.is_empty());
    node::assert_fields_catalogued(&rx);
}

/// One sample of a scrape: `name{labels} value` (labels as written).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in the scrape:\n{text}"))
}

fn scrape(port: u16) -> String {
    let r = http(port, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    String::from_utf8(r.body).expect("UTF-8 metrics")
}

/// The spool on a full disk, as an operator would meet it: Graylog down, a
/// 1 MiB spool file system, 72,000 failing requests (one ERROR event of
/// about 650 bytes each): the spool fills after about 1,600 events, the
/// memory queue (65,536 events) holds what it can, and the rest is refused.
/// What is refused is counted by cause in /metrics and on stderr;
/// `spool_bytes` is what the files hold; once Graylog is back, nothing stays
/// queued, `sent + dropped == emitted`, and Graylog holds exactly `sent`
/// events.
#[test]
fn a_full_spool_disk_loses_nothing_uncounted() {
    let _serial = node::serial();
    let Some(fs) = e2e::mounts::Tmpfs::mount("node-spool", "1m") else {
        return;
    };
    let gelf_port = node::free_port();
    let env = vec![
        ("GELF_ENDPOINT", format!("tcp://127.0.0.1:{gelf_port}")),
        ("GELF_SPOOL_DIR", fs.path().display().to_string()),
        ("NODE_ID", "node-full-disk".to_string()),
    ];
    let n = Node::start("full-spool-disk", &env);
    let port = n.port;
    let requests = 72_000usize;
    let t = std::time::Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut bad = 0;
                for _ in 0..requests / 8 {
                    let r = post_json(port, "/api/tts", &json!({"text": "   "}), &[]);
                    bad += usize::from(r.status != 400);
                }
                bad
            })
        })
        .collect();
    let unexpected: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(unexpected, 0, "every blank text gets 400");
    eprintln!("{requests} requests in {:?}", t.elapsed());
    // After spool_after (5 s) the memory queue goes to the spool, which
    // fills; wait until the queue has settled.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = f64::NAN;
    let m = loop {
        std::thread::sleep(Duration::from_millis(500));
        let m = scrape(port);
        let queued = metric(&m, "tts_gelf_queued");
        let io = metric(&m, "tts_gelf_dropped_total{cause=\"spool_io\"}");
        if (io > 0.0 && queued == last) || std::time::Instant::now() > deadline {
            break m;
        }
        last = queued;
    };
    let spool_bytes = metric(&m, "tts_gelf_spool_bytes") as u64;
    assert_eq!(
        spool_bytes,
        fs.file_bytes(".spool"),
        "spool_bytes is what the files hold"
    );
    assert!(spool_bytes <= 1024 * 1024);
    let spool_io = metric(&m, "tts_gelf_dropped_total{cause=\"spool_io\"}");
    assert!(spool_io > 0.0, "the full disk refused events");

    let rx = GelfReceiver::start_on(gelf_port).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut m = scrape(port);
    while metric(&m, "tts_gelf_queued") > 0.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        m = scrape(port);
    }
    assert_eq!(
        metric(&m, "tts_gelf_queued"),
        0.0,
        "nothing stays queued:\n{m}"
    );
    let emitted = metric(&m, "tts_gelf_emitted_total");
    let sent = metric(&m, "tts_gelf_sent_total");
    let dropped: f64 = [
        "queue_full",
        "shutdown",
        "rejected",
        "spool_full",
        "spool_corrupt",
        "spool_io",
    ]
    .iter()
    .map(|c| metric(&m, &format!("tts_gelf_dropped_total{{cause=\"{c}\"}}")))
    .sum();
    assert_eq!(sent + dropped, emitted, "every event sent or dropped:\n{m}");
    assert_eq!(metric(&m, "tts_gelf_spool_bytes"), 0.0);
    rx.wait_quiet(Duration::from_millis(500), Duration::from_secs(10));
    let r = rx.lock();
    let notices: Vec<_> = r
        .accepted
        .iter()
        .filter(|a| a.fields.contains_key("gelf_dropped"))
        .collect();
    assert_eq!(
        (r.accepted.len() - notices.len()) as f64,
        sent,
        "Graylog holds exactly the sent events"
    );
    let told: u64 = notices
        .iter()
        .filter_map(|a| {
            a.fields
                .get("gelf_dropped_spool_io")
                .and_then(|v| v.as_u64())
        })
        .sum();
    assert_eq!(
        told as f64,
        metric(&m, "tts_gelf_dropped_total{cause=\"spool_io\"}")
    );
    drop(r);
    assert!(
        n.log().contains("events dropped (spool_io)"),
        "stderr says what was lost and why"
    );
    eprintln!(
        "full spool disk: emitted={emitted} sent={sent} dropped={dropped} (spool_io {spool_io})"
    );
}

/// A live scrape passes `promtool check metrics` (Prometheus's own linter).
#[test]
fn the_metrics_pass_promtool() {
    let _serial = node::serial();
    let rx = GelfReceiver::start();
    let n = Node::start("promtool", &gelf_env(&rx, "node-promtool"));
    post_json(n.port, "/api/tts", &json!({"text": ""}), &[]);
    let url = format!("{}/metrics", n.url());
    let out = script("check-prometheus.sh", &["--metrics", &url], &[]);
    assert!(out.status.success(), "promtool check metrics failed");
}
