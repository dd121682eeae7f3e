//! The GELF layer end to end over a real loopback TCP socket, checked by a
//! receiver that applies Graylog's rules: what arrives, with which types, and
//! that Graylog would keep every field.

use std::time::Duration;

use e2e::{field_str, short_message, GelfReceiver};
use gelf_tracing::{GelfGuard, GelfLayer};
use tracing::instrument::WithSubscriber;
use tracing_subscriber::prelude::*;

fn layer_for(rx: &GelfReceiver) -> (GelfLayer, GelfGuard) {
    GelfLayer::builder()
        .endpoint(&rx.endpoint())
        .unwrap()
        .host("test-host")
        .static_field("node_id", "node-static")
        .static_field("region", "eu-1")
        .redact_value(r"Bearer [A-Za-z0-9._-]+")
        .build()
        .unwrap()
}

#[derive(Debug)]
struct Inner;
impl std::fmt::Display for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CUDA out of memory")
    }
}
impl std::error::Error for Inner {}

#[derive(Debug)]
struct Outer(Inner);
impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inference failed")
    }
}
impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn events_arrive_typed_with_span_fields_and_nothing_dropped() {
    let rx = GelfReceiver::start();
    let (layer, guard) = layer_for(&rx);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!(
            "request",
            node_id = "node-span",
            request_id = "r-outer",
            attempt = 1u64
        );
        let _o = outer.enter();
        let inner = tracing::info_span!(
            "synthesize",
            request_id = "r-42",
            voice = tracing::field::Empty
        );
        inner.record("voice", "joe");
        let _i = inner.enter();
        tracing::info!(
            duration_ms = 412u64,
            offset = -3i64,
            gpu_memory_used_gb = 3.25f64,
            ratio = f64::NAN,
            cached = true,
            empty = "",
            password = "hunter2",
            authorization = "Bearer abc.def",
            note = "token Bearer xyz.123 seen",
            big = u64::MAX,
            debug_val = ?vec![1, 2],
            "Audio generation completed"
        );
        tracing::warn!("two\nlines");
        let err = Outer(Inner);
        tracing::error!(
            error = &err as &(dyn std::error::Error + 'static),
            error_code = "CUDA_OOM",
            "synthesis failed"
        );
        tracing::debug!(user_id = 7u64, "");
    });
    let stats_before = guard.stats();
    drop(guard);
    assert_eq!(rx.wait_for(4, Duration::from_secs(5)), 4);
    let r = rx.lock();
    assert!(r.rejected.is_empty(), "rejected: {:?}", r.rejected);
    assert!(
        r.dropped_fields.is_empty(),
        "Graylog would drop: {:?}",
        r.dropped_fields
    );
    assert!(r.protocol_errors.is_empty(), "{:?}", r.protocol_errors);
    assert_eq!(stats_before.emitted, 4);

    let m = &r.accepted[0];
    assert_eq!(m.standard["version"], "1.1");
    assert_eq!(m.standard["host"], "test-host");
    assert_eq!(short_message(m), "Audio generation completed");
    assert!(m.standard.get("full_message").is_none());
    assert_eq!(m.standard["level"], 6);
    assert!(!m.timestamp_replaced);
    let ts = m.standard["timestamp"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - ts).abs() < 60.0, "timestamp {ts} vs now {now}");
    // Event fields typed, span fields merged innermost-first, statics last.
    assert_eq!(m.fields["duration_ms"], 412);
    assert_eq!(m.fields["offset"], -3);
    assert_eq!(m.fields["gpu_memory_used_gb"], 3.25);
    assert_eq!(m.fields["ratio"], "NaN");
    assert_eq!(m.fields["cached"], "true");
    assert_eq!(m.fields["empty"], "(empty)");
    assert_eq!(m.fields["big"], u64::MAX.to_string());
    assert_eq!(m.fields["debug_val"], "[1, 2]");
    assert_eq!(field_str(m, "request_id"), Some("r-42"));
    assert_eq!(field_str(m, "voice"), Some("joe"));
    assert_eq!(m.fields["attempt"], 1);
    assert_eq!(field_str(m, "node_id"), Some("node-span"));
    assert_eq!(field_str(m, "region"), Some("eu-1"));
    // Redaction by name and by value pattern.
    assert_eq!(field_str(m, "password"), Some("[REDACTED]"));
    assert_eq!(field_str(m, "authorization"), Some("[REDACTED]"));
    assert_eq!(field_str(m, "note"), Some("token [REDACTED] seen"));
    // Metadata.
    assert_eq!(field_str(m, "span"), Some("request:synthesize"));
    assert_eq!(field_str(m, "target"), Some("layer"));
    assert_eq!(field_str(m, "file"), Some(file!()));
    assert!(m.fields["line"].as_u64().unwrap() > 0);
    assert!(field_str(m, "module_path").is_some());

    let w = &r.accepted[1];
    assert_eq!(w.standard["level"], 4);
    assert_eq!(short_message(w), "two");
    assert_eq!(w.standard["full_message"], "two\nlines");

    let e = &r.accepted[2];
    assert_eq!(e.standard["level"], 3);
    assert_eq!(field_str(e, "error"), Some("inference failed"));
    assert_eq!(field_str(e, "error_code"), Some("CUDA_OOM"));
    let full = e.standard["full_message"].as_str().unwrap();
    assert!(full.contains("synthesis failed"), "{full}");
    assert!(full.contains("caused by: CUDA out of memory"), "{full}");

    let d = &r.accepted[3];
    assert_eq!(d.standard["level"], 7);
    assert!(
        short_message(d).starts_with("event "),
        "blank message falls back: {:?}",
        short_message(d)
    );
}

#[test]
fn oversize_messages_are_cut_not_lost() {
    let rx = GelfReceiver::start();
    let (layer, guard) = GelfLayer::builder()
        .endpoint(&rx.endpoint())
        .unwrap()
        .max_message_bytes(8 * 1024)
        .build()
        .unwrap();
    let huge = "x".repeat(100_000);
    let lines = "line of text\n".repeat(10_000);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(blob = %huge, "big field");
        tracing::info!("{lines}");
        tracing::info!(a = %huge, b = %huge, c = %"\u{1}".repeat(20_000), "{lines}");
    });
    let stats = guard.stats();
    drop(guard);
    assert_eq!(rx.wait_for(3, Duration::from_secs(5)), 3);
    let r = rx.lock();
    assert!(r.protocol_errors.is_empty() && r.rejected.is_empty() && r.dropped_fields.is_empty());
    assert_eq!(stats.truncated, 3);
    for m in &r.accepted {
        assert_eq!(field_str(m, "truncated"), Some("true"));
        let size = serde_json::to_vec(&m.fields).unwrap().len();
        assert!(size < 8 * 1024, "{size}");
    }
    assert_eq!(short_message(&r.accepted[1]), "line of text");
    assert!(field_str(&r.accepted[0], "blob").unwrap().ends_with('…'));
}

#[test]
fn default_cap_keeps_frames_under_graylogs_two_mib() {
    let rx = GelfReceiver::start();
    let (layer, guard) = layer_for(&rx);
    let three_mib = "y".repeat(3 * 1024 * 1024);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(payload = %three_mib, "very large");
        tracing::info!("after");
    });
    drop(guard);
    assert_eq!(rx.wait_for(2, Duration::from_secs(5)), 2);
    let r = rx.lock();
    assert!(r.protocol_errors.is_empty(), "{:?}", r.protocol_errors);
    assert_eq!(
        r.connections, 1,
        "the connection must survive the large message"
    );
    assert_eq!(short_message(&r.accepted[1]), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_inside_a_tokio_application() {
    let rx = GelfReceiver::start();
    let (layer, guard) = layer_for(&rx);
    let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        // The subscriber follows each task across the runtime's threads.
        let task = async move {
            for i in 0..250u64 {
                tracing::info!(task = t, i, "from a task");
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        };
        tasks.push(tokio::spawn(task.with_current_subscriber()));
    }
    for t in tasks {
        t.await.unwrap();
    }
    guard.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(guard.stats().sent, 2000);
    assert_eq!(rx.wait_for(2000, Duration::from_secs(5)), 2000);
}

#[test]
fn errors_arrive_classified_by_their_rules() {
    let rules = gelf_tracing::AttributionRules::from_toml(
        r#"
[[rule]]
code = "CUDA_OOM"
component = "gpu"
category = "resource"
severity = "critical"
root_cause = "GPU memory exhausted"
solution = "Lower TTS_WORKERS or shorten the text"

[[rule]]
code_prefix = "MODEL_"
component = "model_inference"
category = "model"
severity = "major"

[[rule]]
keywords = ["connection refused"]
component = "network"
category = "dependency"
severity = "minor"
"#,
    )
    .unwrap();
    let rx = GelfReceiver::start();
    let (layer, guard) = GelfLayer::builder()
        .endpoint(&rx.endpoint())
        .unwrap()
        .attribution(rules)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::error!(error_code = "CUDA_OOM", "alloc failed");
        tracing::error!(error_code = "MODEL_INFER_FAIL", "bad shape");
        tracing::warn!("upstream: Connection Refused");
        tracing::error!(error_code = "BRAND_NEW", "never seen before");
        tracing::error!(
            error_code = "CUDA_OOM",
            component = "allocator",
            "the event's own component stays"
        );
        tracing::info!(error_code = "CUDA_OOM", "INFO events are not classified");
    });
    let unknown = guard.unknown_error_codes();
    drop(guard);
    assert_eq!(rx.wait_for(6, Duration::from_secs(5)), 6);
    let r = rx.lock();
    assert!(r.dropped_fields.is_empty(), "{:?}", r.dropped_fields);
    let m = &r.accepted;
    assert_eq!(field_str(&m[0], "component"), Some("gpu"));
    assert_eq!(field_str(&m[0], "error_category"), Some("resource"));
    assert_eq!(field_str(&m[0], "severity"), Some("critical"));
    assert_eq!(field_str(&m[0], "root_cause"), Some("GPU memory exhausted"));
    assert_eq!(
        field_str(&m[0], "solution"),
        Some("Lower TTS_WORKERS or shorten the text")
    );
    assert_eq!(field_str(&m[1], "component"), Some("model_inference"));
    assert!(m[1].fields.get("root_cause").is_none());
    assert_eq!(field_str(&m[2], "component"), Some("network"));
    assert_eq!(field_str(&m[3], "error_category"), Some("unknown"));
    assert!(m[3].fields.get("component").is_none());
    assert_eq!(field_str(&m[4], "component"), Some("allocator"));
    assert_eq!(field_str(&m[4], "severity"), Some("critical"));
    assert!(m[5].fields.get("error_category").is_none());
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown["BRAND_NEW"], 1);
}
