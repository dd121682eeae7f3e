//! Trace correlation (gelf-tracing's `opentelemetry` feature): with
//! tracing-opentelemetry's layer in the same subscriber, each GELF event
//! carries the trace and span ids of the span it is in, exactly those the
//! OpenTelemetry span has; outside a span, none. Real TCP to the receiver
//! that applies Graylog's rules.

use std::time::Duration;

use e2e::{field_str, short_message, GelfReceiver};
use gelf_tracing::fields::{SPAN_ID, TRACE_ID};
use gelf_tracing::GelfLayer;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::prelude::*;

/// The OpenTelemetry ids of a tracing span, as hex.
fn otel_ids(span: &tracing::Span) -> (String, String) {
    let cx = span.context();
    let otel = cx.span();
    let sc = otel.span_context();
    assert!(sc.is_valid(), "the span has an OpenTelemetry context");
    (sc.trace_id().to_string(), sc.span_id().to_string())
}

/// Waits (up to 10 s) until the receiver has parsed `n` messages.
fn wait_for(rx: &GelfReceiver, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rx.lock().accepted.len() < n && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The layer, shipping to `rx` over TCP.
fn gelf_to(rx: &GelfReceiver) -> (GelfLayer, gelf_tracing::GelfGuard) {
    GelfLayer::builder()
        .endpoint(&rx.endpoint())
        .expect("endpoint")
        .build()
        .expect("layer")
}

#[test]
fn events_carry_the_opentelemetry_ids_of_their_span() {
    let rx = GelfReceiver::start();
    let (gelf, guard) = gelf_to(&rx);
    let provider = SdkTracerProvider::builder().build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("gelf-otel-test"));
    let subscriber = tracing_subscriber::registry().with(otel).with(gelf);

    let want = tracing::subscriber::with_default(subscriber, || {
        tracing::info!("outside any span");
        let request = tracing::info_span!("request", request_id = "otel-1");
        let step = tracing::info_span!(parent: &request, "step");
        let other = tracing::info_span!("another_request");
        let ids = (otel_ids(&request), otel_ids(&step), otel_ids(&other));
        request.in_scope(|| tracing::info!("in the request"));
        step.in_scope(|| tracing::warn!("in a step"));
        other.in_scope(|| tracing::info!("in another request"));
        // An explicit parent, not the current span, decides.
        request.in_scope(|| tracing::info!(parent: &other, "explicit parent"));
        ids
    });
    guard.flush(Duration::from_secs(10)).unwrap();
    wait_for(&rx, 5);
    let ((req_trace, req_span), (step_trace, step_span), (other_trace, other_span)) = want;

    let got = |msg: &str| {
        let r = rx.lock();
        let m = r
            .accepted
            .iter()
            .find(|m| short_message(m) == msg)
            .unwrap_or_else(|| panic!("no event {msg:?}"));
        (
            field_str(m, TRACE_ID).map(str::to_owned),
            field_str(m, SPAN_ID).map(str::to_owned),
        )
    };
    assert_eq!(got("outside any span"), (None, None));
    assert_eq!(
        got("in the request"),
        (Some(req_trace.clone()), Some(req_span.clone()))
    );
    assert_eq!(
        got("in a step"),
        (Some(step_trace.clone()), Some(step_span))
    );
    assert_eq!(
        step_trace, req_trace,
        "a child span is in its parent's trace"
    );
    assert_eq!(
        got("in another request"),
        (Some(other_trace.clone()), Some(other_span.clone()))
    );
    assert_ne!(other_trace, req_trace, "another root span, another trace");
    assert_eq!(
        got("explicit parent"),
        (Some(other_trace.clone()), Some(other_span))
    );
    assert_eq!(req_trace.len(), 32);
    assert_eq!(req_span.len(), 16);
    assert!(req_trace
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let r = rx.lock();
    assert!(r.dropped_fields.is_empty(), "{:?}", r.dropped_fields);
    assert!(r.rejected.is_empty());
}

#[test]
fn without_an_opentelemetry_layer_no_ids_are_sent() {
    let rx = GelfReceiver::start();
    let (gelf, guard) = gelf_to(&rx);
    let subscriber = tracing_subscriber::registry().with(gelf);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("request").in_scope(|| tracing::info!("in a span"));
    });
    guard.flush(Duration::from_secs(10)).unwrap();
    wait_for(&rx, 1);
    let r = rx.lock();
    let m = r
        .accepted
        .iter()
        .find(|m| short_message(m) == "in a span")
        .expect("event");
    assert!(field_str(m, TRACE_ID).is_none() && field_str(m, SPAN_ID).is_none());
    assert_eq!(field_str(m, "span"), Some("request"));
}
