//! The guard returned with the layer: flushes on drop, gives stats.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::worker::Shared;
use crate::{AttributionRules, FlushError, Stats};

/// A cloneable handle on the layer's delivery: [`stats`](GelfHandle::stats)
/// for metrics endpoints, [`flush`](GelfHandle::flush) before a risky step.
///
/// ```
/// let (_layer, guard) = gelf_tracing::GelfLayer::builder()
///     .endpoint("tcp://127.0.0.1:12201")?
///     .build()?;
/// let handle = guard.handle();
/// std::thread::spawn(move || println!("dropped so far: {}", handle.stats().dropped))
///     .join()
///     .unwrap();
/// # Ok::<(), gelf_tracing::BuildError>(())
/// ```
#[derive(Clone)]
pub struct GelfHandle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) attribution: Option<Arc<AttributionRules>>,
}

impl GelfHandle {
    /// A snapshot of the delivery figures.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// ERROR/WARN events seen per `error_code` that no attribution rule knows
    /// (empty without rules). At most 256 codes are kept apart; the rest are
    /// counted under `"(other)"`.
    ///
    /// ```
    /// let (_layer, guard) = gelf_tracing::GelfLayer::builder()
    ///     .endpoint("tcp://127.0.0.1:12201")?
    ///     .build()?;
    /// assert!(guard.handle().unknown_error_codes().is_empty());
    /// # Ok::<(), gelf_tracing::BuildError>(())
    /// ```
    pub fn unknown_error_codes(&self) -> BTreeMap<String, u64> {
        self.attribution
            .as_ref()
            .map(|a| a.unknown_codes())
            .unwrap_or_default()
    }

    /// Waits until every event emitted so far is sent or dropped, or until
    /// `timeout` passes. Events emitted meanwhile by other threads are waited
    /// for too.
    ///
    /// ```no_run
    /// # let (_layer, guard) = gelf_tracing::GelfLayer::builder().endpoint("tcp://127.0.0.1:12201")?.build()?;
    /// if let Err(e) = guard.handle().flush(std::time::Duration::from_secs(2)) {
    ///     eprintln!("{e}");
    /// }
    /// # Ok::<(), gelf_tracing::BuildError>(())
    /// ```
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let shared = &self.shared;
        shared.flush_waiters.fetch_add(1, Relaxed);
        let mut guard = match shared.progress.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let result = loop {
            let pending = shared.counters.pending();
            if pending == 0 {
                break Ok(());
            }
            let now = Instant::now();
            if now >= deadline || shared.worker_done.load(Relaxed) {
                break Err(FlushError::Timeout {
                    waited: now - start,
                    pending,
                });
            }
            // Bounded wait: the worker notifies after each batch, and the
            // short cap covers a notification sent just before we waited.
            let wait = (deadline - now).min(Duration::from_millis(10));
            guard = match shared.progress_cv.wait_timeout(guard, wait) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        };
        drop(guard);
        shared.flush_waiters.fetch_sub(1, Relaxed);
        result
    }
}

/// Returned with the [`GelfLayer`](crate::GelfLayer); keep it alive for as long
/// as events should be shipped (typically in `main`).
///
/// When dropped it flushes with the deadline set by
/// [`GelfLayerBuilder::flush_timeout`](crate::GelfLayerBuilder::flush_timeout)
/// (default 5 s), then stops the worker. Events still unsent at the deadline
/// are spooled (with a [spool](crate::GelfLayerBuilder::spool_dir)) or
/// counted as dropped (`dropped_shutdown`), and stderr says how many, even
/// when the worker is stuck in a write to a Graylog that stopped reading or
/// in a connection attempt: then the guard counts them itself. Dropping it
/// takes about the deadline, never much more: the last quarter of it (at
/// most 500 ms) is kept for the worker to stop.
///
/// ```
/// let (layer, guard) = gelf_tracing::GelfLayer::builder()
///     .endpoint("tcp://127.0.0.1:12201")?
///     .flush_timeout(std::time::Duration::from_millis(200))
///     .build()?;
/// drop(layer);
/// drop(guard); // returns within ~200 ms even though nothing listens
/// # Ok::<(), gelf_tracing::BuildError>(())
/// ```
#[must_use = "dropping the guard stops delivery; keep it alive in main"]
pub struct GelfGuard {
    pub(crate) handle: GelfHandle,
    /// The queue, to count what is left in it when the worker is stuck.
    pub(crate) queue: crossbeam_channel::Receiver<Vec<u8>>,
    pub(crate) worker: Option<JoinHandle<()>>,
    pub(crate) flush_timeout: Duration,
}

/// The most the guard keeps of its deadline for the worker to stop.
const STOP_GRACE: Duration = Duration::from_millis(500);

impl GelfGuard {
    /// A snapshot of the delivery figures.
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// Waits until everything emitted so far is sent or dropped, or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.handle.flush(timeout)
    }

    /// ERROR/WARN events per `error_code` that no attribution rule knows.
    pub fn unknown_error_codes(&self) -> BTreeMap<String, u64> {
        self.handle.unknown_error_codes()
    }

    /// A cloneable handle for stats and flushes from elsewhere.
    pub fn handle(&self) -> GelfHandle {
        self.handle.clone()
    }
}

impl Drop for GelfGuard {
    fn drop(&mut self) {
        let grace = STOP_GRACE.min(self.flush_timeout / 4);
        let _ = self.handle.flush(self.flush_timeout - grace);
        let shared = &self.handle.shared;
        shared.shutdown.store(true, Relaxed);
        shared.wake_worker();
        let until = Instant::now() + grace;
        while !shared.worker_done.load(Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        if shared.worker_done.load(Relaxed) {
            if let Some(h) = self.worker.take() {
                let _ = h.join();
            }
            return;
        }
        // The worker is stuck in a connection attempt, a name lookup or a
        // disk write. Count what is still queued and what it holds as
        // dropped now; it finds out when it returns and counts nothing twice.
        let c = &shared.counters;
        let mut queued = 0u64;
        while let Ok(f) = self.queue.try_recv() {
            c.queued_bytes.fetch_sub(f.len(), Relaxed);
            queued += 1;
        }
        c.dropped_shutdown.fetch_add(queued, Relaxed);
        let held = c.reap();
        if queued + held > 0 {
            eprintln!(
                "gelf-tracing: the delivery thread did not stop within the flush deadline; {} undelivered events are counted as dropped (shutdown)",
                queued + held
            );
        }
    }
}

impl std::fmt::Debug for GelfHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GelfHandle")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for GelfGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GelfGuard")
            .field("handle", &self.handle)
            .field("flush_timeout", &self.flush_timeout)
            .finish_non_exhaustive()
    }
}
