//! Delivery accounting: every event the layer sees is counted exactly once as
//! sent or dropped, or is still queued.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

/// A snapshot of the layer's delivery figures.
///
/// The invariant `emitted == sent + dropped + queued` holds for every
/// snapshot taken while nothing is in flight, and in particular after
/// [`GelfGuard::flush`](crate::GelfGuard::flush) or the guard's drop.
///
/// ```
/// let (_layer, guard) = gelf_tracing::GelfLayer::builder()
///     .endpoint("tcp://127.0.0.1:12201")?
///     .build()?;
/// let s = guard.stats();
/// assert_eq!(s.emitted, s.sent + s.dropped + s.queued);
/// # Ok::<(), gelf_tracing::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Events the layer accepted for delivery.
    pub emitted: u64,
    /// Events written whole to the transport.
    pub sent: u64,
    /// Events given up on (sum of the `dropped_*` figures).
    pub dropped: u64,
    /// Dropped because the queue was full (count or bytes).
    pub dropped_queue_full: u64,
    /// Dropped because the layer was shutting down before they could be sent.
    pub dropped_shutdown: u64,
    /// Emitted, not yet sent nor dropped.
    pub queued: u64,
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
}

/// The live counters behind [`Stats`]. Caller-side and worker-side counters sit
/// on separate cache lines so callers do not contend with the worker.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) emitted: CachePadded<AtomicU64>,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_shutdown: AtomicU64,
    pub(crate) truncated: AtomicU64,
    pub(crate) queued_bytes: CachePadded<AtomicUsize>,
    pub(crate) sent: CachePadded<AtomicU64>,
    pub(crate) reconnects: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) notices_sent: AtomicU64,
    pub(crate) connected: AtomicBool,
}

impl Counters {
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped_queue_full.load(Relaxed) + self.dropped_shutdown.load(Relaxed)
    }

    /// Events neither sent nor dropped yet.
    pub(crate) fn pending(&self) -> u64 {
        // Read the completions first: an event is counted emitted before it
        // can be sent or dropped, so this never underflows in practice.
        let done = self.sent.load(Relaxed) + self.dropped();
        self.emitted.load(Relaxed).saturating_sub(done)
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let sent = self.sent.load(Relaxed);
        let dropped_queue_full = self.dropped_queue_full.load(Relaxed);
        let dropped_shutdown = self.dropped_shutdown.load(Relaxed);
        let dropped = dropped_queue_full + dropped_shutdown;
        let emitted = self.emitted.load(Relaxed);
        Stats {
            emitted,
            sent,
            dropped,
            dropped_queue_full,
            dropped_shutdown,
            queued: emitted.saturating_sub(sent + dropped),
            queued_bytes: self.queued_bytes.load(Relaxed) as u64,
            reconnects: self.reconnects.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            notices_sent: self.notices_sent.load(Relaxed),
            truncated: self.truncated.load(Relaxed),
            connected: self.connected.load(Relaxed),
        }
    }
}
