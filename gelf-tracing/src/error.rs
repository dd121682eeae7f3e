//! The layer's errors: configuration errors at build time, transport errors
//! reported while running, and flush time-outs.

use std::io;
use std::time::Duration;

/// A configuration problem found by [`GelfLayerBuilder::build`](crate::GelfLayerBuilder::build)
/// or [`GelfLayerBuilder::endpoint`](crate::GelfLayerBuilder::endpoint). The message names the setting.
///
/// ```
/// let err = gelf_tracing::GelfLayer::builder().endpoint("ftp://x:1").unwrap_err();
/// assert!(err.to_string().contains("ftp"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No endpoint was given and `GELF_ENDPOINT` is not set.
    #[error("no GELF endpoint: call .endpoint(\"tcp://host:port\") or set GELF_ENDPOINT")]
    NoEndpoint,
    /// The endpoint string could not be parsed.
    #[error("invalid GELF endpoint {input:?}: {reason}")]
    Endpoint {
        /// The string as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting has a value outside its allowed range.
    #[error("invalid setting {name}: {reason}")]
    Setting {
        /// The builder method (and environment variable, where there is one).
        name: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// A redaction rule could not be compiled.
    #[error("invalid redaction rule: {0}")]
    Redaction(String),
    /// A TLS setting could not be used (unreadable or invalid PEM, no trusted roots).
    #[error("invalid TLS setting {name}: {reason}")]
    Tls {
        /// The builder method.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Another process (or another layer in this one) uses the spool
    /// directory: two writers would corrupt each other's segments.
    #[error("the GELF spool (spool_dir) {dir} is in use by another process; give each process its own directory")]
    SpoolLocked {
        /// The spool directory.
        dir: String,
    },
    /// The spool directory could not be created, read or locked.
    #[error("cannot open the GELF spool (spool_dir) {dir}: {source}")]
    Spool {
        /// The directory.
        dir: String,
        /// The file system's error.
        #[source]
        source: io::Error,
    },
    /// The background worker thread could not be started.
    #[error("could not start the GELF worker thread: {0}")]
    Spawn(#[source] io::Error),
}

/// A delivery problem seen by the background worker. These never reach the
/// application's tracing pipeline (that could feed back into itself); they go
/// to stderr, rate-limited, and to the callback set with
/// [`GelfLayerBuilder::on_error`](crate::GelfLayerBuilder::on_error).
///
/// ```
/// let (layer, guard) = gelf_tracing::GelfLayer::builder()
///     .endpoint("tcp://127.0.0.1:9")?
///     .on_error(|e: &gelf_tracing::TransportError| eprintln!("graylog: {e}"))
///     .build()?;
/// # drop((layer, guard));
/// # Ok::<(), gelf_tracing::BuildError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The endpoint's host name did not resolve.
    #[error("cannot resolve GELF endpoint {endpoint}: {source}")]
    Resolve {
        /// The endpoint as configured.
        endpoint: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// No address of the endpoint accepted a connection.
    #[error("cannot connect to GELF endpoint {endpoint}: {source}")]
    Connect {
        /// The endpoint as configured.
        endpoint: String,
        /// The last connection error.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed (certificate not trusted, name mismatch,
    /// protocol error); the reason names the certificate problem.
    #[error("TLS handshake with GELF endpoint {endpoint} failed: {source}")]
    Tls {
        /// The endpoint as configured.
        endpoint: String,
        /// The TLS error.
        #[source]
        source: io::Error,
    },
    /// An HTTP endpoint answered 5xx, 408 or 429: the message is kept and
    /// retried after a backoff.
    #[error("GELF endpoint {endpoint} answered HTTP {status}; retrying")]
    HttpStatus {
        /// The endpoint as configured.
        endpoint: String,
        /// The HTTP status.
        status: u16,
    },
    /// An HTTP endpoint refused messages for good (4xx other than 408/429);
    /// they are counted in `Stats::dropped_rejected`.
    #[error("GELF endpoint {endpoint} refused {count} message(s) with HTTP {status}")]
    Rejected {
        /// The endpoint as configured.
        endpoint: String,
        /// The last refusing HTTP status.
        status: u16,
        /// Messages refused in the batch.
        count: usize,
    },
    /// Reading or writing the spool directory failed (disk full, I/O error,
    /// read-only or missing directory). Messages the worker could not spool
    /// stay in memory; those the application's threads could not spool are
    /// counted in `Stats::dropped_spool_io`.
    #[error("GELF spool {dir}: {source}")]
    Spool {
        /// The spool directory.
        dir: String,
        /// The file system's error.
        #[source]
        source: io::Error,
    },
    /// Writing to an established connection failed; unsent frames are kept and re-sent.
    #[error("write to GELF endpoint {endpoint} failed: {source}")]
    Write {
        /// The endpoint as configured.
        endpoint: String,
        /// The socket's error.
        #[source]
        source: io::Error,
    },
    /// The endpoint accepts connections but stopped reading: nothing could be
    /// written, or what was written stayed unacknowledged, for `after`. The
    /// layer leaves it for the next endpoint of the list (returning at
    /// `failback_after`) and sends the unacknowledged frames again there.
    #[error("GELF endpoint {endpoint} stopped reading for {after:?}: giving it up")]
    Stalled {
        /// The endpoint as configured.
        endpoint: String,
        /// How long it made no progress.
        after: Duration,
    },
}

/// [`GelfGuard::flush`](crate::GelfGuard::flush) ran out of time.
///
/// ```
/// let err = gelf_tracing::FlushError::Timeout { waited: std::time::Duration::from_secs(1), pending: 3 };
/// assert!(err.to_string().contains("3 events"));
/// ```
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushError {
    /// Events were still waiting when the deadline passed.
    #[error("GELF flush timed out after {waited:?} with {pending} events not yet sent")]
    Timeout {
        /// How long the flush waited.
        waited: Duration,
        /// Events emitted but neither sent nor dropped at the deadline.
        pending: u64,
    },
}
