//! Ship `tracing` events to Graylog as GELF 1.1, with one `.with(...)` line.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let (gelf, _guard) = gelf_tracing::GelfLayer::builder()
//!         .endpoint("tcp://graylog:12201")? // or leave out and set GELF_ENDPOINT
//!         .static_field("node_id", "tts-node-01")
//!         .build()?;
//!     tracing_subscriber::registry().with(gelf).init();
//!
//!     let span = tracing::info_span!("synthesize", request_id = "r-1").entered();
//!     tracing::info!(duration_ms = 412u64, char_count = 96u64, "Audio generation completed");
//!     drop(span);
//!     Ok(()) // `_guard` flushes here, within 5 s
//! }
//! ```
//!
//! # What is sent
//!
//! Every event becomes one GELF message with `version` "1.1", `host`,
//! `short_message` (the first line of the event's message, never blank),
//! `full_message` (when the message is multi-line, longer than
//! [`short_message_max_chars`](GelfLayerBuilder::short_message_max_chars), or
//! the event carries an error, whose `source()` chain is appended),
//! `timestamp` (epoch seconds with microseconds) and `level` (syslog severity:
//! ERROR 3, WARN 4, INFO 6, DEBUG 7, TRACE 7 by default).
//!
//! Additional fields: the event's fields, then the fields of every span it is
//! in (innermost first), then the builder's static fields, then `_target`,
//! `_module_path`, `_file`, `_line` and `_span` (span names from root to leaf
//! joined with `:`). The first of these to use a name wins, so an event field
//! overrides a span field of the same name, and a static field is a last
//! resort.
//!
//! Graylog silently drops booleans, nulls, empty strings and fields with
//! names outside `[A-Za-z0-9_.@-]`; this crate never sends them: see
//! [`sanitize_field_name`] for the name rule, and the [`encode`] module docs
//! for values. With the `testing` feature, `graylog::check` applies
//! Graylog's rules to a payload.
//!
//! With the `opentelemetry` feature, and `tracing-opentelemetry`'s layer in
//! the same subscriber, each event inside a span also carries `_trace_id`
//! and `_span_id`: the OpenTelemetry ids of that span, in hex, so a Graylog
//! search joins with the trace. Without that layer nothing changes.
//!
//! # Delivery
//!
//! Events are encoded on the caller's thread (so borrowed values need no
//! copy) into a bounded queue (by count and by bytes) that a background
//! thread drains in batches; no async runtime is needed and the layer works
//! inside tokio applications. `on_event` never blocks: when the queue is full
//! the event is dropped and counted (or the oldest, with
//! [`OverflowPolicy::DropOldest`]), and after drops the next delivery is
//! followed by one notice carrying the count. The worker reconnects with
//! exponential backoff and jitter, keeps the queue through an outage, and
//! re-sends a frame whose write failed, whole, on the new connection.
//! [`GelfGuard::stats`] accounts for every event: `emitted == sent + dropped +
//! queued`.
//!
//! Over TCP, "sent" means written whole to the socket: bytes the kernel
//! accepted before Graylog crashed can still be lost (at-most-once for those).
//!
//! # Transports, failover, spool
//!
//! The endpoint string picks the transport: `tcp://`, `tls://` (rustls;
//! [`tls_ca_file`](GelfLayerBuilder::tls_ca_file),
//! [`tls_client_cert`](GelfLayerBuilder::tls_client_cert)), `udp://` (GELF
//! chunking, [`Compression`] before chunking, at most 128 chunks) and
//! `http://…/gelf` / `https://…/gelf` (one POST per message; delivered only on
//! a 2xx answer, retried on 5xx/408/429: at-least-once). A comma-separated
//! list fails over in order and returns to the first endpoint when it is
//! back. With [`spool_dir`](GelfLayerBuilder::spool_dir), messages wait on
//! disk in checksummed segment files while the endpoints are down or the
//! queue is full, and are replayed in order, also by the next process.
//!
//! # Secrets
//!
//! Fields whose names contain `password`, `passwd`, `secret`, `token`,
//! `api_key`, `apikey`, `authorization`, `cookie`, `credential` or
//! `private_key` (any case) are sent as `[REDACTED]`. Add names with
//! [`redact_field`](GelfLayerBuilder::redact_field) and value patterns with
//! [`redact_value`](GelfLayerBuilder::redact_value) (applied to messages too).
//!
//! # Error attribution
//!
//! With [`GelfLayerBuilder::attribution`], ERROR and WARN events are classified
//! where they are born, from their `error_code` (or message keywords), and
//! arrive in Graylog with `_component`, `_error_category`, `_severity`,
//! `_root_cause` and `_solution`. See the [`attribution`] module.
//!
//! # The layer's own errors
//!
//! Connection and write errors never go through `tracing` (that could feed
//! back into this layer): they are printed to stderr at most once per 10 s and
//! passed to the [`on_error`](GelfLayerBuilder::on_error) callback.
#![deny(missing_docs)]
// One `unsafe` block in the crate: the ioctl that asks the kernel how much of
// a TCP connection is unacknowledged (transport.rs, with its reasoning).
#![deny(unsafe_code)]

pub mod attribution;
mod builder;
pub mod encode;
mod endpoint;
mod error;
pub mod fields;
#[cfg(any(test, feature = "testing"))]
pub mod graylog;
mod guard;
mod layer;
#[cfg(feature = "opentelemetry")]
mod otel;
pub mod redact;
mod spool;
mod stats;
mod tls;
mod transport;
mod worker;

pub use attribution::{AttributionError, AttributionRules, Severity};
pub use builder::{
    FieldValue, GelfLayerBuilder, OverflowPolicy, GRAYLOG_HTTP_MAX_BODY, GRAYLOG_MAX_FRAME,
};
pub use encode::sanitize_field_name;
pub use endpoint::{Endpoint, Scheme};
pub use error::{BuildError, FlushError, TransportError};
pub use guard::{GelfGuard, GelfHandle};
pub use layer::GelfLayer;
pub use redact::DEFAULT_SECRET_NAMES;
pub use spool::SpoolFullPolicy;
pub use stats::{EndpointStats, Stats};
pub use transport::{Compression, UDP_CHUNK_HEADER, UDP_MAX_CHUNKS};
