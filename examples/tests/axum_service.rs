//! The example service against a real GELF receiver: real HTTP requests on a
//! loopback socket, the layer built as the example builds it, and what Graylog
//! would store checked field by field.

use std::time::Duration;

use e2e::{field_str, short_message, GelfReceiver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing_subscriber::prelude::*;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.expect("read");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = resp
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

// current_thread: the server task runs on the test's thread, under its default subscriber.
#[tokio::test(flavor = "current_thread")]
async fn greeter_requests_arrive_in_graylog_with_span_fields_and_attribution() {
    let receiver = GelfReceiver::start();
    let (gelf, guard) = gelf_tracing::GelfLayer::builder()
        .endpoint(&receiver.endpoint())
        .unwrap()
        .static_field("service", "greeter")
        .attribution(examples::attribution_rules().unwrap())
        .build()
        .unwrap();
    let _default = tracing_subscriber::registry().with(gelf).set_default();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, examples::router()).await });

    let (status, body) = get(addr, "/greet/Ada").await;
    assert_eq!((status, body.as_str()), (200, "Hello, Ada!"));
    let long = "x".repeat(examples::MAX_NAME_CHARS + 1);
    let (status, body) = get(addr, &format!("/greet/{long}")).await;
    assert_eq!(status, 400);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error_code"], "NAME_TOO_LONG");

    guard.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(receiver.wait_for(2, Duration::from_secs(5)), 2);
    let got = receiver.take();
    assert!(
        got.rejected.is_empty() && got.dropped_fields.is_empty(),
        "{got:?}"
    );

    let greeted = got
        .accepted
        .iter()
        .find(|m| short_message(m) == "greeted")
        .expect("the greeted event");
    assert_eq!(field_str(greeted, "route"), Some("/greet/{name}"));
    assert_eq!(field_str(greeted, "service"), Some("greeter"));
    assert_eq!(field_str(greeted, "span"), Some("request"));
    assert_eq!(greeted.fields["name_chars"], 3, "an integer, not a string");
    let first_id = field_str(greeted, "request_id").expect("request_id from the span");

    let refused = got
        .accepted
        .iter()
        .find(|m| field_str(m, "error_code") == Some("NAME_TOO_LONG"))
        .expect("the refusal");
    assert_eq!(refused.standard["level"], 4, "WARN");
    assert_eq!(field_str(refused, "component"), Some("greeter"));
    assert_eq!(field_str(refused, "error_category"), Some("client_input"));
    assert_eq!(field_str(refused, "severity"), Some("minor"));
    assert!(field_str(refused, "solution").is_some_and(|s| s.contains("client")));
    let second_id = field_str(refused, "request_id").expect("request_id from the span");
    assert_ne!(first_id, second_id, "each request its own id");
}
