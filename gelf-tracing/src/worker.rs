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
use crate::spool::{Appended, Fate, Loss, Spool};
use crate::stats::{Counters, DropCause};
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
    /// Appends frames to the spool and counts what the spool decided: stored
    /// (the `spooled` gauge), refused or evicted by the full policy, damaged.
    /// Frames whose fate is [`Fate::Failed`] are the caller's to keep or to
    /// count as dropped. `None` without a spool.
    pub(crate) fn spool_frames(&self, frames: &[&[u8]]) -> Option<Appended> {
        let state = self.spool.as_ref()?;
        let c = &self.counters;
        let mut spool = match state.spool.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut loss = Loss::default();
        let mut appended = spool.append(frames, &mut loss);
        c.spooled.store(spool.records, Relaxed);
        c.spool_bytes.store(spool.bytes, Relaxed);
        drop(spool);
        c.dropped_spool_full
            .fetch_add(appended.count(Fate::Refused) + loss.full, Relaxed);
        c.dropped_spool_corrupt.fetch_add(loss.corrupt, Relaxed);
        if let Some(source) = appended.error.take() {
            self.reporter.report(&TransportError::Spool {
                dir: state.dir.clone(),
                source,
            });
        }
        Some(appended)
    }
}

/// One stderr line per drop cause, at most once per interval each.
struct DropReporter {
    interval: Duration,
    /// Per cause: the total when last printed, and when.
    printed: [(u64, Option<Instant>); DropCause::ALL.len()],
    last_check: Instant,
}

impl DropReporter {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            printed: [(0, None); DropCause::ALL.len()],
            last_check: Instant::now(),
        }
    }

    /// Prints a line for each cause with new drops whose last line is older
    /// than the interval (or every cause with new drops when `now_all`).
    fn report(&mut self, counters: &Counters, now_all: bool) {
        let now = Instant::now();
        if !now_all && now.duration_since(self.last_check) < Duration::from_millis(200) {
            return;
        }
        self.last_check = now;
        for (k, (cause, total)) in counters.drops_by_cause().into_iter().enumerate() {
            let (seen, at) = &mut self.printed[k];
            if total <= *seen {
                continue;
            }
            if !now_all && at.is_some_and(|t| now.duration_since(t) < self.interval) {
                continue;
            }
            eprintln!(
                "gelf-tracing: {} events dropped ({}): {}; {total} dropped for this cause since start",
                total - *seen,
                cause.name(),
                cause.explain()
            );
            *seen = total;
            *at = Some(now);
        }
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
    pub(crate) stderr_interval: Duration,
    pub(crate) encode: EncodeConfig,
    pub(crate) statics: Vec<OwnedField>,
}

pub(crate) struct Worker {
    cfg: WorkerConfig,
    shared: Arc<Shared>,
    rx: Receiver<Vec<u8>>,
    /// Frames taken from the queue (or sent back from a connection given
    /// up) and not yet written.
    pending: VecDeque<Vec<u8>>,
    pending_bytes: usize,
    /// Frames written to the current TCP/TLS connection that the peer has not
    /// acknowledged yet, with where each ends on the wire. They are counted
    /// as sent when acknowledged, and sent again if the connection is given up.
    unacked: VecDeque<(u64, Vec<u8>)>,
    /// When the peer last acknowledged bytes (or the first unacknowledged
    /// frame was written).
    ack_progress: Instant,
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
    /// Per endpoint: not tried before this, because it stalled.
    avoid_until: Vec<Option<Instant>>,
    /// Records read from the spool, in flight.
    replay: Vec<Vec<u8>>,
    /// Per cause, the drops already told in an in-band notice.
    notice_reported: [u64; DropCause::ALL.len()],
    drop_reporter: DropReporter,
}

/// While frames wait for the peer's acknowledgement, the worker looks this often.
const ACK_TICK: Duration = Duration::from_millis(5);
/// When leaving a healthy endpoint for a preferred one, wait this long for
/// the frames written to it to be acknowledged.
const SWITCH_ACK_WAIT: Duration = Duration::from_millis(500);

impl Worker {
    pub(crate) fn new(cfg: WorkerConfig, shared: Arc<Shared>, rx: Receiver<Vec<u8>>) -> Self {
        let backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
        let now = Instant::now();
        let n = cfg.endpoints.len();
        let drop_reporter = DropReporter::new(cfg.stderr_interval);
        Self {
            cfg,
            shared,
            rx,
            pending: VecDeque::new(),
            pending_bytes: 0,
            unacked: VecDeque::new(),
            ack_progress: now,
            conn: None,
            ever_connected: false,
            backoff,
            next_attempt: now,
            down_since: None,
            last_failback: now,
            avoid_until: vec![None; n],
            replay: Vec::new(),
            notice_reported: [0; DropCause::ALL.len()],
            drop_reporter,
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
        self.poll_acks();
        self.drop_reporter.report(&self.shared.counters, false);
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
            // Move the queue to disk while the spool takes it; when it
            // fails (disk full, I/O error), keep one batch in memory and
            // leave the rest in the queue.
            while self.spool_pending() {
                let mut got = false;
                while self.pending_bytes < self.cfg.batch_max_bytes {
                    match self.rx.try_recv() {
                        Ok(f) => {
                            self.take(f);
                            got = true;
                        }
                        Err(_) => break,
                    }
                }
                if !got {
                    break;
                }
            }
        }
        // Wait for the next attempt; with a spool, keep draining the queue to it.
        let mut wait = self.next_attempt.saturating_duration_since(Instant::now());
        if self.shared.spool.is_some() {
            wait = wait.min(IDLE_TICK);
        }
        self.sleep(wait);
    }

    /// Takes a frame from the queue into `pending`.
    fn take(&mut self, frame: Vec<u8>) {
        let c = &self.shared.counters;
        c.queued_bytes.fetch_sub(frame.len(), Relaxed);
        if !c.hold(1) {
            // The guard has given up on this worker and counted what it held.
            c.dropped_shutdown.fetch_add(1, Relaxed);
            return;
        }
        self.pending_bytes += frame.len() + 1;
        self.pending.push_back(frame);
    }

    /// Tops up `pending` from the queue, waiting a little for the first frame
    /// when `wait` is set. Returns false when there is nothing to do.
    fn fill(&mut self, wait: bool) -> bool {
        if self.pending.is_empty() && wait {
            let tick = if self.unacked.is_empty() {
                IDLE_TICK
            } else {
                ACK_TICK
            };
            match self.rx.recv_timeout(tick) {
                Ok(f) => self.take(f),
                Err(RecvTimeoutError::Timeout) => {
                    self.idle_housekeeping();
                    return self.spool_has_records();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // The layer is gone: nothing more will come. Stop once
                    // what was written is acknowledged and the spool is
                    // empty (the guard may still be waiting for them).
                    if self.unacked.is_empty() && !self.spool_has_records() {
                        self.shared.shutdown.store(true, Relaxed);
                        return false;
                    }
                    self.sleep(tick);
                    self.idle_housekeeping();
                    return self.spool_has_records();
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

    /// Counts what the peer has acknowledged as sent; gives the endpoint up
    /// when written frames stay unacknowledged for the stall timeout.
    fn poll_acks(&mut self) {
        self.count_acks(true);
    }

    /// Counts acknowledgements; with `judge_stall`, a peer that acknowledged
    /// nothing for the stall timeout is given up.
    fn count_acks(&mut self, judge_stall: bool) {
        if self.unacked.is_empty() {
            return;
        }
        let Some((i, conn)) = self.conn.as_ref() else {
            return;
        };
        let i = *i;
        let Some(acked) = conn.acked() else {
            return;
        };
        let mut n = 0u64;
        while self.unacked.front().is_some_and(|(end, _)| *end <= acked) {
            self.unacked.pop_front();
            n += 1;
        }
        let c = &self.shared.counters;
        if n > 0 {
            if c.release(n) {
                c.sent.fetch_add(n, Relaxed);
                c.endpoints[i].sent.fetch_add(n, Relaxed);
            }
            self.ack_progress = Instant::now();
            self.down_since = None;
        } else if judge_stall && self.ack_progress.elapsed() >= self.cfg.transport.stall_timeout {
            let e = TransportError::Stalled {
                endpoint: self.cfg.endpoints[i].to_string(),
                after: self.cfg.transport.stall_timeout,
            };
            self.shared.reporter.report(&e);
            self.endpoint_stalled(i);
        }
    }

    /// The endpoint stopped reading: leave it (its unacknowledged frames go
    /// back to `pending`) and do not try it again before `failback_after`.
    fn endpoint_stalled(&mut self, i: usize) {
        let c = &self.shared.counters;
        c.stalls.fetch_add(1, Relaxed);
        c.endpoints[i].stalled.fetch_add(1, Relaxed);
        c.endpoints[i].failed.fetch_add(1, Relaxed);
        self.avoid_until[i] = Some(Instant::now() + self.cfg.failback_after);
        self.down_since.get_or_insert_with(Instant::now);
        self.close();
    }

    /// Drops a connection the peer closed, returns to a preferred endpoint
    /// when it is back, and connects when due (endpoints in order, skipping
    /// those that stalled lately).
    fn check_connection(&mut self) {
        // One cheap non-blocking peek per batch: frames written into a
        // connection the server already closed would be lost unnoticed.
        if self.conn.as_mut().is_some_and(|(_, c)| c.peer_closed()) {
            self.close();
        }
        let now = Instant::now();
        if let Some((current, _)) = self.conn {
            if current > 0 && now.duration_since(self.last_failback) >= self.cfg.failback_after {
                self.last_failback = now;
                if let Some(better) = self.connect_first(current) {
                    self.settle_before_switch();
                    self.close();
                    self.install(better);
                }
            }
            return;
        }
        if now < self.next_attempt {
            return;
        }
        let n = self.cfg.endpoints.len();
        if let Some(c) = self.connect_first(n) {
            self.install(c);
            return;
        }
        self.down_since.get_or_insert(now);
        let earliest_allowed = self.avoid_until.iter().flatten().min().copied();
        let every_one_avoided = self.avoid_until.iter().all(|a| a.is_some_and(|t| t > now));
        self.next_attempt = match (every_one_avoided, earliest_allowed) {
            (true, Some(t)) => t,
            _ => Instant::now() + self.backoff.next_delay(),
        };
    }

    /// Tries the endpoints before `limit` in order, skipping those that
    /// stalled within `failback_after`; returns the first that opens.
    fn connect_first(&mut self, limit: usize) -> Option<(usize, Connection)> {
        let now = Instant::now();
        for i in 0..limit {
            if self.avoid_until[i].is_some_and(|t| t > now) {
                continue;
            }
            self.avoid_until[i] = None;
            let ep = &self.cfg.endpoints[i];
            match Connection::open(ep, &self.cfg.transport) {
                Ok(c) => return Some((i, c)),
                Err(e) => {
                    self.shared.counters.endpoints[i]
                        .failed
                        .fetch_add(1, Relaxed);
                    self.shared.reporter.report(&e);
                }
            }
        }
        None
    }

    fn install(&mut self, (i, c): (usize, Connection)) {
        let counters = &self.shared.counters;
        if self.ever_connected {
            counters.reconnects.fetch_add(1, Relaxed);
        }
        self.ever_connected = true;
        self.conn = Some((i, c));
        counters.connected.store(true, Relaxed);
        counters.current.store(i, Relaxed);
        self.backoff.reset();
        self.last_failback = Instant::now();
    }

    /// Before leaving a working connection, gives the peer a moment to
    /// acknowledge what was written to it.
    fn settle_before_switch(&mut self) {
        let until = Instant::now() + SWITCH_ACK_WAIT;
        while !self.unacked.is_empty() && Instant::now() < until {
            self.poll_acks();
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Closes the connection. Frames the peer has not acknowledged go back to
    /// the front of `pending`, to be sent again on the next connection; the
    /// old connection is then reset, so a peer that stalled never receives
    /// them later as well.
    fn close(&mut self) {
        self.count_acks(false);
        if let Some((_, conn)) = self.conn.take() {
            if self.unacked.is_empty() {
                drop(conn);
            } else {
                conn.abort();
            }
        }
        let n = self.unacked.len() as u64;
        if n > 0 {
            self.shared
                .counters
                .unacknowledged_resent
                .fetch_add(n, Relaxed);
            while let Some((_, f)) = self.unacked.pop_back() {
                self.pending_bytes += f.len() + 1;
                self.pending.push_front(f);
            }
        }
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

    /// Moves the pending frames to the spool. Frames the spool could not
    /// store (disk full, I/O error) stay in `pending`. True when `pending`
    /// is empty afterwards.
    fn spool_pending(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let c = &self.shared.counters;
        let n = self.pending.len() as u64;
        if !c.release(n) {
            // Reaped by the guard: already counted as dropped.
            self.pending.clear();
            self.pending_bytes = 0;
            return true;
        }
        self.pending.make_contiguous();
        let frames: Vec<&[u8]> = self.pending.iter().map(Vec::as_slice).collect();
        let Some(appended) = self.shared.spool_frames(&frames) else {
            c.hold(n);
            return false;
        };
        drop(frames);
        let mut keep = VecDeque::new();
        for (f, fate) in self.pending.drain(..).zip(appended.fates) {
            if fate == Fate::Failed {
                keep.push_back(f);
            }
        }
        let kept = keep.len() as u64;
        if kept > 0 && !c.hold(kept) {
            c.dropped_shutdown.fetch_add(kept, Relaxed);
            keep.clear();
        }
        self.pending_bytes = keep.iter().map(|f| f.len() + 1).sum();
        self.pending = keep;
        self.pending.is_empty()
    }

    /// Sends frames on the current connection and does the accounting.
    /// Frames written to a TCP/TLS connection wait in `unacked` for the
    /// peer's acknowledgement; elsewhere a frame is done once written (UDP)
    /// or answered (HTTP).
    fn send(&mut self, from_spool: bool) {
        let Some((i, conn)) = self.conn.as_mut() else {
            return;
        };
        let i = *i;
        let ep = &self.cfg.endpoints[i];
        let abort = &self.shared.shutdown;
        let tracked = conn.tracks_acks();
        let out = if from_spool {
            conn.send(
                ep,
                &self.cfg.transport,
                self.replay.iter().map(Vec::as_slice),
                abort,
            )
        } else {
            self.pending.make_contiguous();
            conn.send(
                ep,
                &self.cfg.transport,
                self.pending.iter().map(Vec::as_slice),
                abort,
            )
        };
        let c = &self.shared.counters;
        c.bytes_sent.fetch_add(out.bytes, Relaxed);
        // Frames read from the spool and written leave the spool for the
        // worker's hands until acknowledged (or, if the guard has given up on
        // the worker meanwhile, are counted as dropped).
        let mut reaped = false;
        if from_spool {
            if tracked && !c.hold(out.done as u64) {
                c.dropped_shutdown.fetch_add(out.done as u64, Relaxed);
                reaped = true;
            }
            if let Some(state) = &self.shared.spool {
                let mut spool = match state.spool.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                let mut loss = Loss::default();
                spool.consume(out.done, &mut loss);
                c.spooled.store(spool.records, Relaxed);
                c.spool_bytes.store(spool.bytes, Relaxed);
                c.dropped_spool_corrupt.fetch_add(loss.corrupt, Relaxed);
            }
        }
        let done: Vec<Vec<u8>> = if from_spool {
            self.replay.drain(..out.done).collect()
        } else {
            let d: Vec<Vec<u8>> = self.pending.drain(..out.done).collect();
            self.pending_bytes -= d.iter().map(|f| f.len() + 1).sum::<usize>();
            d
        };
        if tracked && !reaped {
            if self.unacked.is_empty() {
                self.ack_progress = Instant::now();
            }
            self.unacked.extend(out.wire_ends.iter().copied().zip(done));
        } else if !tracked {
            let delivered = (out.done - out.rejected) as u64;
            if from_spool || c.release(out.done as u64) {
                c.sent.fetch_add(delivered, Relaxed);
                c.endpoints[i].sent.fetch_add(delivered, Relaxed);
                c.dropped_rejected.fetch_add(out.rejected as u64, Relaxed);
            }
            if delivered > 0 {
                self.down_since = None;
            }
        }
        if out.rejected > 0 {
            self.shared.reporter.report(&TransportError::Rejected {
                endpoint: ep.to_string(),
                status: out.reject_status,
                count: out.rejected,
            });
        }
        if let Some(e) = out.error {
            if !self.shared.shutdown.load(Relaxed) {
                // (At shutdown the write was cut short on purpose.)
                self.shared.reporter.report(&e);
            }
            if out.stalled {
                self.endpoint_stalled(i);
                return;
            }
            c.endpoints[i].failed.fetch_add(1, Relaxed);
            if matches!(e, TransportError::HttpStatus { .. }) {
                // The server is up but not taking messages: wait before retrying.
                self.next_attempt = Instant::now() + self.backoff.next_delay();
                self.down_since.get_or_insert_with(Instant::now);
            }
            self.close();
        }
    }

    /// Sends every pending frame as one batch. Frames done with leave
    /// `pending`; after a failure the rest stay and are re-sent whole on the
    /// next connection.
    fn write_pending(&mut self) {
        self.send(false);
        if self.conn.is_some() {
            self.send_drop_notice();
        }
    }

    /// Sends one batch read from the spool; what was written is consumed.
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

    /// After drops, one notice carrying the counts by cause follows the next
    /// delivered batch.
    fn send_drop_notice(&mut self) {
        let c = &self.shared.counters;
        let now = c.drops_by_cause();
        let delta = now.map(|(cause, n)| {
            let k = DropCause::ALL.iter().position(|&x| x == cause).unwrap_or(0);
            (cause, n.saturating_sub(self.notice_reported[k]))
        });
        if delta.iter().all(|(_, n)| *n == 0) {
            return;
        }
        let Some((i, conn)) = self.conn.as_mut() else {
            return;
        };
        let mut frame = Vec::with_capacity(512);
        let total: u64 = now.iter().map(|(_, n)| n).sum();
        encode_drop_notice(
            &self.cfg.encode,
            &self.cfg.statics,
            &delta,
            total,
            &mut frame,
        );
        let ep = &self.cfg.endpoints[*i];
        let out = conn.send(
            ep,
            &self.cfg.transport,
            std::iter::once(frame.as_slice()),
            &self.shared.shutdown,
        );
        if out.done == 1 {
            self.notice_reported = now.map(|(_, n)| n);
            c.notices_sent.fetch_add(1, Relaxed);
            c.bytes_sent.fetch_add(out.bytes, Relaxed);
        }
        if let Some(e) = out.error {
            self.shared.reporter.report(&e);
            if out.stalled {
                let i = *i;
                self.endpoint_stalled(i);
            } else {
                self.close();
            }
        }
    }

    /// At shutdown: frames not acknowledged yet go back to `pending`; with a
    /// spool, whatever was not sent goes to it for the next process (what the
    /// disk refuses is counted as dropped, spool_io); without, it is counted
    /// as dropped (shutdown). Either way stderr says how many, by cause.
    fn finish(&mut self) {
        self.close();
        while let Ok(f) = self.rx.try_recv() {
            self.take(f);
        }
        let c = &self.shared.counters;
        let n = self.pending.len() as u64;
        if n > 0 && self.shared.spool.is_some() {
            self.pending.make_contiguous();
            if c.release(n) {
                let frames: Vec<&[u8]> = self.pending.iter().map(Vec::as_slice).collect();
                if let Some(a) = self.shared.spool_frames(&frames) {
                    c.dropped_spool_io.fetch_add(a.count(Fate::Failed), Relaxed);
                }
            }
        } else if n > 0 && c.release(n) {
            c.dropped_shutdown.fetch_add(n, Relaxed);
        }
        self.pending.clear();
        self.pending_bytes = 0;
        self.drop_reporter.report(&self.shared.counters, true);
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
