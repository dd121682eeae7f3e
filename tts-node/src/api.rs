//! The HTTP surface: routes in one place, shared state in an `Arc`, errors as
//! JSON with a stable `error_code`, and one GELF event per synthesis request.

use std::sync::{Arc, OnceLock};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tracing::field::Empty;
use tracing::Instrument;

use crate::audio::Format;
use crate::config::{valid_voice_name, Config};
use crate::engine::{Engine, Job};
use crate::errors::{Code, NodeError};
use crate::metrics::{Gauges, Metrics};
use crate::respond::{respond, Answer};
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
    pub fn ready(&self) -> Result<&Ready, ApiError> {
        self.ready
            .get()
            .ok_or_else(|| NodeError::new(Code::NotReady, "the voice is still loading"))
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

/// A failed request: its code (status, component, ... in
/// [`crate::errors`]) and a message.
pub type ApiError = NodeError;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    request_id: String,
}

impl IntoResponse for NodeError {
    /// The JSON error body. The failure is logged by the middleware
    /// ([`request_context`]), which finds it in the response's extensions.
    fn into_response(self) -> Response {
        let spec = self.code.spec();
        let status = spec
            .http
            .and_then(|h| StatusCode::from_u16(h).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        let body = ErrorBody {
            error: ErrorDetail {
                code: spec.code,
                message: &self.message,
                request_id,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if spec.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp.extensions_mut().insert(self);
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
            Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(NodeError::new(
                Code::BodyTooLarge,
                "request body is over the size limit (--max-body-bytes)",
            )),
            Err(rej) => Err(NodeError::new(Code::BadRequest, rej.body_text())),
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
        .scope(request_id.clone(), next.run(req).instrument(span.clone()))
        .await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Some(err) = resp.extensions_mut().remove::<NodeError>() {
        // The one event of a failed request, in its span.
        span.in_scope(|| err.log());
        state.metrics.error(err.code);
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

fn check_text(state: &AppState, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(NodeError::new(Code::TextEmpty, "text is empty"));
    }
    let chars = text.chars().count();
    let max = state.cfg.max_text_chars;
    if chars > max {
        return Err(NodeError::new(
            Code::TextTooLong,
            format!("text has {chars} characters; the limit is {max}"),
        ));
    }
    Ok(())
}

fn find_voice(ready: &Ready, name: Option<&str>) -> Result<Arc<LoadedVoice>, ApiError> {
    if let Some(n) = name {
        if !valid_voice_name(n) {
            return Err(voice_not_found(n));
        }
    }
    ready
        .voices
        .get(name)
        .cloned()
        .ok_or_else(|| voice_not_found(name.unwrap_or_default()))
}

fn voice_not_found(name: &str) -> NodeError {
    let shown: String = name.chars().take(100).collect();
    NodeError::new(
        Code::VoiceNotFound,
        format!("voice {shown:?} is not served by this node"),
    )
}

fn in_range(name: &str, v: Option<f32>, lo: f32, hi: f32) -> Result<Option<f32>, ApiError> {
    match v {
        Some(x) if !(x.is_finite() && x >= lo && x <= hi) => Err(NodeError::new(
            Code::InvalidParameter,
            format!("{name} must be from {lo} to {hi}"),
        )),
        other => Ok(other),
    }
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
    /// wav (default), pcm, mp3, opus or flac.
    format: Option<String>,
    /// Send the audio as it is synthesised (chunked), default false.
    stream: Option<bool>,
}

/// The format named in a request (`default` when none).
fn format_of(name: Option<&str>, default: Format) -> Result<Format, ApiError> {
    match name {
        None => Ok(default),
        Some(n) => Format::parse(n).ok_or_else(|| {
            let shown: String = n.chars().take(32).collect();
            NodeError::new(
                Code::UnsupportedFormat,
                format!(
                    "format {shown:?} is not served; the node serves {}",
                    Format::SERVED
                ),
            )
        }),
    }
}

async fn tts(
    State(state): State<Arc<AppState>>,
    body: ApiJson<TtsRequest>,
) -> Result<Response, ApiError> {
    let req = body.0;
    let format = format_of(req.format.as_deref(), Format::Wav)?;
    check_text(&state, &req.text)?;
    let ready = state.ready()?;
    let voice = find_voice(ready, req.voice.as_deref())?;
    let params = params_for(&voice, req.speed, req.noise_scale, req.noise_w, req.speaker)?;
    let job = Job {
        voice,
        text: req.text,
        params,
    };
    let answer = Answer {
        format,
        streamed: req.stream.unwrap_or(false),
    };
    respond(Arc::clone(&state), job, answer).await
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
            return Err(NodeError::new(
                Code::InvalidParameter,
                format!(
                    "speaker must be below {} for voice {}",
                    info.num_speakers.max(1),
                    voice.name
                ),
            ));
        }
        p.speaker = Some(s);
    }
    Ok(p)
}

/// `POST /v1/audio/speech` body, as OpenAI's API defines it (plus `stream`).
#[derive(Debug, Deserialize)]
pub struct OpenAiSpeech {
    #[allow(dead_code)]
    model: Option<String>,
    input: String,
    voice: Option<String>,
    /// mp3 (OpenAI's default), opus, flac, wav or pcm; aac is not served.
    response_format: Option<String>,
    speed: Option<f32>,
    /// Streamed by default, as OpenAI's API answers; false for a whole file.
    stream: Option<bool>,
    /// Extensions, as in `/api/tts` (0 and 0: the same audio every time).
    noise_scale: Option<f32>,
    noise_w: Option<f32>,
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
    let format = format_of(req.response_format.as_deref(), Format::Mp3)?;
    check_text(&state, &req.input)?;
    let ready = state.ready()?;
    let voice_name = req
        .voice
        .as_deref()
        .filter(|v| !OPENAI_VOICES.contains(&v.to_ascii_lowercase().as_str()));
    let voice = find_voice(ready, voice_name)?;
    let params = params_for(&voice, req.speed, req.noise_scale, req.noise_w, None)?;
    let job = Job {
        voice,
        text: req.input,
        params,
    };
    let answer = Answer {
        format,
        streamed: req.stream.unwrap_or(true),
    };
    respond(Arc::clone(&state), job, answer).await
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
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(gauges),
    )
        .into_response()
}

async fn not_found() -> NodeError {
    NodeError::new(Code::NotFound, "no route for this path")
}

async fn method_not_allowed() -> NodeError {
    NodeError::new(Code::MethodNotAllowed, "method not allowed on this path")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::HeaderMap;
    use clap::Parser;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use tower::ServiceExt;
    use tracing_subscriber::layer::SubscriberExt;

    /// A node without a voice (as before it is loaded), in process.
    fn app(args: &[&str]) -> Router {
        let mut argv = vec!["tts-node"];
        argv.extend_from_slice(args);
        let cfg = Config::parse_from(argv);
        router(Arc::new(AppState {
            cfg,
            ready: OnceLock::new(),
            metrics: Metrics::default(),
            gelf: None,
        }))
    }

    /// An event's level and fields, as text.
    type Logged = (tracing::Level, BTreeMap<String, String>);

    /// Events logged while handling requests.
    #[derive(Clone, Default)]
    struct Events(Arc<Mutex<Vec<Logged>>>);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
            self.0.insert(f.name().to_owned(), format!("{v:?}"));
        }
        fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
            self.0.insert(f.name().to_owned(), v.to_owned());
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
        fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            let mut fields = BTreeMap::new();
            e.record(&mut Fields(&mut fields));
            if let Ok(mut v) = self.0.lock() {
                v.push((*e.metadata().level(), fields));
            }
        }
    }

    impl Events {
        fn with_code(&self, code: &str) -> Vec<Logged> {
            let v = self.0.lock().map(|v| v.clone()).unwrap_or_default();
            v.into_iter()
                .filter(|(_, f)| f.get("error_code").map(String::as_str) == Some(code))
                .collect()
        }
    }

    struct Reply {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Reply {
        fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).expect("a JSON body")
        }
    }

    async fn call(app: &Router, req: axum::http::Request<Body>) -> Reply {
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body")
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    fn post(path: &str, body: &str) -> axum::http::Request<Body> {
        axum::http::Request::post(path)
            .header("content-type", "application/json")
            .header("x-request-id", "test-req-1")
            .body(Body::from(body.to_owned()))
            .expect("request")
    }

    fn get(path: &str) -> axum::http::Request<Body> {
        axum::http::Request::get(path)
            .body(Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn bad_requests_get_their_code_a_json_body_and_one_event() {
        let events = Events::default();
        let _d =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
        let app = app(&["--max-text-chars", "20", "--max-body-bytes", "1024"]);
        let long = format!("{{\"text\": \"{}\"}}", "a".repeat(21));
        let huge = format!("{{\"text\": \"{}\"}}", "a".repeat(2000));
        let cases: Vec<(axum::http::Request<Body>, u16, &str)> = vec![
            (post("/api/tts", r#"{"text": "   "}"#), 400, "TEXT_EMPTY"),
            (post("/api/tts", &long), 413, "TEXT_TOO_LONG"),
            (post("/api/tts", &huge), 413, "BODY_TOO_LARGE"),
            (post("/api/tts", r#"{"text": 42}"#), 400, "BAD_REQUEST"),
            (
                post("/api/tts", r#"{"text": "hi", "colour": 1}"#),
                400,
                "BAD_REQUEST",
            ),
            (post("/api/tts", "{not json"), 400, "BAD_REQUEST"),
            (
                post(
                    "/v1/audio/speech",
                    r#"{"input": "hi", "response_format": "aiff"}"#,
                ),
                400,
                "UNSUPPORTED_FORMAT",
            ),
            (post("/api/tts", r#"{"text": "Hello."}"#), 503, "NOT_READY"),
            (get("/nowhere"), 404, "NOT_FOUND"),
            (get("/api/tts"), 405, "METHOD_NOT_ALLOWED"),
        ];
        let mut seen = BTreeMap::new();
        for (req, status, code) in cases {
            let sent_id = req.headers().contains_key("x-request-id");
            let r = call(&app, req).await;
            assert_eq!(r.status.as_u16(), status, "{code}");
            let j = r.json();
            assert_eq!(j["error"]["code"], code);
            assert!(!j["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty());
            let id = r.headers["x-request-id"]
                .to_str()
                .unwrap_or_default()
                .to_owned();
            assert_eq!(j["error"]["request_id"], id.as_str(), "{code}");
            if sent_id {
                assert_eq!(id, "test-req-1", "the client's id is echoed");
            } else {
                assert_eq!(id.len(), 32, "a generated id");
            }
            let spec = Code::ALL
                .iter()
                .map(|c| c.spec())
                .find(|s| s.code == code)
                .expect("a code of the table");
            assert_eq!(
                r.headers.contains_key("retry-after"),
                spec.retry_after,
                "{code}"
            );
            let logged = events.with_code(code);
            let before = *seen.get(code).unwrap_or(&0);
            seen.insert(code, logged.len());
            assert_eq!(logged.len(), before + 1, "one event for {code}: {logged:?}");
            let (level, fields) = &logged[before];
            let want = if spec.level == crate::errors::Level::Warn {
                tracing::Level::WARN
            } else {
                tracing::Level::ERROR
            };
            assert_eq!(*level, want, "{code}");
            assert_eq!(fields["component"], spec.component, "{code}");
            assert_eq!(fields["http_status"], status.to_string(), "{code}");
        }
    }

    #[tokio::test]
    async fn readyz_says_loading_before_the_voice_and_logs_nothing() {
        let events = Events::default();
        let _d =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
        let app = app(&[]);
        let r = call(&app, get("/readyz")).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.json()["status"], "loading");
        assert_eq!(r.headers["retry-after"], "1");
        assert_eq!(call(&app, get("/healthz")).await.status, StatusCode::OK);
        let logged = events.0.lock().map(|v| v.len()).unwrap_or(usize::MAX);
        assert_eq!(logged, 0, "probes are no failed requests");
    }

    #[tokio::test]
    async fn metrics_count_requests_and_errors_by_code() {
        let app = app(&[]);
        for _ in 0..3 {
            call(&app, post("/api/tts", r#"{"text": ""}"#)).await;
        }
        call(&app, get("/readyz")).await;
        let r = call(&app, get("/metrics")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["content-type"], crate::metrics::CONTENT_TYPE);
        let text = String::from_utf8(r.body).expect("UTF-8");
        for want in [
            "tts_errors_total{code=\"TEXT_EMPTY\"} 3",
            "tts_errors_total{code=\"CUDA_OOM\"} 0",
            "tts_requests_total{route=\"/api/tts\",status=\"400\"} 3",
            "tts_requests_total{route=\"/readyz\",status=\"503\"} 1",
            "tts_ready 0",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
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
