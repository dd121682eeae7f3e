//! The background worker: takes encoded frames from the bounded queue, writes
//! them in batches, reconnects with backoff, and never loses a frame without
//! counting it.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::encode::{encode_drop_notice, EncodeConfig, OwnedField};
use crate::stats::Counters;
use crate::transport::{TcpConnection, TcpTransport};
use crate::TransportError;

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
}

impl Shared {
    pub(crate) fn new(reporter: ErrorReporter) -> Self {
        Self {
            counters: Counters::default(),
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

/// The worker's settings.
pub(crate) struct WorkerConfig {
    pub(crate) transport: TcpTransport,
    pub(crate) batch_max_bytes: usize,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) encode: EncodeConfig,
    pub(crate) statics: Vec<OwnedField>,
}

pub(crate) struct Worker {
    cfg: WorkerConfig,
    shared: Arc<Shared>,
    rx: Receiver<Vec<u8>>,
    /// Frames taken from the queue but not yet written whole.
    pending: VecDeque<Vec<u8>>,
    pending_bytes: usize,
    conn: Option<TcpConnection>,
    ever_connected: bool,
    backoff: Backoff,
    buf: Vec<u8>,
    ends: Vec<usize>,
    drops_reported: u64,
}

impl Worker {
    pub(crate) fn new(cfg: WorkerConfig, shared: Arc<Shared>, rx: Receiver<Vec<u8>>) -> Self {
        let backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
        let cap = cfg.batch_max_bytes;
        Self {
            cfg,
            shared,
            rx,
            pending: VecDeque::new(),
            pending_bytes: 0,
            conn: None,
            ever_connected: false,
            backoff,
            buf: Vec::with_capacity(cap),
            ends: Vec::new(),
            drops_reported: 0,
        }
    }

    pub(crate) fn run(mut self) {
        IN_WORKER.with(|w| w.set(true));
        while !self.shared.shutdown.load(Relaxed) {
            if !self.fill() {
                continue;
            }
            if self.ensure_connected() {
                self.write_pending();
            }
            self.shared.notify_progress();
        }
        self.discard_remaining();
        self.shared.counters.connected.store(false, Relaxed);
        self.shared.worker_done.store(true, Relaxed);
        let _g = self.shared.progress.lock();
        self.shared.progress_cv.notify_all();
    }

    fn take(&mut self, frame: Vec<u8>) {
        self.shared
            .counters
            .queued_bytes
            .fetch_sub(frame.len(), Relaxed);
        self.pending_bytes += frame.len() + 1;
        self.pending.push_back(frame);
    }

    /// Tops up `pending` from the queue. Returns false when there is nothing to write.
    fn fill(&mut self) -> bool {
        if self.pending.is_empty() {
            match self.rx.recv_timeout(IDLE_TICK) {
                Ok(f) => self.take(f),
                Err(RecvTimeoutError::Timeout) => {
                    self.idle_housekeeping();
                    return false;
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

    /// While idle: deliver a pending drop notice, notice a closed connection.
    fn idle_housekeeping(&mut self) {
        if self.conn.is_some() {
            self.send_drop_notice();
        }
        self.shared.notify_progress();
    }

    /// Connects if needed, sleeping the backoff delay after a failure.
    /// Returns true with a connection in hand.
    fn ensure_connected(&mut self) -> bool {
        // One cheap non-blocking peek per batch: frames written into a
        // connection the server already closed would be lost unnoticed.
        if self.conn.as_ref().is_some_and(TcpConnection::peer_closed) {
            self.disconnect();
        }
        if self.conn.is_some() {
            return true;
        }
        match self.cfg.transport.connect() {
            Ok(c) => {
                if self.ever_connected {
                    self.shared.counters.reconnects.fetch_add(1, Relaxed);
                }
                self.ever_connected = true;
                self.conn = Some(c);
                self.shared.counters.connected.store(true, Relaxed);
                self.backoff.reset();
                true
            }
            Err(e) => {
                self.shared.reporter.report(&e);
                let delay = self.backoff.next_delay();
                self.sleep(delay);
                false
            }
        }
    }

    fn disconnect(&mut self) {
        self.conn = None;
        self.shared.counters.connected.store(false, Relaxed);
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

    /// Writes every pending frame as one batch. Frames written whole count as
    /// sent; after a failure the rest stay pending and are re-sent whole on
    /// the next connection (the receiver discards the cut frame with the old
    /// connection).
    fn write_pending(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        self.buf.clear();
        self.ends.clear();
        for f in &self.pending {
            self.buf.extend_from_slice(f);
            self.buf.push(0);
            self.ends.push(self.buf.len());
        }
        let result = conn.write_batch(&self.buf);
        let c = &self.shared.counters;
        match result {
            Ok(()) => {
                c.sent.fetch_add(self.pending.len() as u64, Relaxed);
                c.bytes_sent.fetch_add(self.buf.len() as u64, Relaxed);
                self.pending.clear();
                self.pending_bytes = 0;
                self.send_drop_notice();
            }
            Err(partial) => {
                let whole = self
                    .ends
                    .iter()
                    .take_while(|&&e| e <= partial.written)
                    .count();
                let whole_bytes = if whole == 0 { 0 } else { self.ends[whole - 1] };
                c.sent.fetch_add(whole as u64, Relaxed);
                c.bytes_sent.fetch_add(whole_bytes as u64, Relaxed);
                self.pending.drain(..whole);
                self.pending_bytes -= whole_bytes;
                self.disconnect();
                self.shared.reporter.report(&TransportError::Write {
                    endpoint: self.cfg.transport.endpoint.to_string(),
                    source: partial.error,
                });
            }
        }
    }

    /// After drops, one notice carrying the count follows the next delivered batch.
    fn send_drop_notice(&mut self) {
        let dropped = self.shared.counters.dropped();
        if dropped <= self.drops_reported {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
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
        frame.push(0);
        match conn.write_batch(&frame) {
            Ok(()) => {
                self.drops_reported = dropped;
                let c = &self.shared.counters;
                c.notices_sent.fetch_add(1, Relaxed);
                c.bytes_sent.fetch_add(frame.len() as u64, Relaxed);
            }
            Err(partial) => {
                self.disconnect();
                self.shared.reporter.report(&TransportError::Write {
                    endpoint: self.cfg.transport.endpoint.to_string(),
                    source: partial.error,
                });
            }
        }
    }

    /// At shutdown: whatever was not sent is counted as dropped.
    fn discard_remaining(&mut self) {
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
