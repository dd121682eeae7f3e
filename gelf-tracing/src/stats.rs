//! Delivery accounting: every event the layer sees (or finds in the spool at
//! start) is counted exactly once as sent or dropped, or is still queued.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

/// A snapshot of the layer's delivery figures.
///
/// The invariant `emitted + recovered == sent + dropped + queued` holds for
/// every snapshot taken while nothing is in flight, and in particular after
/// [`GelfGuard::flush`](crate::GelfGuard::flush) or the guard's drop
/// (`recovered` is zero without a spool).
///
/// ```
/// let (_layer, guard) = gelf_tracing::GelfLayer::builder()
///     .endpoint("tcp://127.0.0.1:12201")?
///     .build()?;
/// let s = guard.stats();
/// assert_eq!(s.emitted + s.recovered, s.sent + s.dropped + s.queued);
/// assert_eq!(s.endpoints[0].endpoint, "tcp://127.0.0.1:12201");
/// # Ok::<(), gelf_tracing::BuildError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Events the layer accepted for delivery.
    pub emitted: u64,
    /// Messages found in the spool directory at start, left by an earlier process.
    pub recovered: u64,
    /// Events delivered: written whole to a TCP/TLS socket, sent as UDP
    /// datagrams, or answered 2xx over HTTP.
    pub sent: u64,
    /// Events given up on (sum of the `dropped_*` figures).
    pub dropped: u64,
    /// Dropped because the queue was full (count or bytes) and no spool took them.
    pub dropped_queue_full: u64,
    /// Dropped because the layer was shutting down before they could be sent
    /// (without a spool; with one they stay spooled).
    pub dropped_shutdown: u64,
    /// Refused for good by an HTTP endpoint (4xx other than 408 and 429).
    pub dropped_rejected: u64,
    /// Dropped by the spool's full policy.
    pub dropped_spool_full: u64,
    /// Damaged spool records skipped (power loss, disk damage).
    pub dropped_spool_corrupt: u64,
    /// Dropped because the spool directory could not be written.
    pub dropped_spool_error: u64,
    /// Not yet sent nor dropped: in memory or in the spool.
    pub queued: u64,
    /// Of `queued`, messages in the spool files.
    pub spooled: u64,
    /// Bytes in the spool files.
    pub spool_bytes: u64,
    /// Bytes of encoded events waiting in the queue.
    pub queued_bytes: u64,
    /// Connections re-established after a failure.
    pub reconnects: u64,
    /// Bytes written to the transport, delimiters and notices included.
    pub bytes_sent: u64,
    /// Drop notices delivered (one after each run of drops).
    pub notices_sent: u64,
    /// Events cut to fit the size cap (sent with `_truncated`).
    pub truncated: u64,
    /// Whether the worker holds a live connection now.
    pub connected: bool,
    /// Index in `endpoints` of the endpoint in use, if connected.
    pub current_endpoint: Option<usize>,
    /// Figures per endpoint, in the order configured.
    pub endpoints: Vec<EndpointStats>,
}

/// Delivery figures of one endpoint of the list.
///
/// ```
/// let (_layer, guard) = gelf_tracing::GelfLayer::builder()
///     .endpoint("tcp://127.0.0.1:12201,udp://127.0.0.1:12201")?
///     .build()?;
/// let e = &guard.stats().endpoints[1];
/// assert_eq!((e.endpoint.as_str(), e.sent), ("udp://127.0.0.1:12201", 0));
/// # Ok::<(), gelf_tracing::BuildError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// The endpoint as configured.
    pub endpoint: String,
    /// Messages delivered to it.
    pub sent: u64,
    /// Failed connection attempts, writes and retryable HTTP answers.
    pub failed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct EndpointCounters {
    pub(crate) endpoint: String,
    pub(crate) sent: AtomicU64,
    pub(crate) failed: AtomicU64,
}

/// The live counters behind [`Stats`]. Caller-side and worker-side counters sit
/// on separate cache lines so callers do not contend with the worker.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) emitted: CachePadded<AtomicU64>,
    pub(crate) recovered: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_shutdown: AtomicU64,
    pub(crate) dropped_rejected: AtomicU64,
    pub(crate) dropped_spool_full: AtomicU64,
    pub(crate) dropped_spool_corrupt: AtomicU64,
    pub(crate) dropped_spool_error: AtomicU64,
    pub(crate) spooled: AtomicU64,
    pub(crate) spool_bytes: AtomicU64,
    /// `usize::MAX` when not connected.
    pub(crate) current: AtomicUsize,
    pub(crate) endpoints: Vec<EndpointCounters>,
    pub(crate) truncated: AtomicU64,
    pub(crate) queued_bytes: CachePadded<AtomicUsize>,
    pub(crate) sent: CachePadded<AtomicU64>,
    pub(crate) reconnects: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) notices_sent: AtomicU64,
    pub(crate) connected: AtomicBool,
}

impl Counters {
    pub(crate) fn new(endpoints: &[crate::Endpoint]) -> Self {
        Self {
            current: AtomicUsize::new(usize::MAX),
            endpoints: endpoints
                .iter()
                .map(|e| EndpointCounters {
                    endpoint: e.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped_queue_full.load(Relaxed)
            + self.dropped_shutdown.load(Relaxed)
            + self.dropped_rejected.load(Relaxed)
            + self.dropped_spool_full.load(Relaxed)
            + self.dropped_spool_corrupt.load(Relaxed)
            + self.dropped_spool_error.load(Relaxed)
    }

    /// Events neither sent, dropped nor safely in the spool: what a flush waits for.
    pub(crate) fn pending(&self) -> u64 {
        // Read the completions first: an event is counted emitted before it
        // can be sent, dropped or spooled, so this never underflows in practice.
        let done = self.sent.load(Relaxed) + self.dropped() + self.spooled.load(Relaxed);
        (self.emitted.load(Relaxed) + self.recovered.load(Relaxed)).saturating_sub(done)
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let sent = self.sent.load(Relaxed);
        let dropped = self.dropped();
        let emitted = self.emitted.load(Relaxed);
        let recovered = self.recovered.load(Relaxed);
        let current = self.current.load(Relaxed);
        Stats {
            emitted,
            recovered,
            sent,
            dropped,
            dropped_queue_full: self.dropped_queue_full.load(Relaxed),
            dropped_shutdown: self.dropped_shutdown.load(Relaxed),
            dropped_rejected: self.dropped_rejected.load(Relaxed),
            dropped_spool_full: self.dropped_spool_full.load(Relaxed),
            dropped_spool_corrupt: self.dropped_spool_corrupt.load(Relaxed),
            dropped_spool_error: self.dropped_spool_error.load(Relaxed),
            queued: (emitted + recovered).saturating_sub(sent + dropped),
            spooled: self.spooled.load(Relaxed),
            spool_bytes: self.spool_bytes.load(Relaxed),
            current_endpoint: (current != usize::MAX).then_some(current),
            endpoints: self
                .endpoints
                .iter()
                .map(|e| EndpointStats {
                    endpoint: e.endpoint.clone(),
                    sent: e.sent.load(Relaxed),
                    failed: e.failed.load(Relaxed),
                })
                .collect(),
            queued_bytes: self.queued_bytes.load(Relaxed) as u64,
            reconnects: self.reconnects.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            notices_sent: self.notices_sent.load(Relaxed),
            truncated: self.truncated.load(Relaxed),
            connected: self.connected.load(Relaxed),
        }
    }
}
