//! The synthesis queue: a bounded queue in front of a fixed set of worker
//! threads (one per GPU, a configurable number on CPU). Requests beyond the
//! queue are refused at once (503 `QUEUE_FULL`), not parked.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::ops::ControlFlow;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use tokio::sync::mpsc;

use crate::errors::{Code, NodeError};
use crate::segment::split_segments;
use crate::voices::LoadedVoice;

/// One synthesis to run.
pub struct Job {
    pub voice: Arc<LoadedVoice>,
    pub text: String,
    /// Checked against the voice's capabilities when the request came in.
    pub controls: models::Controls,
    /// The language of the text's main script in the voice (`zh`, `en`).
    pub language: String,
    /// How the voice was chosen.
    pub chosen: crate::language::Chosen,
}

/// What a job sends back, in order: audio pieces (16-bit, the voice's gain
/// applied) as they are synthesised, then `Done` or `Failed`.
#[derive(Debug)]
pub enum Event {
    Audio(Vec<i16>),
    Done(Summary),
    Failed(NodeError),
}

/// A finished synthesis.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The voice's engine (`piper`, `indextts2`).
    pub engine: &'static str,
    pub sample_rate: u32,
    pub segments: usize,
    pub samples: usize,
    pub queue_wait: Duration,
    pub compute: Duration,
    /// IndexTTS2's figures (reference length, mel codes, stage timings).
    pub indextts2: Option<models::IndexTts2Stats>,
    /// The voices that spoke (the request's voice, and its helpers for words
    /// in other scripts), by name, in order of first use.
    pub voices: Vec<String>,
    /// The languages spoken (tags), in order of first use.
    pub languages: Vec<String>,
}

impl Summary {
    /// Seconds of audio.
    pub fn audio_seconds(&self) -> f64 {
        self.samples as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Pieces a job may have synthesised ahead of a slow client.
const EVENTS_AHEAD: usize = 256;

struct Queued {
    job: Job,
    enqueued: Instant,
    deadline: Instant,
    events: mpsc::Sender<Event>,
}

struct Shared {
    depth: AtomicUsize,
    busy: AtomicUsize,
    closing: AtomicBool,
    abort: AtomicBool,
}

/// The queue and its workers.
pub struct Engine {
    tx: Sender<Queued>,
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    capacity: usize,
}

/// How segments are cut and joined.
#[derive(Debug, Clone, Copy)]
pub struct Segmenting {
    pub max_chars: usize,
    pub silence_ms: u32,
}

impl Engine {
    /// Starts `workers` workers behind a queue of `capacity` waiting jobs,
    /// each computing in a thread pool of its own with `threads` threads (the
    /// worker's loop runs on one of them), so workers do not compete for one
    /// pool's threads.
    pub fn start(
        workers: usize,
        threads: usize,
        capacity: usize,
        seg: Segmenting,
    ) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded::<Queued>(capacity);
        let shared = Arc::new(Shared {
            depth: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            abort: AtomicBool::new(false),
        });
        let mut handles = Vec::new();
        for i in 0..workers {
            let rx = rx.clone();
            let shared = Arc::clone(&shared);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("synth-{i}"))
                    .spawn(move || {
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(threads.max(1))
                            .thread_name(move |t| format!("synth-{i}-{t}"))
                            .build();
                        match pool {
                            Ok(pool) => pool.install(|| worker(rx, shared, seg)),
                            // No pool: compute on the global one.
                            Err(_) => worker(rx, shared, seg),
                        }
                    })?,
            );
        }
        Ok(Self {
            tx,
            shared,
            workers: Mutex::new(handles),
            capacity,
        })
    }

    /// Queues a job; never waits. The receiver gets its [`Event`]s; dropping
    /// it stops the synthesis within one piece.
    pub fn submit(&self, job: Job, timeout: Duration) -> Result<mpsc::Receiver<Event>, NodeError> {
        if self.shared.closing.load(Ordering::SeqCst) {
            return Err(shutting_down());
        }
        let tx = &self.tx;
        let (events, rx) = mpsc::channel(EVENTS_AHEAD);
        let now = Instant::now();
        let queued = Queued {
            job,
            enqueued: now,
            deadline: now + timeout,
            events,
        };
        self.shared.depth.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(queued) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => {
                self.shared.depth.fetch_sub(1, Ordering::SeqCst);
                Err(NodeError::new(
                    Code::QueueFull,
                    format!(
                        "the synthesis queue is full ({} waiting); retry shortly",
                        self.capacity
                    ),
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.depth.fetch_sub(1, Ordering::SeqCst);
                Err(shutting_down())
            }
        }
    }

    /// Jobs waiting for a worker.
    pub fn depth(&self) -> usize {
        self.shared.depth.load(Ordering::SeqCst)
    }

    /// Jobs being synthesised now.
    pub fn busy(&self) -> usize {
        self.shared.busy.load(Ordering::SeqCst)
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Stops taking jobs; queued ones still run.
    pub fn close(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
    }

    /// Fails every job still queued with `ShuttingDown` (the one being
    /// synthesised finishes).
    pub fn abort_queued(&self) {
        self.shared.abort.store(true, Ordering::SeqCst);
    }

    /// Closes the queue and waits for the workers to finish what is queued.
    pub fn join(&self) {
        self.close();
        let handles = match self.workers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for h in handles {
            let _ = h.join();
        }
    }
}

fn worker(rx: Receiver<Queued>, shared: Arc<Shared>, seg: Segmenting) {
    loop {
        let q = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(q) => q,
            // Closed and drained: the worker is done.
            Err(RecvTimeoutError::Timeout) if shared.closing.load(Ordering::SeqCst) => return,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        shared.depth.fetch_sub(1, Ordering::SeqCst);
        if q.events.is_closed() {
            // The client went away or timed out: no one wants the audio.
            continue;
        }
        let now = Instant::now();
        let result = if shared.abort.load(Ordering::SeqCst) {
            Err(shutting_down())
        } else if now >= q.deadline {
            Err(NodeError::new(
                Code::Timeout,
                format!(
                    "the request timed out after {:?} waiting for a worker",
                    now - q.enqueued
                ),
            ))
        } else {
            shared.busy.fetch_add(1, Ordering::SeqCst);
            let r = run(&q, seg, &shared.abort);
            shared.busy.fetch_sub(1, Ordering::SeqCst);
            r
        };
        let last = match result {
            Ok(Some(summary)) => Event::Done(summary),
            // The client is gone: nobody to tell.
            Ok(None) => continue,
            Err(e) => Event::Failed(e),
        };
        let _ = q.events.blocking_send(last);
    }
}

/// Synthesises every segment, piece by piece, with silence between
/// segments, sending each piece as it is ready. `None` when the receiver
/// went away (synthesis stops at the next piece).
fn run(q: &Queued, seg: Segmenting, abort: &AtomicBool) -> Result<Option<Summary>, NodeError> {
    let started = Instant::now();
    let job = &q.job;
    let caps = job.voice.capabilities();
    // An engine that cuts its own segments (IndexTTS2: by text tokens, with
    // its own silence) gets the text whole.
    let segments = if caps.streaming == models::Streaming::PerSegment {
        vec![job.text.clone()]
    } else {
        split_segments(&job.text, seg.max_chars)
    };
    let mut stats: Option<models::IndexTts2Stats> = None;
    let mut voices: Vec<String> = Vec::new();
    let mut languages: Vec<String> = Vec::new();
    let sample_rate = job.voice.info().sample_rate;
    let gain = job.voice.gain();
    let gap = (u64::from(sample_rate) * u64::from(seg.silence_ms) / 1000) as usize;
    let mut samples = 0usize;
    let mut gone = false;
    let mut late = false;
    for (i, text) in segments.iter().enumerate() {
        if i > 0 {
            samples += gap;
            if q.events.blocking_send(Event::Audio(vec![0; gap])).is_err() {
                return Ok(None);
            }
        }
        let mut sink = |piece: &[f32]| {
            if abort.load(Ordering::SeqCst) || Instant::now() > q.deadline {
                late = true;
                return ControlFlow::Break(());
            }
            let pcm = models::audio::wav::to_i16_gain(piece, gain);
            samples += pcm.len();
            if q.events.blocking_send(Event::Audio(pcm)).is_err() {
                gone = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        };
        // A panic inside the model must fail this request, not the worker.
        let done = catch_unwind(AssertUnwindSafe(|| {
            job.voice
                .synthesize_stream(text, &job.controls, i == 0, &mut sink)
        }))
        .map_err(|p| NodeError::new(Code::ModelInferFail, panic_message(&p)))?
        .map_err(classify)?;
        if let Some(x) = done.indextts2 {
            stats.get_or_insert_with(Default::default).add(&x);
        }
        for v in done.voices {
            if !voices.contains(&v) {
                voices.push(v);
            }
        }
        for l in done.languages {
            if !languages.contains(&l) {
                languages.push(l);
            }
        }
        if gone {
            return Ok(None);
        }
        if late {
            return Err(if abort.load(Ordering::SeqCst) {
                shutting_down()
            } else {
                NodeError::new(
                    Code::Timeout,
                    format!(
                        "synthesis did not finish within {:?}",
                        q.deadline - q.enqueued
                    ),
                )
            });
        }
    }
    let now = Instant::now();
    // A voice that spoke alone reports nothing: it and the text's language.
    if voices.is_empty() {
        voices.push(job.voice.name.clone());
    }
    if languages.is_empty() && !job.language.is_empty() {
        languages.push(job.language.clone());
    }
    Ok(Some(Summary {
        engine: caps.engine.as_str(),
        sample_rate,
        segments: segments.len(),
        samples,
        queue_wait: started - q.enqueued,
        compute: now - started,
        indextts2: stats,
        voices,
        languages,
    }))
}

/// Tells an out-of-memory failure on the GPU from other inference errors.
fn classify(e: models::Error) -> NodeError {
    if let models::Error::Unsupported(u) = &e {
        // The API checks controls before queueing; an engine that refuses
        // one anyway is still the client's request.
        return NodeError::new(Code::UnsupportedControl, u.to_string());
    }
    let msg = e.to_string();
    let lower = msg.to_ascii_lowercase();
    // The driver says CUDA_ERROR_OUT_OF_MEMORY ("out of memory"); cuBLAS and
    // cuRAND report their own allocation failures.
    const OOM: [&str; 4] = [
        "out of memory",
        "cuda_error_out_of_memory",
        "cublas_status_alloc_failed",
        "curand_status_allocation_failed",
    ];
    if OOM.iter().any(|m| lower.contains(m)) {
        NodeError::new(Code::CudaOom, format!("GPU out of memory: {msg}"))
    } else {
        NodeError::new(Code::ModelInferFail, format!("inference failed: {msg}"))
    }
}

fn shutting_down() -> NodeError {
    NodeError::new(Code::ShuttingDown, "the node is shutting down")
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panic in the model: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panic in the model: {s}")
    } else {
        "panic in the model".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candle_error(msg: &str) -> models::Error {
        models::Error::Candle(candle_core::Error::Msg(msg.to_owned()))
    }

    #[test]
    fn gpu_allocation_failures_are_cuda_oom_and_the_rest_inference_errors() {
        for msg in [
            r#"DriverError(CUDA_ERROR_OUT_OF_MEMORY, "out of memory")"#,
            "cublas error: CUBLAS_STATUS_ALLOC_FAILED",
            "CURAND_STATUS_ALLOCATION_FAILED",
        ] {
            assert!(classify(candle_error(msg)).code == Code::CudaOom, "{msg}");
        }
        for msg in [
            "shape mismatch in matmul, lhs: [1, 2], rhs: [3, 4]",
            r#"DriverError(CUDA_ERROR_ILLEGAL_ADDRESS, "an illegal memory access was encountered")"#,
        ] {
            assert!(
                classify(candle_error(msg)).code == Code::ModelInferFail,
                "{msg}"
            );
        }
    }
}
