//! The HTTP surface: routes in one place, shared state in an `Arc`, errors as
//! JSON with a stable `error_code`, and one GELF event per synthesis request.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tracing::field::Empty;
use tracing::Instrument;

use crate::config::{valid_voice_name, Config};
use crate::engine::{Engine, EngineError, Job, Synthesized};
use crate::metrics::{Gauges, Metrics};
use crate::telemetry::GpuMonitor;
use crate::voices::{LoadedVoice, Voices};

tokio::task_local! {
    /// The current request's id, for error bodies.
    static REQUEST_ID: String;
}

/// What the node holds once its voices are loaded.
pub struct Ready {
    pub voices: Voices,
    pub engine: Engine,
    /// `cpu` or `cuda:0`.
    pub device: String,
    pub gpu: Option<GpuMonitor>,
}

/// State shared by every handler.
pub struct AppState {
    pub cfg: Config,
    pub ready: OnceLock<Ready>,
    pub metrics: Metrics,
    pub gelf: Option<gelf_tracing::GelfHandle>,
}

impl AppState {
    fn ready(&self) -> Result<&Ready, ApiError> {
        self.ready.get().ok_or(ApiError::NotReady)
    }
}

/// All routes, with the request-context middleware and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.cfg.max_body_bytes;
    Router::new()
        .route("/", get(index))
        .route("/api/tts", post(tts))
        .route("/api/voices", get(voices))
        .route("/v1/audio/speech", post(openai_speech))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            request_context,
        ))
        .with_state(state)
}

// ---------------------------------------------------------------- errors

/// Every way a request can fail, each with its HTTP status and stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("text is empty")]
    TextEmpty,
    #[error("text has {chars} characters; the limit is {max}")]
    TextTooLong { chars: usize, max: usize },
    #[error("request body is over the size limit (--max-body-bytes)")]
    BodyTooLarge,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("response_format {0:?} is not supported (use wav or pcm)")]
    UnsupportedFormat(String),
    #[error("voice {0:?} is not served by this node")]
    VoiceNotFound(String),
    #[error("no route for this path")]
    NotFound,
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("the voice is still loading")]
    NotReady,
    #[error("the synthesis queue is full ({0} waiting); retry shortly")]
    QueueFull(usize),
    #[error("synthesis did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("GPU out of memory: {0}")]
    CudaOom(String),
    #[error("inference failed: {0}")]
    ModelInfer(String),
}

/// Every `error_code` the node emits (each has a rule in attribution.toml).
#[cfg(test)]
pub const ERROR_CODES: [&str; 17] = [
    "TEXT_EMPTY",
    "TEXT_TOO_LONG",
    "BODY_TOO_LARGE",
    "BAD_REQUEST",
    "INVALID_PARAMETER",
    "UNSUPPORTED_FORMAT",
    "VOICE_NOT_FOUND",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "NOT_READY",
    "QUEUE_FULL",
    "TIMEOUT",
    "SHUTTING_DOWN",
    "CUDA_OOM",
    "MODEL_INFER_FAIL",
    "MODEL_LOAD_FAIL",
    "LISTEN_FAIL",
];

/// Marks an error response so the middleware can count it by code.
#[derive(Debug, Clone, Copy)]
struct ErrorCode(&'static str);

impl ApiError {
    /// The stable `error_code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TextEmpty => "TEXT_EMPTY",
            Self::TextTooLong { .. } => "TEXT_TOO_LONG",
            Self::BodyTooLarge => "BODY_TOO_LARGE",
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::InvalidParameter(_) => "INVALID_PARAMETER",
            Self::UnsupportedFormat(_) => "UNSUPPORTED_FORMAT",
            Self::VoiceNotFound(_) => "VOICE_NOT_FOUND",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::NotReady => "NOT_READY",
            Self::QueueFull(_) => "QUEUE_FULL",
            Self::Timeout(_) => "TIMEOUT",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::CudaOom(_) => "CUDA_OOM",
            Self::ModelInfer(_) => "MODEL_INFER_FAIL",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::TextEmpty
            | Self::BadRequest(_)
            | Self::InvalidParameter(_)
            | Self::UnsupportedFormat(_) => StatusCode::BAD_REQUEST,
            Self::TextTooLong { .. } | Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::VoiceNotFound(_) | Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotReady | Self::QueueFull(_) | Self::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::CudaOom(_) | Self::ModelInfer(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The part of the node the error comes from (`_component` in Graylog).
    fn component(&self) -> &'static str {
        match self {
            Self::QueueFull(_) | Self::Timeout(_) | Self::ShuttingDown | Self::NotReady => "queue",
            Self::CudaOom(_) => "gpu",
            Self::ModelInfer(_) => "model_inference",
            _ => "api",
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::QueueFull(n) => Self::QueueFull(n),
            EngineError::Timeout(d) => Self::Timeout(d),
            EngineError::ShuttingDown => Self::ShuttingDown,
            EngineError::CudaOom(m) => Self::CudaOom(m),
            EngineError::Inference(m) => Self::ModelInfer(m),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let message = self.to_string();
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        // The one event for a failed request (inside its span: node_id, request_id, …).
        // A path that does not exist is no synthesis failure: a warning.
        if matches!(self, Self::NotFound | Self::MethodNotAllowed) {
            tracing::warn!(
                error_code = code,
                component = self.component(),
                http_status = status.as_u16(),
                "{code}: {message}"
            );
        } else {
            tracing::error!(
                error_code = code,
                component = self.component(),
                http_status = status.as_u16(),
                error = %message,
                "{code}: {message}"
            );
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                request_id,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if matches!(
            self,
            Self::QueueFull(_) | Self::NotReady | Self::ShuttingDown
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp.extensions_mut().insert(ErrorCode(code));
        resp
    }
}

/// `Json` whose rejections are [`ApiError`]s (400 BAD_REQUEST, 413 BODY_TOO_LARGE).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::BodyTooLarge)
            }
            Err(rej) => Err(ApiError::BadRequest(rej.body_text())),
        }
    }
}

// ---------------------------------------------------------------- middleware

/// Request ids: taken from `X-Request-Id` when sane, else generated; echoed
/// in the response. Each synthesis request runs inside a `synthesize` span.
async fn request_context(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| sane_request_id(s))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let span = if matches!(route.as_str(), "/api/tts" | "/v1/audio/speech") {
        tracing::info_span!(
            "synthesize",
            node_id = %state.cfg.node_id,
            request_id = %request_id,
            route = %route,
            char_count = Empty,
            voice = Empty,
            model_version = Empty,
        )
    } else {
        tracing::info_span!("http", request_id = %request_id, route = %route)
    };
    let mut resp = REQUEST_ID
        .scope(request_id.clone(), next.run(req).instrument(span))
        .await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Some(ErrorCode(code)) = resp.extensions().get::<ErrorCode>().copied() {
        state.metrics.error(code);
    }
    state.metrics.request(&route, resp.status().as_u16());
    resp
}

fn sane_request_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn new_request_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

// ---------------------------------------------------------------- synthesis

/// Checked synthesis parameters.
struct Checked {
    voice: Arc<LoadedVoice>,
    text: String,
    params: models::SynthesisParams,
}

fn check_text(state: &AppState, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::TextEmpty);
    }
    let chars = text.chars().count();
    if chars > state.cfg.max_text_chars {
        return Err(ApiError::TextTooLong {
            chars,
            max: state.cfg.max_text_chars,
        });
    }
    Ok(())
}

fn find_voice(ready: &Ready, name: Option<&str>) -> Result<Arc<LoadedVoice>, ApiError> {
    if let Some(n) = name {
        if !valid_voice_name(n) {
            return Err(ApiError::VoiceNotFound(n.chars().take(100).collect()));
        }
    }
    ready
        .voices
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::VoiceNotFound(name.unwrap_or_default().to_owned()))
}

fn in_range(name: &str, v: Option<f32>, lo: f32, hi: f32) -> Result<Option<f32>, ApiError> {
    match v {
        Some(x) if !(x.is_finite() && x >= lo && x <= hi) => Err(ApiError::InvalidParameter(
            format!("{name} must be from {lo} to {hi}"),
        )),
        other => Ok(other),
    }
}

/// Runs a checked request through the queue, emits the completion event and
/// counts it.
async fn synthesize(state: &AppState, ready: &Ready, c: Checked) -> Result<Synthesized, ApiError> {
    let started = Instant::now();
    let span = tracing::Span::current();
    let info = c.voice.info();
    span.record("char_count", c.text.chars().count() as u64);
    span.record("voice", c.voice.name.as_str());
    span.record("model_version", info.model_version.as_str());
    let job = Job {
        voice: Arc::clone(&c.voice),
        text: c.text,
        params: c.params,
    };
    let timeout = state.cfg.request_timeout();
    let rx = ready.engine.submit(job, timeout)?;
    let out = match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(result)) => result?,
        Ok(Err(_)) => return Err(ApiError::ShuttingDown),
        Err(_) => return Err(ApiError::Timeout(timeout)),
    };
    let elapsed = started.elapsed();
    let audio_seconds = out.audio_seconds();
    let rtf = out.compute.as_secs_f64() / audio_seconds.max(1e-9);
    let gpu = ready.gpu.as_ref().and_then(GpuMonitor::memory);
    tracing::info!(
        duration_ms = elapsed.as_millis() as u64,
        queue_wait_ms = out.queue_wait.as_millis() as u64,
        audio_seconds,
        rtf,
        segments = out.segments as u64,
        sample_rate = u64::from(out.sample_rate),
        device = ready.device.as_str(),
        gpu_memory_used_gb = gpu.map(|g| g.used_gb),
        gpu_memory_total_gb = gpu.map(|g| g.total_gb),
        gpu_process_memory_gb = gpu.and_then(|g| g.process_gb),
        "Audio generation completed"
    );
    state
        .metrics
        .synthesis(elapsed.as_secs_f64(), audio_seconds);
    Ok(out)
}

fn audio_headers(out: &Synthesized, content_type: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let pairs = [
        ("x-audio-seconds", format!("{:.3}", out.audio_seconds())),
        ("x-synthesis-ms", out.compute.as_millis().to_string()),
        ("x-queue-wait-ms", out.queue_wait.as_millis().to_string()),
        (
            "x-rtf",
            format!(
                "{:.4}",
                out.compute.as_secs_f64() / out.audio_seconds().max(1e-9)
            ),
        ),
        ("x-segments", out.segments.to_string()),
        ("x-sample-rate", out.sample_rate.to_string()),
    ];
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    h
}

// ---------------------------------------------------------------- handlers

/// `POST /api/tts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtsRequest {
    text: String,
    voice: Option<String>,
    /// Speaking rate: 1 is the voice's own, 2 twice as fast (length_scale = 1/speed).
    speed: Option<f32>,
    noise_scale: Option<f32>,
    noise_w: Option<f32>,
    speaker: Option<u32>,
}

async fn tts(
    State(state): State<Arc<AppState>>,
    body: ApiJson<TtsRequest>,
) -> Result<Response, ApiError> {
    let req = body.0;
    let ready = state.ready()?;
    let voice = find_voice(ready, req.voice.as_deref())?;
    check_text(&state, &req.text)?;
    let params = params_for(&voice, req.speed, req.noise_scale, req.noise_w, req.speaker)?;
    let out = synthesize(
        &state,
        ready,
        Checked {
            voice,
            text: req.text,
            params,
        },
    )
    .await?;
    let wav = models::wav::wav_i16(&out.samples, out.sample_rate);
    Ok((audio_headers(&out, "audio/wav"), wav).into_response())
}

fn params_for(
    voice: &LoadedVoice,
    speed: Option<f32>,
    noise_scale: Option<f32>,
    noise_w: Option<f32>,
    speaker: Option<u32>,
) -> Result<models::SynthesisParams, ApiError> {
    let info = voice.info();
    let mut p = models::SynthesisParams::from_voice(info);
    if let Some(s) = in_range("speed", speed, 0.25, 4.0)? {
        p.length_scale /= s;
    }
    if let Some(n) = in_range("noise_scale", noise_scale, 0.0, 2.0)? {
        p.noise_scale = n;
    }
    if let Some(n) = in_range("noise_w", noise_w, 0.0, 2.0)? {
        p.noise_w = n;
    }
    if let Some(s) = speaker {
        if s as usize >= info.num_speakers.max(1) {
            return Err(ApiError::InvalidParameter(format!(
                "speaker must be below {} for voice {}",
                info.num_speakers.max(1),
                voice.name
            )));
        }
        p.speaker = Some(s);
    }
    Ok(p)
}

/// `POST /v1/audio/speech` body, as OpenAI's API defines it.
#[derive(Debug, Deserialize)]
pub struct OpenAiSpeech {
    #[allow(dead_code)]
    model: Option<String>,
    input: String,
    voice: Option<String>,
    response_format: Option<String>,
    speed: Option<f32>,
}

/// OpenAI's built-in voice names map to the node's default voice, so existing
/// clients work unchanged.
const OPENAI_VOICES: [&str; 11] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
];

async fn openai_speech(
    State(state): State<Arc<AppState>>,
    body: ApiJson<OpenAiSpeech>,
) -> Result<Response, ApiError> {
    let req = body.0;
    let ready = state.ready()?;
    let format = req.response_format.as_deref().unwrap_or("wav");
    if format != "wav" && format != "pcm" {
        return Err(ApiError::UnsupportedFormat(
            format.chars().take(32).collect(),
        ));
    }
    let voice_name = req
        .voice
        .as_deref()
        .filter(|v| !OPENAI_VOICES.contains(&v.to_ascii_lowercase().as_str()));
    let voice = find_voice(ready, voice_name)?;
    check_text(&state, &req.input)?;
    let params = params_for(&voice, req.speed, None, None, None)?;
    let out = synthesize(
        &state,
        ready,
        Checked {
            voice,
            text: req.input,
            params,
        },
    )
    .await?;
    if format == "pcm" {
        let pcm = models::wav::pcm_i16_le(&out.samples);
        Ok((audio_headers(&out, "audio/pcm"), pcm).into_response())
    } else {
        let wav = models::wav::wav_i16(&out.samples, out.sample_rate);
        Ok((audio_headers(&out, "audio/wav"), wav).into_response())
    }
}

#[derive(Serialize)]
struct Range3 {
    min: f32,
    max: f32,
    default: f32,
}

#[derive(Serialize)]
struct VoiceView<'a> {
    name: &'a str,
    language: &'a str,
    quality: &'a str,
    sample_rate: u32,
    num_speakers: usize,
    speakers: &'a [String],
    model_version: &'a str,
    default: bool,
    controls: Controls,
}

#[derive(Serialize)]
struct Controls {
    speed: Range3,
    noise_scale: Range3,
    noise_w: Range3,
    speaker: bool,
}

async fn voices(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let ready = state.ready()?;
    let list: Vec<VoiceView<'_>> = ready
        .voices
        .map
        .values()
        .map(|v| {
            let info = v.info();
            let defaults = models::SynthesisParams::from_voice(info);
            VoiceView {
                name: &v.name,
                language: &info.language,
                quality: &info.quality,
                sample_rate: info.sample_rate,
                num_speakers: info.num_speakers,
                speakers: &info.speaker_names,
                model_version: &info.model_version,
                default: v.name == ready.voices.default,
                controls: Controls {
                    speed: Range3 {
                        min: 0.25,
                        max: 4.0,
                        default: 1.0,
                    },
                    noise_scale: Range3 {
                        min: 0.0,
                        max: 2.0,
                        default: defaults.noise_scale,
                    },
                    noise_w: Range3 {
                        min: 0.0,
                        max: 2.0,
                        default: defaults.noise_w,
                    },
                    speaker: info.num_speakers > 1,
                },
            }
        })
        .collect();
    Ok(Json(serde_json::json!({
        "default": ready.voices.default,
        "device": ready.device,
        "voices": list,
    }))
    .into_response())
}

async fn index() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.ready.get() {
        Some(r) => Json(serde_json::json!({
            "status": "ready",
            "device": r.device,
            "voices": r.voices.map.keys().collect::<Vec<_>>(),
        }))
        .into_response(),
        // A readiness probe is no failed request: no error event.
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(serde_json::json!({ "status": "loading" })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.ready.get();
    let gauges = Gauges {
        queue_depth: ready.map_or(0, |r| r.engine.depth()),
        queue_capacity: ready.map_or(0, |r| r.engine.capacity()),
        busy_workers: ready.map_or(0, |r| r.engine.busy()),
        ready: ready.is_some(),
        gpu: ready
            .and_then(|r| r.gpu.as_ref())
            .and_then(GpuMonitor::memory),
        gelf: state.gelf.as_ref().map(gelf_tracing::GelfHandle::stats),
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&gauges),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_listed_code_a_status_and_a_component() {
        let all = [
            ApiError::TextEmpty,
            ApiError::TextTooLong { chars: 2, max: 1 },
            ApiError::BodyTooLarge,
            ApiError::BadRequest(String::new()),
            ApiError::InvalidParameter(String::new()),
            ApiError::UnsupportedFormat(String::new()),
            ApiError::VoiceNotFound(String::new()),
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::NotReady,
            ApiError::QueueFull(1),
            ApiError::Timeout(Duration::from_secs(1)),
            ApiError::ShuttingDown,
            ApiError::CudaOom(String::new()),
            ApiError::ModelInfer(String::new()),
        ];
        for e in &all {
            assert!(ERROR_CODES.contains(&e.code()), "{}", e.code());
            assert!(e.status().is_client_error() || e.status().is_server_error());
            assert!(!e.component().is_empty());
        }
        assert_eq!(
            ApiError::QueueFull(1).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::TextTooLong { chars: 2, max: 1 }.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(sane_request_id("req-42_a.b:c"));
        for bad in ["", "a b", "x\ny", &"a".repeat(129), "é"] {
            assert!(!sane_request_id(bad), "{bad:?}");
        }
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(sane_request_id(&id));
    }
}
