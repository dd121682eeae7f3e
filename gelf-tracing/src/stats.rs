//! Delivery accounting: every event the layer sees (or finds in the spool at
//! start) is counted exactly once as sent or dropped, or is still queued.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::fields;
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
    /// Events delivered: over TCP and TLS, written whole and acknowledged by
    /// the peer's TCP stack (on Linux; elsewhere written whole to the
    /// socket); sent as UDP datagrams; answered 2xx over HTTP.
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
    /// Damaged or missing spool records: skipped on replay (power loss, disk
    /// damage), or in a segment file deleted while it waited.
    pub dropped_spool_corrupt: u64,
    /// Dropped because the spool could not store them: the disk is full
    /// (ENOSPC), an I/O error, a read-only or vanished directory, or the
    /// spool pausing for a second after such a failure. A record cut short
    /// by the failure is removed from the file, so it is never replayed.
    pub dropped_spool_io: u64,
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
    /// Endpoints given up on because they stopped reading: a write made no
    /// progress, or written data stayed unacknowledged, for the
    /// [`stall_timeout`](crate::GelfLayerBuilder::stall_timeout).
    pub stalls: u64,
    /// Frames written to a connection that was then given up (stalled,
    /// closed by the peer, or left for a preferred endpoint) before the peer
    /// acknowledged them. They are not counted as sent: they are queued
    /// again and sent on the next connection, so the old peer may hold a
    /// copy of some of them.
    pub unacknowledged_resent: u64,
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

impl Stats {
    /// The drop figures by cause, for a metrics exporter: `queue_full`,
    /// `shutdown`, `rejected`, `spool_full`, `spool_corrupt`, `spool_io`
    /// (the `dropped_*` fields), always all six, in that order.
    ///
    /// ```
    /// let (_layer, guard) = gelf_tracing::GelfLayer::builder()
    ///     .endpoint("tcp://127.0.0.1:12201")?
    ///     .build()?;
    /// let s = guard.stats();
    /// let by_cause = s.dropped_by_cause();
    /// assert_eq!(by_cause[0], ("queue_full", 0));
    /// assert_eq!(by_cause.iter().map(|(_, n)| n).sum::<u64>(), s.dropped);
    /// # Ok::<(), gelf_tracing::BuildError>(())
    /// ```
    pub fn dropped_by_cause(&self) -> [(&'static str, u64); 6] {
        [
            ("queue_full", self.dropped_queue_full),
            ("shutdown", self.dropped_shutdown),
            ("rejected", self.dropped_rejected),
            ("spool_full", self.dropped_spool_full),
            ("spool_corrupt", self.dropped_spool_corrupt),
            ("spool_io", self.dropped_spool_io),
        ]
    }
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
    /// Times it was given up on because it stopped reading.
    pub stalled: u64,
}

#[derive(Debug, Default)]
pub(crate) struct EndpointCounters {
    pub(crate) endpoint: String,
    pub(crate) sent: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) stalled: AtomicU64,
}

/// The value of `Counters::held` once the guard has reaped the worker's frames.
pub(crate) const HELD_REAPED: u64 = u64::MAX;

/// Why events were dropped: one counter each in [`Stats`], one label value
/// each in a metrics exporter, one line each on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropCause {
    QueueFull,
    Shutdown,
    Rejected,
    SpoolFull,
    SpoolCorrupt,
    SpoolIo,
}

impl DropCause {
    pub(crate) const ALL: [DropCause; 6] = [
        DropCause::QueueFull,
        DropCause::Shutdown,
        DropCause::Rejected,
        DropCause::SpoolFull,
        DropCause::SpoolCorrupt,
        DropCause::SpoolIo,
    ];

    /// The cause's name: the [`Stats`] field without `dropped_`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            DropCause::QueueFull => "queue_full",
            DropCause::Shutdown => "shutdown",
            DropCause::Rejected => "rejected",
            DropCause::SpoolFull => "spool_full",
            DropCause::SpoolCorrupt => "spool_corrupt",
            DropCause::SpoolIo => "spool_io",
        }
    }

    /// The drop notice's field for this cause.
    pub(crate) fn field_name(self) -> &'static str {
        match self {
            DropCause::QueueFull => fields::GELF_DROPPED_QUEUE_FULL,
            DropCause::Shutdown => fields::GELF_DROPPED_SHUTDOWN,
            DropCause::Rejected => fields::GELF_DROPPED_REJECTED,
            DropCause::SpoolFull => fields::GELF_DROPPED_SPOOL_FULL,
            DropCause::SpoolCorrupt => fields::GELF_DROPPED_SPOOL_CORRUPT,
            DropCause::SpoolIo => fields::GELF_DROPPED_SPOOL_IO,
        }
    }

    /// What an operator reads on stderr.
    pub(crate) fn explain(self) -> &'static str {
        match self {
            DropCause::QueueFull => "the in-memory queue was full and no spool took them",
            DropCause::Shutdown => "the process shut down before they could be sent",
            DropCause::Rejected => "the HTTP endpoint refused them for good (4xx)",
            DropCause::SpoolFull => "the spool reached spool_max_bytes (spool_full_policy)",
            DropCause::SpoolCorrupt => "spool records were damaged or their file was deleted",
            DropCause::SpoolIo => {
                "the spool could not be written (disk full, I/O error, read-only or missing directory)"
            }
        }
    }
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
    pub(crate) dropped_spool_io: AtomicU64,
    pub(crate) spooled: AtomicU64,
    pub(crate) spool_bytes: AtomicU64,
    /// `usize::MAX` when not connected.
    pub(crate) current: AtomicUsize,
    pub(crate) endpoints: Vec<EndpointCounters>,
    pub(crate) truncated: AtomicU64,
    pub(crate) queued_bytes: CachePadded<AtomicUsize>,
    pub(crate) sent: CachePadded<AtomicU64>,
    pub(crate) reconnects: AtomicU64,
    pub(crate) stalls: AtomicU64,
    pub(crate) unacknowledged_resent: AtomicU64,
    /// Frames the worker holds in memory (taken from the queue, or read from
    /// the spool and written but not yet acknowledged); [`HELD_REAPED`] once
    /// the guard has counted them as dropped because the worker did not stop
    /// in time. See [`Counters::hold`] and [`Counters::release`].
    pub(crate) held: AtomicU64,
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
            + self.dropped_spool_io.load(Relaxed)
    }

    /// The drop figures by cause, named as in [`Stats`] without `dropped_`.
    pub(crate) fn drops_by_cause(&self) -> [(DropCause, u64); DropCause::ALL.len()] {
        DropCause::ALL.map(|c| (c, self.drop_counter(c).load(Relaxed)))
    }

    pub(crate) fn drop_counter(&self, cause: DropCause) -> &AtomicU64 {
        match cause {
            DropCause::QueueFull => &self.dropped_queue_full,
            DropCause::Shutdown => &self.dropped_shutdown,
            DropCause::Rejected => &self.dropped_rejected,
            DropCause::SpoolFull => &self.dropped_spool_full,
            DropCause::SpoolCorrupt => &self.dropped_spool_corrupt,
            DropCause::SpoolIo => &self.dropped_spool_io,
        }
    }

    /// Counts `k` more frames held by the worker. False when the guard has
    /// already reaped the worker's frames: the caller then counts these `k`
    /// as dropped at shutdown itself and lets them go.
    pub(crate) fn hold(&self, k: u64) -> bool {
        self.held
            .fetch_update(Relaxed, Relaxed, |h| (h != HELD_REAPED).then(|| h + k))
            .is_ok()
    }

    /// Claims `k` held frames before the worker settles them (sent, spooled,
    /// dropped). False when the guard has reaped them: they are already
    /// counted as dropped and the worker must not count them again.
    pub(crate) fn release(&self, k: u64) -> bool {
        self.held
            .fetch_update(Relaxed, Relaxed, |h| {
                (h != HELD_REAPED).then(|| h.saturating_sub(k))
            })
            .is_ok()
    }

    /// At the guard's deadline, when the worker is stuck: counts everything
    /// it holds as dropped (shutdown) and returns how many.
    pub(crate) fn reap(&self) -> u64 {
        let h = self.held.swap(HELD_REAPED, Relaxed);
        if h == HELD_REAPED {
            return 0;
        }
        self.dropped_shutdown.fetch_add(h, Relaxed);
        h
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
            dropped_spool_io: self.dropped_spool_io.load(Relaxed),
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
                    stalled: e.stalled.load(Relaxed),
                })
                .collect(),
            queued_bytes: self.queued_bytes.load(Relaxed) as u64,
            reconnects: self.reconnects.load(Relaxed),
            stalls: self.stalls.load(Relaxed),
            unacknowledged_resent: self.unacknowledged_resent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            notices_sent: self.notices_sent.load(Relaxed),
            truncated: self.truncated.load(Relaxed),
            connected: self.connected.load(Relaxed),
        }
    }
}
