//! Every transport against a real receiver on a loopback socket: UDP chunking
//! and compression, TLS (with a wrong CA and mutual TLS), HTTP (202, and 503
//! for a while), and failover between two endpoints with return to the first.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::receivers::{HttpReceiver, TestPki, TlsReceiver, UdpReceiver};
use e2e::{field_str, GelfReceiver, Inbox};
use gelf_tracing::{Compression, GelfLayer, GelfLayerBuilder, Stats, TransportError};
use tracing_subscriber::prelude::*;

fn builder(endpoint: &str) -> GelfLayerBuilder {
    GelfLayer::builder()
        .endpoint(endpoint)
        .unwrap()
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .stderr_interval(Duration::from_secs(3600))
}

/// Emits `n` events numbered from `from` through a fresh layer and returns
/// the stats after the guard's flush.
fn emit(b: GelfLayerBuilder, from: u64, n: u64, long: usize) -> Stats {
    let (layer, guard) = b.build().unwrap();
    let body = "x".repeat(long);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in from..from + n {
            if long > 0 {
                tracing::info!(seq = i, "line one\n{body}");
            } else {
                tracing::info!(seq = i, "event {i}");
            }
        }
    });
    let h = guard.handle();
    drop(guard);
    h.stats()
}

fn seqs(inbox: &Inbox) -> HashSet<u64> {
    inbox
        .lock()
        .accepted
        .iter()
        .filter_map(|m| m.fields.get("seq").and_then(|v| v.as_u64()))
        .collect()
}

#[test]
fn udp_single_and_chunked_messages_with_each_compression() {
    for c in [Compression::Gzip, Compression::Zlib, Compression::None] {
        let rx = UdpReceiver::start();
        // 50 small messages (one datagram each) and 5 of ~40 KB (chunked).
        let s1 = emit(builder(&rx.endpoint()).udp_compression(c), 0, 50, 0);
        let s2 = emit(
            builder(&rx.endpoint())
                .udp_compression(c)
                .udp_chunk_size(1420),
            50,
            5,
            40_000,
        );
        assert_eq!((s1.sent, s2.sent), (50, 5), "{c:?}");
        assert_eq!(rx.wait_for(55, Duration::from_secs(5)), 55, "{c:?}");
        let got = seqs(&rx);
        assert_eq!(got, (0..55).collect(), "{c:?}");
        let r = rx.lock();
        assert!(
            r.rejected.is_empty() && r.dropped_fields.is_empty(),
            "{c:?}"
        );
        assert!(r.protocol_errors.is_empty(), "{:?}", r.protocol_errors);
        let expected = match c {
            Compression::Gzip => "gzip",
            Compression::Zlib => "zlib",
            _ => "plain",
        };
        assert_eq!(r.encodings.get(expected), Some(&55), "{c:?}");
        if c == Compression::None {
            // 40 KB of plain JSON needs ~29 chunks of 1408 bytes.
            assert_eq!(r.chunked, 5);
            assert!(r.max_chunks >= 28, "{}", r.max_chunks);
        }
        let long = r
            .accepted
            .iter()
            .find(|m| m.fields.get("seq").and_then(|v| v.as_u64()) == Some(52))
            .unwrap();
        let full = long.standard["full_message"].as_str().unwrap();
        assert!(full.len() > 40_000 && full.ends_with('x'), "{}", full.len());
    }
}

#[test]
fn udp_message_over_128_chunks_is_cut_to_fit_not_discarded() {
    let rx = UdpReceiver::start();
    let s = emit(
        builder(&rx.endpoint())
            .udp_compression(Compression::None)
            .udp_chunk_size(1420),
        0,
        1,
        600_000,
    );
    assert_eq!((s.sent, s.truncated), (1, 1));
    assert_eq!(rx.wait_for(1, Duration::from_secs(5)), 1);
    let r = rx.lock();
    assert!(r.protocol_errors.is_empty(), "{:?}", r.protocol_errors);
    assert!(
        (120..=128).contains(&r.max_chunks),
        "chunks used: {}, full_message {} bytes",
        r.max_chunks,
        r.accepted[0].standard["full_message"]
            .as_str()
            .unwrap()
            .len()
    );
    assert_eq!(field_str(&r.accepted[0], "truncated"), Some("true"));
}

#[test]
fn tls_delivers_with_the_right_ca_and_names_the_problem_with_a_wrong_one() {
    let pki = TestPki::generate("tls");
    let rx = TlsReceiver::start(pki.server_config(false));
    let s = emit(builder(&rx.endpoint()).tls_ca_file(&pki.ca_file), 0, 500, 0);
    assert_eq!((s.sent, s.dropped), (500, 0));
    assert_eq!(rx.wait_for(500, Duration::from_secs(5)), 500);
    assert_eq!(seqs(&rx), (0..500).collect());

    let other = TestPki::generate("other-ca");
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e2 = Arc::clone(&errors);
    let s = emit(
        builder(&rx.endpoint())
            .tls_ca_file(&other.ca_file)
            .flush_timeout(Duration::from_millis(300))
            .on_error(move |e: &TransportError| e2.lock().unwrap().push(e.to_string())),
        0,
        3,
        0,
    );
    assert_eq!((s.sent, s.dropped), (0, 3));
    let errors = errors.lock().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("TLS handshake") && e.contains("UnknownIssuer")),
        "{errors:?}"
    );
    assert!(s.endpoints[0].failed >= 1);
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let pki = TestPki::generate("mtls");
    let rx = TlsReceiver::start(pki.server_config(true));
    let s = emit(
        builder(&rx.endpoint())
            .tls_ca_file(&pki.ca_file)
            .tls_client_cert(&pki.client_cert, &pki.client_key),
        0,
        100,
        0,
    );
    assert_eq!(s.sent, 100);
    assert_eq!(rx.wait_for(100, Duration::from_secs(5)), 100);

    // Without a client certificate the server refuses the handshake: nothing
    // is delivered, and the messages are counted, not lost silently.
    let before = rx.count();
    let s = emit(
        builder(&rx.endpoint())
            .tls_ca_file(&pki.ca_file)
            .flush_timeout(Duration::from_millis(500)),
        100,
        5,
        0,
    );
    assert_eq!(s.sent + s.dropped, 5);
    assert_eq!(s.dropped, 5, "{s:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rx.count(), before);
    assert!(
        rx.lock()
            .protocol_errors
            .iter()
            .any(|e| e.contains("TLS handshake")),
        "{:?}",
        rx.lock().protocol_errors
    );
}

#[test]
fn bad_tls_files_fail_at_build_naming_the_setting() {
    let err = builder("tls://localhost:1")
        .tls_ca_file("/nonexistent/ca.pem")
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls_ca_file"), "{err}");
    let pki = TestPki::generate("badkey");
    let err = builder("tls://localhost:1")
        .tls_ca_file(&pki.ca_file)
        .tls_client_cert(&pki.client_cert, &pki.ca_file)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls_client_cert"), "{err}");
}

#[test]
fn http_delivers_each_message_once_with_202() {
    for c in [Compression::None, Compression::Gzip] {
        let rx = HttpReceiver::start();
        let s = emit(builder(&rx.endpoint()).http_compression(c), 0, 300, 0);
        assert_eq!((s.sent, s.dropped), (300, 0), "{c:?}");
        assert_eq!(rx.count(), 300, "answered 202 means received");
        assert_eq!(seqs(&rx), (0..300).collect());
        let r = rx.lock();
        assert_eq!(r.connections, 1, "keep-alive: one connection");
        let enc = if c == Compression::Gzip {
            "gzip"
        } else {
            "plain"
        };
        assert_eq!(r.encodings.get(enc), Some(&300));
    }
}

#[test]
fn http_503_for_a_while_loses_nothing() {
    let rx = HttpReceiver::refusing_for(Duration::from_millis(800));
    let s = emit(
        builder(&rx.endpoint())
            .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(200)),
        0,
        200,
        0,
    );
    assert_eq!((s.sent, s.dropped), (200, 0), "{s:?}");
    // At least once: every message arrived (a retried one could arrive twice).
    assert_eq!(seqs(&rx), (0..200).collect());
    let r = rx.lock();
    assert!(r.refused >= 2, "the server refused first: {}", r.refused);
    assert!(s.endpoints[0].failed >= 2);
}

#[test]
fn http_body_cap_follows_graylog_default() {
    let rx = HttpReceiver::start();
    let s = emit(builder(&rx.endpoint()), 0, 1, 200_000);
    assert_eq!((s.sent, s.truncated), (1, 1));
    let r = rx.lock();
    assert!(r.protocol_errors.is_empty(), "{:?}", r.protocol_errors);
    assert_eq!(field_str(&r.accepted[0], "truncated"), Some("true"));
}

#[test]
fn failover_to_the_second_endpoint_and_back_to_the_first() {
    let a = GelfReceiver::start();
    let b = GelfReceiver::start();
    let port_a = a.port();
    let list = format!("{},{}", a.endpoint(), b.endpoint());
    let (layer, guard) = builder(&list)
        .failback_after(Duration::from_millis(300))
        .build()
        .unwrap();
    let handle = guard.handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let send = |from: u64, n: u64| {
        tracing::dispatcher::with_default(&dispatch, || {
            for i in from..from + n {
                tracing::info!(seq = i, "event {i}");
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        handle.flush(Duration::from_secs(5)).unwrap();
    };
    send(0, 500);
    assert_eq!(a.wait_for(500, Duration::from_secs(5)), 500);
    assert_eq!(b.count(), 0, "the first endpoint is preferred");
    assert_eq!(handle.stats().current_endpoint, Some(0));

    let on_a = a.kill();
    send(500, 500);
    let s = handle.stats();
    assert_eq!(s.current_endpoint, Some(1), "{s:?}");
    assert!(b.wait_for(450, Duration::from_secs(5)) >= 450);

    let a2 = GelfReceiver::start_on(port_a).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    send(1000, 500);
    assert!(a2.wait_for(450, Duration::from_secs(5)) >= 450);
    let s = handle.stats();
    assert_eq!(s.current_endpoint, Some(0), "traffic went back: {s:?}");

    // Accounting: every event sent or dropped; what reached a receiver is
    // what was counted sent, give or take frames in a socket the kill cut.
    drop(guard);
    let s = handle.stats();
    assert_eq!(s.emitted, s.sent + s.dropped);
    let mut all: HashSet<u64> = on_a
        .accepted
        .iter()
        .filter_map(|m| m.fields.get("seq").and_then(|v| v.as_u64()))
        .collect();
    all.extend(seqs(&b));
    all.extend(seqs(&a2));
    let lost = 1500 - all.len() as u64;
    assert!(lost <= 200, "lost {lost} in the killed connection");
    assert!(
        s.endpoints[0].sent >= 900 && s.endpoints[1].sent >= 450,
        "{s:?}"
    );
}
