//! The response to a synthesis request: a job's audio pieces encoded in the
//! asked format, either whole (`Content-Length`) or streamed (chunked
//! transfer encoding, each piece sent as it is synthesised), and the one
//! event that ends the request: `Audio generation completed`, an ERROR with
//! its code, or a WARN `CLIENT_CLOSED` when the client went away mid-stream.
//!
//! A streamed response waits for the first piece before it answers, so a
//! failure up to then (queue full, timeout in the queue, a model error on the
//! first sentence) still gets its HTTP status. A failure after the first
//! byte cannot change the status: the stream is cut without its final
//! chunk, which HTTP clients report as an incomplete body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio::time::timeout_at;

use crate::access::Caller;
use crate::audio::{Encoder, Format};
use crate::engine::{Event, Job, Summary};
use crate::errors::{Code, NodeError};
use crate::fields;
use crate::state::{AppState, Ready};
use crate::telemetry::GpuMonitor;

/// What to answer with, and for whom.
#[derive(Debug, Clone)]
pub struct Answer {
    pub format: Format,
    pub streamed: bool,
    /// The API key the request came with (its audio is charged to it).
    pub caller: Option<Caller>,
}

/// Runs the job and answers: whole or streamed.
pub async fn respond(
    state: Arc<AppState>,
    job: Job,
    answer: Answer,
) -> Result<Response, NodeError> {
    let started = Instant::now();
    let span = tracing::Span::current();
    let info = job.voice.info();
    span.record(fields::CHAR_COUNT, job.text.chars().count() as u64);
    span.record(fields::VOICE, job.voice.name.as_str());
    span.record(fields::MODEL_VERSION, info.model_version.as_str());
    span.record(fields::LANGUAGE, job.language.as_str());
    span.record(fields::VOICE_CHOICE, job.chosen.as_str());
    let voice_name = job.voice.name.clone();
    let sample_rate = info.sample_rate;
    let ready = state.ready()?;
    let timeout = state.cfg.request_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut rx = ready.engine.submit(job, timeout)?;
    let mut enc = answer
        .format
        .encoder(sample_rate, answer.streamed)
        .map_err(encode_failed)?;
    let mut body = Vec::new();
    // Whole: everything, then one body. Streamed: the first piece, then the rest as it comes.
    let mut samples = 0usize;
    loop {
        match next(&mut rx, deadline, timeout).await? {
            Event::Audio(pcm) => {
                samples += pcm.len();
                enc.push(&pcm, &mut body).map_err(encode_failed)?;
                if answer.streamed {
                    break;
                }
            }
            Event::Done(summary) => {
                enc.finish(&mut body).map_err(encode_failed)?;
                let first_audio = started.elapsed();
                completed(&state, ready, &summary, started, first_audio, &answer);
                return Ok((whole_headers(&summary, &answer, &voice_name), body).into_response());
            }
            Event::Failed(e) => return Err(e),
        }
    }
    let headers = stream_headers(&answer, sample_rate, &voice_name);
    let stream = Streaming {
        state: Arc::clone(&state),
        span,
        started,
        deadline,
        timeout,
        rx,
        enc,
        answer,
        sample_rate,
        samples,
        bytes: 0,
        first_audio: None,
        open: true,
    };
    let chunks =
        futures_util::stream::unfold((stream, Some(body)), |(mut s, pending)| async move {
            if let Some(first) = pending {
                let chunk = s.sent(first);
                return Some((chunk, (s, None)));
            }
            if !s.open {
                return None;
            }
            s.next_chunk().await.map(|chunk| (chunk, (s, None)))
        });
    let mut resp = Response::new(Body::from_stream(chunks));
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// The next event, within the request's deadline.
async fn next(
    rx: &mut mpsc::Receiver<Event>,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Event, NodeError> {
    match timeout_at(deadline, rx.recv()).await {
        Ok(Some(e)) => Ok(e),
        Ok(None) => Err(NodeError::new(
            Code::ShuttingDown,
            "the node is shutting down",
        )),
        Err(_) => Err(NodeError::new(
            Code::Timeout,
            format!("synthesis did not finish within {timeout:?}"),
        )),
    }
}

fn encode_failed(e: crate::audio::EncodeError) -> NodeError {
    NodeError::new(Code::EncodeFail, e.to_string())
}

/// A response being streamed. Dropped while still open (hyper drops the
/// body when the client goes away), it logs `CLIENT_CLOSED`; dropping its
/// receiver stops the synthesis within one piece.
struct Streaming {
    state: Arc<AppState>,
    span: tracing::Span,
    started: Instant,
    deadline: tokio::time::Instant,
    timeout: Duration,
    rx: mpsc::Receiver<Event>,
    enc: Box<dyn Encoder>,
    answer: Answer,
    sample_rate: u32,
    /// Samples handed to the encoder.
    samples: usize,
    /// Bytes handed to the connection.
    bytes: u64,
    first_audio: Option<Duration>,
    /// Neither completed nor failed yet.
    open: bool,
}

impl Streaming {
    /// Notes a chunk handed to the connection.
    fn sent(&mut self, chunk: Vec<u8>) -> Result<Bytes, std::io::Error> {
        if self.first_audio.is_none() && !chunk.is_empty() {
            self.first_audio = Some(self.started.elapsed());
        }
        self.bytes += chunk.len() as u64;
        Ok(Bytes::from(chunk))
    }

    fn key(&self) -> Option<&str> {
        self.answer.caller.as_ref().map(Caller::name)
    }

    fn seconds_sent(&self) -> f64 {
        self.samples as f64 / f64::from(self.sample_rate.max(1))
    }

    /// The next chunk, the last one, or the error that cuts the stream.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            let mut out = Vec::new();
            let event = match next(&mut self.rx, self.deadline, self.timeout).await {
                Ok(e) => e,
                Err(e) => return Some(Err(self.fail(e))),
            };
            match event {
                Event::Audio(pcm) => {
                    self.samples += pcm.len();
                    if let Err(e) = self.enc.push(&pcm, &mut out) {
                        return Some(Err(self.fail(encode_failed(e))));
                    }
                    if !out.is_empty() {
                        return Some(self.sent(out));
                    }
                }
                Event::Done(summary) => {
                    if let Err(e) = self.enc.finish(&mut out) {
                        return Some(Err(self.fail(encode_failed(e))));
                    }
                    self.open = false;
                    let chunk = self.sent(out);
                    let first = self.first_audio.unwrap_or_else(|| self.started.elapsed());
                    if let Some(ready) = self.state.ready.get() {
                        let _in_span = self.span.enter();
                        completed(
                            &self.state,
                            ready,
                            &summary,
                            self.started,
                            first,
                            &self.answer,
                        );
                    }
                    return Some(chunk);
                }
                Event::Failed(e) => return Some(Err(self.fail(e))),
            }
        }
    }

    /// Logs a failure after the first byte (in the request's span) and
    /// returns the error that makes hyper cut the stream.
    fn fail(&mut self, e: NodeError) -> std::io::Error {
        self.open = false;
        let e = e.with_audio_sent(self.seconds_sent(), self.bytes);
        self.span.in_scope(|| e.log());
        self.state.metrics.error(e.code, self.key());
        if let Some(c) = &self.answer.caller {
            c.charge_audio(self.seconds_sent());
        }
        std::io::Error::other(e.message)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let e = NodeError::new(
            Code::ClientClosed,
            format!(
                "the client closed the connection after {:.2} s of audio",
                self.seconds_sent()
            ),
        )
        .with_audio_sent(self.seconds_sent(), self.bytes);
        self.span.in_scope(|| e.log());
        self.state.metrics.error(e.code, self.key());
        if let Some(c) = &self.answer.caller {
            c.charge_audio(self.seconds_sent());
        }
    }
}

/// The one event of a successful request, and its metrics.
fn completed(
    state: &AppState,
    ready: &Ready,
    out: &Summary,
    started: Instant,
    first_audio: Duration,
    answer: &Answer,
) {
    let elapsed = started.elapsed();
    let audio_seconds = out.audio_seconds();
    let rtf = out.compute.as_secs_f64() / audio_seconds.max(1e-9);
    let gpu = ready.gpu.as_ref().and_then(GpuMonitor::memory);
    let ix = out.indextts2;
    tracing::info!(
        { fields::ENGINE } = out.engine,
        { fields::REFERENCE_SECONDS } = ix.map(|x| x.reference_seconds),
        { fields::MEL_TOKENS } = ix.map(|x| x.mel_tokens as u64),
        { fields::REFERENCE_MS } = ix.map(|x| x.reference_ms),
        { fields::GPT_MS } = ix.map(|x| x.gpt_ms),
        { fields::S2MEL_MS } = ix.map(|x| x.s2mel_ms),
        { fields::VOCODER_MS } = ix.map(|x| x.vocoder_ms),
        { fields::DURATION_MS } = elapsed.as_millis() as u64,
        { fields::QUEUE_WAIT_MS } = out.queue_wait.as_millis() as u64,
        { fields::FIRST_AUDIO_MS } = first_audio.as_millis() as u64,
        { fields::STREAMED } = answer.streamed,
        { fields::FORMAT } = answer.format.name(),
        { fields::AUDIO_SECONDS } = audio_seconds,
        { fields::RTF } = rtf,
        { fields::SEGMENTS } = out.segments as u64,
        { fields::SAMPLE_RATE } = u64::from(out.sample_rate),
        { fields::DEVICE } = ready.device.as_str(),
        { fields::GPU_MEMORY_USED_GB } = gpu.map(|g| g.used_gb),
        { fields::GPU_MEMORY_TOTAL_GB } = gpu.map(|g| g.total_gb),
        { fields::GPU_PROCESS_MEMORY_GB } = gpu.and_then(|g| g.process_gb),
        { fields::VOICES } = out.voices.join(",").as_str(),
        { fields::LANGUAGES } = out.languages.join(",").as_str(),
        "{}",
        fields::COMPLETED
    );
    let key = answer.caller.as_ref().map(Caller::name);
    state
        .metrics
        .synthesis(elapsed.as_secs_f64(), audio_seconds, key);
    if let Some(c) = &answer.caller {
        c.charge_audio(audio_seconds);
    }
    state.metrics.first_audio(first_audio.as_secs_f64());
}

fn insert(h: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(name, v);
    }
}

fn base_headers(answer: &Answer, sample_rate: u32, voice: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    insert(&mut h, "x-voice", voice.to_owned());
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(answer.format.content_type()),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    insert(&mut h, "x-sample-rate", sample_rate.to_string());
    insert(&mut h, "x-audio-format", answer.format.name().to_owned());
    insert(&mut h, "x-streamed", answer.streamed.to_string());
    h
}

fn stream_headers(answer: &Answer, sample_rate: u32, voice: &str) -> HeaderMap {
    let mut h = base_headers(answer, sample_rate, voice);
    // Proxies must pass pieces on as they come.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h
}

fn whole_headers(out: &Summary, answer: &Answer, voice: &str) -> HeaderMap {
    let mut h = base_headers(answer, out.sample_rate, voice);
    insert(&mut h, "x-voices", out.voices.join(","));
    insert(&mut h, "x-languages", out.languages.join(","));
    let rtf = out.compute.as_secs_f64() / out.audio_seconds().max(1e-9);
    insert(
        &mut h,
        "x-audio-seconds",
        format!("{:.3}", out.audio_seconds()),
    );
    insert(
        &mut h,
        "x-synthesis-ms",
        out.compute.as_millis().to_string(),
    );
    insert(
        &mut h,
        "x-queue-wait-ms",
        out.queue_wait.as_millis().to_string(),
    );
    insert(&mut h, "x-rtf", format!("{rtf:.4}"));
    insert(&mut h, "x-segments", out.segments.to_string());
    h
}
