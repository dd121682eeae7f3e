//! The background worker: takes encoded frames from the bounded queue, sends
//! them in batches, fails over between endpoints and returns to the first,
//! reconnects with backoff, spools to disk during outages (when a spool is
//! set) and replays it, and never loses a frame without counting it.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::encode::{encode_drop_notice, EncodeConfig, OwnedField};
use crate::spool::{Loss, Spool};
use crate::stats::Counters;
use crate::transport::{Connection, TransportConfig};
use crate::{Endpoint, TransportError};

thread_local! {
    /// Set on the worker thread: events emitted there (by the error callback,
    /// say) are ignored by the layer, so its own failures never feed back into it.
    pub(crate) static IN_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// How long the worker waits for a frame before it does housekeeping.
const IDLE_TICK: Duration = Duration::from_millis(50);

/// A callback for transport errors.
pub(crate) type ErrorCallback = Arc<dyn Fn(&TransportError) + Send + Sync>;

/// State shared by the layer, the worker and the guard.
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    pub(crate) shutdown: AtomicBool,
    pub(crate) worker_done: AtomicBool,
    pub(crate) worker: OnceLock<Thread>,
    /// Flushers wait here; the worker notifies after each batch.
    pub(crate) progress: Mutex<()>,
    pub(crate) progress_cv: Condvar,
    pub(crate) flush_waiters: AtomicUsize,
    pub(crate) reporter: ErrorReporter,
    pub(crate) spool: Option<SpoolState>,
}

impl Shared {
    pub(crate) fn new(
        reporter: ErrorReporter,
        endpoints: &[Endpoint],
        spool: Option<SpoolState>,
    ) -> Self {
        Self {
            counters: Counters::new(endpoints),
            spool,
            shutdown: AtomicBool::new(false),
            worker_done: AtomicBool::new(false),
            worker: OnceLock::new(),
            progress: Mutex::new(()),
            progress_cv: Condvar::new(),
            flush_waiters: AtomicUsize::new(0),
            reporter,
        }
    }

    pub(crate) fn wake_worker(&self) {
        if let Some(t) = self.worker.get() {
            t.unpark();
        }
    }

    fn notify_progress(&self) {
        if self.flush_waiters.load(Relaxed) > 0 {
            let _g = self.progress.lock();
            self.progress_cv.notify_all();
        }
    }
}

/// Reports transport errors to the callback and, rate-limited, to stderr.
pub(crate) struct ErrorReporter {
    callback: Option<ErrorCallback>,
    stderr_interval: Duration,
    last_stderr: Mutex<Option<Instant>>,
    suppressed: AtomicUsize,
}

impl ErrorReporter {
    pub(crate) fn new(callback: Option<ErrorCallback>, stderr_interval: Duration) -> Self {
        Self {
            callback,
            stderr_interval,
            last_stderr: Mutex::new(None),
            suppressed: AtomicUsize::new(0),
        }
    }

    pub(crate) fn report(&self, err: &TransportError) {
        if let Some(cb) = &self.callback {
            cb(err);
        }
        let Ok(mut last) = self.last_stderr.lock() else {
            return;
        };
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.stderr_interval) {
            self.suppressed.fetch_add(1, Relaxed);
            return;
        }
        *last = Some(now);
        let n = self.suppressed.swap(0, Relaxed);
        if n > 0 {
            eprintln!("gelf-tracing: {err} ({n} similar errors suppressed)");
        } else {
            eprintln!("gelf-tracing: {err}");
        }
    }
}

/// Exponential backoff with jitter: each wait is uniform in [d/2, d], d doubling
/// from `min` up to `max`.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = d / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// The spool and its settings, shared by the worker (outages, shutdown) and
/// the layer (queue full).
pub(crate) struct SpoolState {
    pub(crate) dir: String,
    pub(crate) spool: Mutex<Spool>,
    /// How long the endpoint must be down before queued events go to disk.
    pub(crate) after: Duration,
}

impl Shared {
    /// Appends frames to the spool and counts the outcome: each frame ends up
    /// spooled or counted as dropped. False (nothing done) without a spool.
    pub(crate) fn spool_frames<'a>(&self, frames: impl Iterator<Item = &'a [u8]>) -> bool {
        let Some(state) = &self.spool else {
            return false;
        };
        let c = &self.counters;
        let mut spool = match state.spool.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut loss = Loss::default();
        let mut refused = 0u64;
        let mut failed = 0u64;
        let mut error = None;
        for f in frames {
            if error.is_some() {
                failed += 1;
                continue;
            }
            match spool.append(f, &mut loss) {
                Ok(true) => {}
                Ok(false) => refused += 1,
                Err(e) => {
                    failed += 1;
                    error = Some(e);
                }
            }
        }
        if let Err(e) = spool.flush() {
            error.get_or_insert(e);
        }
        c.spooled.store(spool.records, Relaxed);
        c.spool_bytes.store(spool.bytes, Relaxed);
        drop(spool);
        c.dropped_spool_full.fetch_add(refused + loss.full, Relaxed);
        c.dropped_spool_error.fetch_add(failed, Relaxed);
        if let Some(source) = error {
            self.reporter.report(&TransportError::Spool {
                dir: state.dir.clone(),
                source,
            });
        }
        true
    }
}

/// The worker's settings.
pub(crate) struct WorkerConfig {
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) transport: TransportConfig,
    pub(crate) batch_max_bytes: usize,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) failback_after: Duration,
    pub(crate) encode: EncodeConfig,
    pub(crate) statics: Vec<OwnedField>,
}

pub(crate) struct Worker {
    cfg: WorkerConfig,
    shared: Arc<Shared>,
    rx: Receiver<Vec<u8>>,
    /// Frames taken from the queue but not yet delivered.
    pending: VecDeque<Vec<u8>>,
    pending_bytes: usize,
    /// The endpoint index and its open connection.
    conn: Option<(usize, Connection)>,
    ever_connected: bool,
    backoff: Backoff,
    /// No connection attempt before this.
    next_attempt: Instant,
    /// Since when nothing could be delivered.
    down_since: Option<Instant>,
    /// Last attempt to return to a preferred endpoint.
    last_failback: Instant,
    /// Records read from the spool, in flight.
    replay: Vec<Vec<u8>>,
    drops_reported: u64,
}

impl Worker {
    pub(crate) fn new(cfg: WorkerConfig, shared: Arc<Shared>, rx: Receiver<Vec<u8>>) -> Self {
        let backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
        let now = Instant::now();
        Self {
            cfg,
            shared,
            rx,
            pending: VecDeque::new(),
            pending_bytes: 0,
            conn: None,
            ever_connected: false,
            backoff,
            next_attempt: now,
            down_since: None,
            last_failback: now,
            replay: Vec::new(),
            drops_reported: 0,
        }
    }

    pub(crate) fn run(mut self) {
        IN_WORKER.with(|w| w.set(true));
        while !self.shared.shutdown.load(Relaxed) {
            self.step();
            self.shared.notify_progress();
        }
        self.finish();
        self.shared.counters.connected.store(false, Relaxed);
        self.shared.counters.current.store(usize::MAX, Relaxed);
        self.shared.worker_done.store(true, Relaxed);
        let _g = self.shared.progress.lock();
        self.shared.progress_cv.notify_all();
    }

    fn spool_has_records(&self) -> bool {
        self.shared.spool.is_some() && self.shared.counters.spooled.load(Relaxed) > 0
    }

    fn step(&mut self) {
        let replaying = self.conn.is_some() && self.spool_has_records();
        if !self.fill(!replaying) {
            return;
        }
        self.check_connection();
        if self.conn.is_some() {
            if self.spool_has_records() {
                // Keep the order: what is queued goes behind the spool.
                self.spool_pending();
                self.replay_spool();
            } else if !self.pending.is_empty() {
                self.write_pending();
            }
            return;
        }
        let spool_due = self
            .shared
            .spool
            .as_ref()
            .is_some_and(|s| self.down_since.is_some_and(|t| t.elapsed() >= s.after));
        if spool_due {
            self.spool_pending();
            while let Ok(f) = self.rx.try_recv() {
                self.take(f);
                if self.pending_bytes >= self.cfg.batch_max_bytes {
                    self.spool_pending();
                }
            }
            self.spool_pending();
        }
        // Wait for the next attempt; with a spool, keep draining the queue to it.
        let mut wait = self.next_attempt.saturating_duration_since(Instant::now());
        if self.shared.spool.is_some() {
            wait = wait.min(IDLE_TICK);
        }
        self.sleep(wait);
    }

    fn take(&mut self, frame: Vec<u8>) {
        self.shared
            .counters
            .queued_bytes
            .fetch_sub(frame.len(), Relaxed);
        self.pending_bytes += frame.len() + 1;
        self.pending.push_back(frame);
    }

    /// Tops up `pending` from the queue, waiting a little for the first frame
    /// when `wait` is set. Returns false when there is nothing to do.
    fn fill(&mut self, wait: bool) -> bool {
        if self.pending.is_empty() && wait {
            match self.rx.recv_timeout(IDLE_TICK) {
                Ok(f) => self.take(f),
                Err(RecvTimeoutError::Timeout) => {
                    self.idle_housekeeping();
                    return self.spool_has_records();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // The layer is gone: nothing more will come.
                    self.shared.shutdown.store(true, Relaxed);
                    return false;
                }
            }
        }
        while self.pending_bytes < self.cfg.batch_max_bytes {
            match self.rx.try_recv() {
                Ok(f) => self.take(f),
                Err(_) => break,
            }
        }
        true
    }

    /// While idle: deliver a pending drop notice, return to a preferred endpoint.
    fn idle_housekeeping(&mut self) {
        self.check_connection();
        if self.conn.is_some() {
            self.send_drop_notice();
        }
        self.shared.notify_progress();
    }

    /// Drops a connection the peer closed, returns to a preferred endpoint
    /// when it is back, and connects when due (endpoints in order).
    fn check_connection(&mut self) {
        // One cheap non-blocking peek per batch: frames written into a
        // connection the server already closed would be lost unnoticed.
        if self.conn.as_mut().is_some_and(|(_, c)| c.peer_closed()) {
            self.disconnect();
        }
        let now = Instant::now();
        if let Some((current, _)) = self.conn {
            if current > 0 && now.duration_since(self.last_failback) >= self.cfg.failback_after {
                self.last_failback = now;
                self.connect_first(current);
            }
            return;
        }
        if now < self.next_attempt {
            return;
        }
        if !self.connect_first(self.cfg.endpoints.len()) {
            self.next_attempt = Instant::now() + self.backoff.next_delay();
            self.down_since.get_or_insert(now);
        }
    }

    /// Tries the endpoints before `limit` in order; keeps the first that
    /// opens. True on success.
    fn connect_first(&mut self, limit: usize) -> bool {
        for i in 0..limit {
            let ep = &self.cfg.endpoints[i];
            match Connection::open(ep, &self.cfg.transport) {
                Ok(c) => {
                    let c_ = &self.shared.counters;
                    if self.ever_connected {
                        c_.reconnects.fetch_add(1, Relaxed);
                    }
                    self.ever_connected = true;
                    self.conn = Some((i, c));
                    c_.connected.store(true, Relaxed);
                    c_.current.store(i, Relaxed);
                    self.backoff.reset();
                    self.last_failback = Instant::now();
                    return true;
                }
                Err(e) => {
                    self.shared.counters.endpoints[i]
                        .failed
                        .fetch_add(1, Relaxed);
                    self.shared.reporter.report(&e);
                }
            }
        }
        false
    }

    fn disconnect(&mut self) {
        self.conn = None;
        self.shared.counters.connected.store(false, Relaxed);
        self.shared.counters.current.store(usize::MAX, Relaxed);
    }

    /// Sleeps, waking early on shutdown.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.shared.shutdown.load(Relaxed) {
            let now = Instant::now();
            if now >= until {
                break;
            }
            thread::park_timeout(until - now);
        }
    }

    /// Moves the pending frames to the spool.
    fn spool_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.shared
            .spool_frames(self.pending.iter().map(Vec::as_slice));
        self.pending.clear();
        self.pending_bytes = 0;
    }

    /// Sends frames on the current connection and does the accounting.
    /// Returns how many frames are done with.
    fn send(&mut self, from_spool: bool) -> usize {
        let Some((i, conn)) = self.conn.as_mut() else {
            return 0;
        };
        let i = *i;
        let ep = &self.cfg.endpoints[i];
        let out = if from_spool {
            conn.send(
                ep,
                &self.cfg.transport,
                self.replay.iter().map(Vec::as_slice),
            )
        } else {
            conn.send(
                ep,
                &self.cfg.transport,
                self.pending.iter().map(Vec::as_slice),
            )
        };
        let c = &self.shared.counters;
        let delivered = (out.done - out.rejected) as u64;
        if from_spool {
            if let Some(state) = &self.shared.spool {
                let mut spool = match state.spool.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                spool.consume(out.done);
                c.spooled.store(spool.records, Relaxed);
                c.spool_bytes.store(spool.bytes, Relaxed);
            }
        }
        c.sent.fetch_add(delivered, Relaxed);
        c.endpoints[i].sent.fetch_add(delivered, Relaxed);
        c.bytes_sent.fetch_add(out.bytes, Relaxed);
        if delivered > 0 {
            self.down_since = None;
        }
        if out.rejected > 0 {
            c.dropped_rejected.fetch_add(out.rejected as u64, Relaxed);
            self.shared.reporter.report(&TransportError::Rejected {
                endpoint: ep.to_string(),
                status: out.reject_status,
                count: out.rejected,
            });
        }
        if let Some(e) = out.error {
            c.endpoints[i].failed.fetch_add(1, Relaxed);
            if matches!(e, TransportError::HttpStatus { .. }) {
                // The server is up but not taking messages: wait before retrying.
                self.next_attempt = Instant::now() + self.backoff.next_delay();
                self.down_since.get_or_insert_with(Instant::now);
            }
            self.disconnect();
            self.shared.reporter.report(&e);
        }
        out.done
    }

    /// Sends every pending frame as one batch. Frames done with leave
    /// `pending`; after a failure the rest stay and are re-sent whole on the
    /// next connection.
    fn write_pending(&mut self) {
        let done = self.send(false);
        let bytes: usize = self.pending.drain(..done).map(|f| f.len() + 1).sum();
        self.pending_bytes -= bytes;
        if self.conn.is_some() {
            self.send_drop_notice();
        }
    }

    /// Sends one batch read from the spool; what was delivered is consumed.
    fn replay_spool(&mut self) {
        let Some(state) = &self.shared.spool else {
            return;
        };
        let mut loss = Loss::default();
        let peeked = {
            let mut spool = match state.spool.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let r = spool.peek(self.cfg.batch_max_bytes, &mut self.replay, &mut loss);
            self.shared.counters.spooled.store(spool.records, Relaxed);
            self.shared.counters.spool_bytes.store(spool.bytes, Relaxed);
            r
        };
        self.shared
            .counters
            .dropped_spool_corrupt
            .fetch_add(loss.corrupt, Relaxed);
        if let Err(source) = peeked {
            self.shared.reporter.report(&TransportError::Spool {
                dir: state.dir.clone(),
                source,
            });
            self.sleep(IDLE_TICK);
            return;
        }
        if !self.replay.is_empty() {
            self.send(true);
        }
        self.replay.clear();
    }

    /// After drops, one notice carrying the count follows the next delivered batch.
    fn send_drop_notice(&mut self) {
        let dropped = self.shared.counters.dropped();
        if dropped <= self.drops_reported {
            return;
        }
        let Some((i, conn)) = self.conn.as_mut() else {
            return;
        };
        let mut frame = Vec::with_capacity(512);
        encode_drop_notice(
            &self.cfg.encode,
            &self.cfg.statics,
            dropped - self.drops_reported,
            dropped,
            &mut frame,
        );
        let ep = &self.cfg.endpoints[*i];
        let out = conn.send(ep, &self.cfg.transport, std::iter::once(frame.as_slice()));
        if out.done == 1 {
            self.drops_reported = dropped;
            let c = &self.shared.counters;
            c.notices_sent.fetch_add(1, Relaxed);
            c.bytes_sent.fetch_add(out.bytes, Relaxed);
        }
        if let Some(e) = out.error {
            self.disconnect();
            self.shared.reporter.report(&e);
        }
    }

    /// At shutdown: with a spool, whatever was not sent goes to it for the
    /// next process; without, it is counted as dropped.
    fn finish(&mut self) {
        if self.shared.spool.is_some() {
            while let Ok(f) = self.rx.try_recv() {
                self.take(f);
            }
            self.spool_pending();
            return;
        }
        let mut n = self.pending.len() as u64;
        self.pending.clear();
        while let Ok(f) = self.rx.try_recv() {
            self.shared
                .counters
                .queued_bytes
                .fetch_sub(f.len(), Relaxed);
            n += 1;
        }
        self.shared.counters.dropped_shutdown.fetch_add(n, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let mut prev_max = Duration::ZERO;
        for i in 0..6 {
            let d = b.next_delay();
            let ceiling = Duration::from_millis((100u64 << i).min(800));
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "step {i}: {d:?} vs {ceiling:?}"
            );
            prev_max = prev_max.max(d);
        }
        assert!(prev_max <= Duration::from_millis(800));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
