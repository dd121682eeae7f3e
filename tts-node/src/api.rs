//! The HTTP surface: routes in one place, shared state in an `Arc`, errors as
//! JSON with a stable `error_code`, and one GELF event per synthesis request.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Extension, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tracing::field::Empty;
use tracing::Instrument;

use crate::access::Caller;
use crate::errors::{Code, NodeError};
use crate::fields;
use crate::metrics::Gauges;
use crate::request::{ApiJson, OpenAiSpeech, TtsBody, TtsRequest};
use crate::respond::respond;
use crate::state::AppState;
use crate::telemetry::GpuMonitor;

tokio::task_local! {
    /// The current request's id, for error bodies.
    static REQUEST_ID: String;
}

/// All routes, with the request-context middleware (outermost), access
/// control (keys, roles, limits, CORS: [`crate::access`]) and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.cfg.max_body_bytes;
    Router::new()
        .route("/", get(index))
        .route("/api/tts", post(tts))
        .route("/api/voices", get(voices))
        .route("/v1/audio/speech", post(openai_speech))
        .route("/api/speakers", get(list_speakers).post(add_speaker))
        .route("/api/speakers/{name}", delete(delete_speaker))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.access),
            crate::access::authorize,
        ))
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
            let seconds = self.retry_after_s.unwrap_or(1);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        resp.extensions_mut().insert(self);
        resp
    }
}

// ---------------------------------------------------------------- middleware

/// Request ids: taken from `X-Request-Id` when sane, else generated; echoed
/// in the response with `X-Node-Id`, so that a client (or the HAProxy front,
/// which logs both) knows which node answered. Each synthesis request runs
/// inside a `synthesize` span.
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
            { fields::NODE_ID } = %state.cfg.node_id,
            { fields::REQUEST_ID } = %request_id,
            { fields::ROUTE } = %route,
            { fields::CHAR_COUNT } = Empty,
            { fields::VOICE } = Empty,
            { fields::MODEL_VERSION } = Empty,
            { fields::LANGUAGE } = Empty,
            { fields::VOICE_CHOICE } = Empty,
            { fields::CLIENT_ADDR } = Empty,
            { fields::API_KEY_NAME } = Empty,
        )
    } else {
        tracing::info_span!(
            "http",
            { fields::REQUEST_ID } = %request_id,
            { fields::ROUTE } = %route,
            { fields::CLIENT_ADDR } = Empty,
            { fields::API_KEY_NAME } = Empty,
        )
    };
    let mut resp = REQUEST_ID
        .scope(request_id.clone(), next.run(req).instrument(span.clone()))
        .await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&state.cfg.node_id) {
        resp.headers_mut().insert("x-node-id", v);
    }
    let caller = resp.extensions_mut().remove::<Caller>();
    let key = caller.as_ref().map(Caller::name);
    if let Some(err) = resp.extensions_mut().remove::<NodeError>() {
        // The one event of a failed request, in its span.
        span.in_scope(|| err.log());
        state.metrics.error(err.code, key);
    }
    state.metrics.request(&route, resp.status().as_u16(), key);
    resp
}

pub(crate) fn sane_request_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn new_request_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

// ---------------------------------------------------------------- synthesis

/// `POST /api/tts`.
async fn tts(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    body: TtsBody,
) -> Result<Response, ApiError> {
    synthesize(state, caller, body.0).await
}

/// `POST /v1/audio/speech`: OpenAI's body, mapped to `/api/tts`'s.
async fn openai_speech(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    body: ApiJson<OpenAiSpeech>,
) -> Result<Response, ApiError> {
    synthesize(state, caller, body.0.into()).await
}

async fn synthesize(
    state: Arc<AppState>,
    caller: Option<Extension<Caller>>,
    req: TtsRequest,
) -> Result<Response, ApiError> {
    let (job, answer) = req.into_job(&state, caller.map(|c| c.0))?;
    respond(Arc::clone(&state), job, answer).await
}

// ---------------------------------------------------------------- speaker library

/// `POST /api/speakers` body: the name, and the clip as base64 WAV (a
/// multipart form sends the file itself as `audio`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSpeaker {
    name: String,
    audio: String,
}

async fn list_speakers(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "speakers": state.speakers.list() }))
}

async fn add_speaker(
    State(state): State<Arc<AppState>>,
    body: crate::request::Form<NewSpeaker>,
) -> Result<Response, ApiError> {
    let NewSpeaker { name, audio } = body.0;
    let (view, replaced) = state.speakers.add(&name, &audio)?;
    forget_clips(&state);
    tracing::info!(speaker = %view.name, seconds = view.seconds, replaced, "stored speaker saved");
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(serde_json::json!({ "speaker": view, "replaced": replaced })),
    )
        .into_response())
}

async fn delete_speaker(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state.speakers.remove(&name)?;
    forget_clips(&state);
    tracing::info!(speaker = %name, "stored speaker deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The library changed: the voices' prepared clips are dropped.
fn forget_clips(state: &AppState) {
    if let Some(r) = state.ready.get() {
        for v in r.voices.map.values() {
            v.forget_clips();
        }
    }
}

// ---------------------------------------------------------------- listings

/// A language of a voice, for people and for the page.
#[derive(Serialize)]
struct LanguageView<'a> {
    /// `zh`, `en`, …
    tag: &'a str,
    /// `han`, `latin`, …
    script: models::text::script::Script,
    /// `Chinese (Mandarin)`, `English`, …
    name: &'static str,
}

/// A language's name for people.
fn language_name(tag: &str) -> &'static str {
    match tag {
        "zh" => "Chinese (Mandarin)",
        "en" => "English",
        "de" => "German",
        "fr" => "French",
        "es" => "Spanish",
        "it" => "Italian",
        "ja" => "Japanese",
        "ru" => "Russian",
        _ => "",
    }
}

/// Who speaks, for a voice, the words of a script it does not read.
#[derive(Serialize)]
struct HelperView<'a> {
    script: models::text::script::Script,
    voice: &'a str,
}

#[derive(Serialize)]
struct VoiceView<'a> {
    name: &'a str,
    /// `piper`, `indextts2` or `fastspeech2`.
    engine: models::EngineKind,
    /// The voice's own language code (espeak voice or locale).
    language: &'a str,
    /// The languages the voice speaks, with their scripts.
    languages: Vec<LanguageView<'a>>,
    /// What a user must know of the voice's licence, when there is something.
    #[serde(skip_serializing_if = "Option::is_none")]
    licence: Option<&'a str>,
    /// Voices that speak, for this one, the words of other scripts.
    helpers: Vec<HelperView<'a>>,
    quality: &'a str,
    sample_rate: u32,
    num_speakers: usize,
    /// For a voice that clones: the speaker library's, in its order.
    speakers: Vec<String>,
    model_version: &'a str,
    default: bool,
    /// What the engine honours (`models::Capabilities`), with `fields`: the
    /// request fields it takes.
    capabilities: CapabilitiesView,
    /// The ranges of the numeric fields the voice takes (with the voice's
    /// defaults where known), and whether a speaker can be chosen.
    controls: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct CapabilitiesView {
    #[serde(flatten)]
    caps: models::Capabilities,
    fields: Vec<&'static str>,
}

/// A voice's capabilities as the node serves them: a voice that clones
/// speaks the speaker library's speakers (by name, or by number in the
/// library's order), whatever it was loaded with.
fn served_capabilities(v: &crate::voices::LoadedVoice, library: &[String]) -> models::Capabilities {
    let mut caps = v.capabilities().clone();
    if caps.reference_audio {
        caps.speakers = library.to_vec();
        caps.num_speakers = library.len();
        let has = caps.controls.contains(&models::Control::Speaker);
        if library.is_empty() {
            caps.controls.retain(|c| *c != models::Control::Speaker);
        } else if !has {
            caps.controls.insert(0, models::Control::Speaker);
        }
    }
    caps
}

#[derive(Serialize)]
struct UnavailableView<'a> {
    name: &'a str,
    engine: models::EngineKind,
    reason: &'a str,
}

async fn voices(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let ready = state.ready()?;
    let library: Vec<String> = state.speakers.list().into_iter().map(|s| s.name).collect();
    let list: Vec<VoiceView<'_>> = ready
        .voices
        .map
        .values()
        .map(|v| {
            let info = v.info();
            let caps = v.capabilities();
            let served = served_capabilities(v, &library);
            let mut controls = crate::controls::ranges(v);
            controls.insert(
                "speaker".into(),
                serde_json::json!(
                    served.supports(models::Control::Speaker) && served.num_speakers > 1
                ),
            );
            VoiceView {
                name: &v.name,
                engine: caps.engine,
                language: &info.language,
                languages: caps
                    .languages
                    .iter()
                    .map(|l| LanguageView {
                        tag: &l.tag,
                        script: l.script,
                        name: language_name(&l.tag),
                    })
                    .collect(),
                licence: info.licence.as_deref(),
                helpers: v
                    .helpers()
                    .iter()
                    .map(|(script, voice)| HelperView {
                        script: *script,
                        voice,
                    })
                    .collect(),
                quality: &info.quality,
                sample_rate: info.sample_rate,
                num_speakers: if caps.reference_audio {
                    served.num_speakers
                } else {
                    info.num_speakers
                },
                speakers: if caps.reference_audio {
                    served.speakers.clone()
                } else {
                    info.speaker_names.clone()
                },
                model_version: &info.model_version,
                default: v.name == ready.voices.default,
                capabilities: CapabilitiesView {
                    fields: crate::controls::supported_fields(&served),
                    caps: served,
                },
                controls,
            }
        })
        .collect();
    let unavailable: Vec<UnavailableView<'_>> = ready
        .voices
        .unavailable
        .iter()
        .map(|(name, u)| UnavailableView {
            name,
            engine: u.engine,
            reason: &u.reason,
        })
        .collect();
    Ok(Json(serde_json::json!({
        "default": ready.voices.default,
        "device": ready.device,
        "voices": list,
        "unavailable": unavailable,
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
    use crate::config::Config;
    use crate::engine::Engine;
    use crate::voices::{LoadedVoice, Voices};
    use axum::body::Body;
    use axum::http::HeaderMap;
    use clap::Parser;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use tower::ServiceExt;
    use tracing_subscriber::layer::SubscriberExt;

    /// A node's state with the access rules of its settings and a speaker
    /// library in a fresh temporary directory.
    fn test_state(mut cfg: Config) -> AppState {
        cfg.cache_dir = std::env::temp_dir().join(format!("tts-api-test-{}", fastrand::u64(..)));
        let access = crate::access::Access::new(cfg.api_keys_file.as_deref(), &cfg.cors_origins)
            .expect("keys file");
        AppState::new(cfg, access, None)
    }

    /// A node without a voice (as before it is loaded), in process.
    fn app(args: &[&str]) -> Router {
        let mut argv = vec!["tts-node"];
        argv.extend_from_slice(args);
        let cfg = Config::parse_from(argv);
        router(Arc::new(test_state(cfg)))
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

    thread_local! {
        /// Where this thread's events go (see [`Events::capture`]).
        static SINK: std::cell::RefCell<Option<Events>> = const { std::cell::RefCell::new(None) };
    }

    /// The process-wide subscriber of these tests: it hands each event to
    /// the capturing test of its thread. One global subscriber, interested
    /// in everything, instead of a thread-local default per test: with
    /// several defaults set and unset on concurrent test threads, tracing's
    /// per-callsite interest cache could be computed while none was set,
    /// and a test then missed its events.
    struct Route;

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Route {
        fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            SINK.with(|sink| {
                if let Some(events) = &*sink.borrow() {
                    let mut fields = BTreeMap::new();
                    e.record(&mut Fields(&mut fields));
                    if let Ok(mut v) = events.0.lock() {
                        v.push((*e.metadata().level(), fields));
                    }
                }
            });
        }
    }

    /// Stops capturing on drop.
    struct Capturing;

    impl Drop for Capturing {
        fn drop(&mut self) {
            SINK.with(|sink| *sink.borrow_mut() = None);
        }
    }

    impl Events {
        /// Captures the events logged on this thread (the test's runtime is
        /// current-thread, so the handlers' events too) until the guard drops.
        fn capture(&self) -> Capturing {
            static GLOBAL: std::sync::Once = std::sync::Once::new();
            GLOBAL.call_once(|| {
                let _ = tracing::subscriber::set_global_default(
                    tracing_subscriber::registry().with(Route),
                );
            });
            SINK.with(|sink| *sink.borrow_mut() = Some(self.clone()));
            Capturing
        }

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
        let _d = events.capture();
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
            assert_eq!(
                r.headers["x-node-id"].to_str().unwrap_or_default(),
                "tts-node-01",
                "{code}: the node names itself"
            );
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
        let _d = events.capture();
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

    /// A test double behind the engine seam: it answers with a short tone
    /// and records the controls it was given.
    #[derive(Debug)]
    struct FakeEngine {
        info: models::VoiceInfo,
        caps: models::Capabilities,
        seen: Arc<Mutex<Vec<models::Controls>>>,
    }

    impl models::Engine for FakeEngine {
        fn info(&self) -> &models::VoiceInfo {
            &self.info
        }
        fn capabilities(&self) -> &models::Capabilities {
            &self.caps
        }
        fn synthesize(&self, _: &models::Request<'_>) -> Result<models::Audio, models::Error> {
            Err(models::Error::Config("not used by the node".into()))
        }
        fn synthesize_stream(
            &self,
            request: &models::Request<'_>,
            _split_first: bool,
            sink: &mut dyn FnMut(&[f32]) -> std::ops::ControlFlow<()>,
        ) -> Result<models::Streamed, models::Error> {
            request.controls.check(&self.caps)?;
            if let Ok(mut v) = self.seen.lock() {
                v.push(request.controls.clone());
            }
            let _ = sink(&[0.25; 220]);
            Ok(models::Streamed {
                sentences: 1,
                pieces: 1,
                samples: 220,
                ..models::Streamed::default()
            })
        }
    }

    /// A voice of `engine` honouring `controls`, and what its engine saw.
    fn fake_voice(
        name: &str,
        engine: models::EngineKind,
        controls: &[models::Control],
    ) -> (LoadedVoice, Arc<Mutex<Vec<models::Controls>>>) {
        let info = models::VoiceInfo {
            name: name.into(),
            language: "en-us".into(),
            sample_rate: 22050,
            num_speakers: 1,
            speaker_names: Vec::new(),
            model_version: format!("{engine}/{name}"),
            quality: "medium".into(),
            defaults: models::piper::InferenceConfig::default(),
            licence: None,
        };
        let piper = engine == models::EngineKind::Piper;
        let caps = models::Capabilities {
            engine,
            sample_rate: 22050,
            num_speakers: 1,
            speakers: Vec::new(),
            reference_audio: controls.contains(&models::Control::ReferenceAudio),
            emotion: models::engine::EmotionSupport {
                vector: controls.contains(&models::Control::Emotion),
                audio: controls.contains(&models::Control::EmotionAudio),
            },
            sampling: controls
                .iter()
                .copied()
                .filter(|c| models::Control::SAMPLING.contains(c))
                .collect(),
            controls: controls.to_vec(),
            streaming: if piper {
                models::Streaming::Pieces {
                    first_piece_frames: 24,
                    split_over_frames: 64,
                    samples_per_frame: 256,
                }
            } else {
                models::Streaming::PerSegment
            },
            languages: vec![models::engine::Language::of_tag("en")],
            spells: Vec::new(),
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let engine = FakeEngine {
            info,
            caps,
            seen: Arc::clone(&seen),
        };
        (LoadedVoice::new(name.into(), Box::new(engine), 1.0), seen)
    }

    const PIPER: [models::Control; 4] = models::piper::voice::PIPER_CONTROLS;

    const INDEXTTS2: [models::Control; 12] = [
        models::Control::ReferenceAudio,
        models::Control::Emotion,
        models::Control::EmotionAudio,
        models::Control::EmoAlpha,
        models::Control::TopK,
        models::Control::TopP,
        models::Control::Temperature,
        models::Control::RepetitionPenalty,
        models::Control::NumBeams,
        models::Control::MaxMelTokens,
        models::Control::DiffusionSteps,
        models::Control::InferenceCfgRate,
    ];

    /// A ready node serving `voices` (the first is the default), with one
    /// IndexTTS2 voice found but not served.
    fn ready_app(voices: Vec<LoadedVoice>) -> Router {
        ready_app_with(voices, &[])
    }

    /// [`ready_app`] with settings.
    fn ready_app_with(voices: Vec<LoadedVoice>, args: &[&str]) -> Router {
        let mut argv = vec!["tts-node"];
        argv.extend_from_slice(args);
        let cfg = Config::parse_from(argv);
        let seg = crate::engine::Segmenting {
            max_chars: cfg.max_segment_chars,
            silence_ms: cfg.segment_silence_ms,
        };
        let default = voices.first().map(|v| v.name.clone()).unwrap_or_default();
        let map = voices
            .into_iter()
            .map(|v| (v.name.clone(), Arc::new(v)))
            .collect();
        let mut unavailable = BTreeMap::new();
        unavailable.insert(
            "IndexTTS-2".to_owned(),
            crate::voices::Unavailable {
                engine: models::EngineKind::IndexTts2,
                reason: "the IndexTTS2 engine is not loadable yet".into(),
            },
        );
        let state = test_state(cfg);
        let _ = state.ready.set(crate::state::Ready {
            voices: Voices {
                default,
                map,
                unavailable,
                load_time: std::time::Duration::ZERO,
            },
            engine: Engine::start(1, 1, 4, seg).expect("workers"),
            device: "cpu".into(),
            gpu: None,
        });
        router(Arc::new(state))
    }

    #[tokio::test]
    async fn voices_list_each_voice_engine_and_capabilities() {
        let (piper, _) = fake_voice("en_US-a-medium", models::EngineKind::Piper, &PIPER);
        let (ix2, _) = fake_voice("ix2", models::EngineKind::IndexTts2, &INDEXTTS2);
        let app = ready_app(vec![piper, ix2]);
        let r = call(&app, get("/api/voices")).await;
        assert_eq!(r.status, StatusCode::OK);
        let j = r.json();
        let v = &j["voices"][0];
        assert_eq!(v["name"], "en_US-a-medium");
        assert_eq!(v["engine"], "piper");
        let caps = &v["capabilities"];
        assert_eq!(caps["engine"], "piper");
        assert_eq!(
            caps["controls"],
            serde_json::json!(["speaker", "noise_scale", "length_scale", "noise_w"])
        );
        assert_eq!(
            caps["fields"],
            serde_json::json!(["speaker", "noise_scale", "speed", "noise_w"])
        );
        assert_eq!(caps["reference_audio"], false);
        assert_eq!(
            caps["emotion"],
            serde_json::json!({"vector": false, "audio": false})
        );
        assert_eq!(caps["sampling"], serde_json::json!([]));
        assert_eq!(caps["streaming"]["kind"], "pieces");
        assert_eq!(caps["streaming"]["first_piece_frames"], 24);
        let c = &v["controls"];
        assert_eq!(c["speed"]["default"], 1.0);
        assert!(c["noise_scale"]["default"].is_number());
        assert!(c.get("top_k").is_none(), "{c}");
        assert_eq!(c["speaker"], false);
        let v = &j["voices"][1];
        assert_eq!(v["engine"], "indextts2");
        assert_eq!(v["capabilities"]["reference_audio"], true);
        assert_eq!(
            v["capabilities"]["sampling"],
            serde_json::json!([
                "top_k",
                "top_p",
                "temperature",
                "repetition_penalty",
                "num_beams",
                "max_mel_tokens",
                "diffusion_steps",
                "inference_cfg_rate"
            ])
        );
        assert_eq!(v["capabilities"]["streaming"]["kind"], "per_segment");
        assert_eq!(
            v["controls"]["top_p"],
            serde_json::json!({"min": 0.0, "max": 1.0})
        );
        assert!(v["controls"].get("speed").is_none());
        assert_eq!(j["unavailable"][0]["name"], "IndexTTS-2");
        assert_eq!(j["unavailable"][0]["engine"], "indextts2");
        assert!(j["unavailable"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not loadable yet"));
    }

    #[tokio::test]
    async fn a_piper_voice_answers_indextts2_fields_with_unsupported_control() {
        let events = Events::default();
        let _d = events.capture();
        let (piper, seen) = fake_voice("en_US-a-medium", models::EngineKind::Piper, &PIPER);
        let app = ready_app(vec![piper]);
        let cases = [
            (
                "/api/tts",
                r#"{"text": "Hello.", "top_k": 5, "reference_audio": "UklGRg==", "noise_w": 0.5}"#,
                "reference_audio, top_k",
            ),
            (
                "/v1/audio/speech",
                r#"{"input": "Hello.", "emo_alpha": 0.6, "emotion": [0,0,0,0,0,0,0,1]}"#,
                "emotion, emo_alpha",
            ),
            (
                "/api/tts",
                r#"{"text": "Hello.", "temperature": 0.8, "top_p": 0.9, "repetition_penalty": 10, "num_beams": 3, "max_mel_tokens": 1500, "emotion_audio": "x"}"#,
                "emotion_audio, top_p, temperature, repetition_penalty, num_beams, max_mel_tokens",
            ),
        ];
        for (path, body, fields) in cases {
            let r = call(&app, post(path, body)).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
            let j = r.json();
            assert_eq!(j["error"]["code"], "UNSUPPORTED_CONTROL");
            let msg = j["error"]["message"].as_str().unwrap_or_default();
            assert_eq!(
                msg,
                format!(
                    "voice en_US-a-medium (piper engine) does not support {fields}; \
                     it supports speaker, noise_scale, speed, noise_w"
                )
            );
        }
        assert_eq!(events.with_code("UNSUPPORTED_CONTROL").len(), 3);
        assert!(
            seen.lock().map(|v| v.is_empty()).unwrap_or(false),
            "nothing reached the engine"
        );
        // Piper's own controls still work.
        let r = call(
            &app,
            post(
                "/api/tts",
                r#"{"text": "Hello.", "speed": 2, "noise_w": 0}"#,
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].noise_w, Some(0.0));
        assert_eq!(
            seen[0].length_scale,
            Some(0.5),
            "speed 2 halves the voice's length_scale"
        );
    }

    #[tokio::test]
    async fn indextts2_fields_are_checked_and_reach_an_engine_that_honours_them() {
        use base64::Engine as _;
        let (ix2, seen) = fake_voice("ix2", models::EngineKind::IndexTts2, &INDEXTTS2);
        let app = ready_app(vec![ix2]);
        // Piper's controls are refused by name, `speed` as the API calls it.
        let r = call(&app, post("/api/tts", r#"{"text": "Hi.", "speed": 1.5}"#)).await;
        assert_eq!(r.json()["error"]["code"], "UNSUPPORTED_CONTROL");
        let msg = r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            msg.contains("does not support speed; it supports reference_audio, emotion"),
            "{msg}"
        );
        for (body, code, want) in [
            (
                r#"{"text": "Hi.", "top_p": 2}"#,
                "INVALID_PARAMETER",
                "top_p must be from 0 to 1",
            ),
            (
                r#"{"text": "Hi.", "emotion": [1, 0]}"#,
                "INVALID_PARAMETER",
                "emotion must be 8 weights",
            ),
            (
                r#"{"text": "Hi.", "num_beams": 0}"#,
                "INVALID_PARAMETER",
                "num_beams must be from 1 to 10",
            ),
            (
                r#"{"text": "Hi.", "diffusion_steps": 0}"#,
                "INVALID_PARAMETER",
                "diffusion_steps must be from 1 to 100",
            ),
            (
                r#"{"text": "Hi.", "inference_cfg_rate": 2.5}"#,
                "INVALID_PARAMETER",
                "inference_cfg_rate must be from 0 to 2",
            ),
            (r#"{"text": "Hi.", "top_k": -1}"#, "BAD_REQUEST", "top_k"),
            (
                r#"{"text": "Hi.", "reference_audio": "%%%"}"#,
                "BAD_AUDIO",
                "reference_audio: not base64",
            ),
        ] {
            let r = call(&app, post("/api/tts", body)).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
            let j = r.json();
            assert_eq!(j["error"]["code"], code, "{body}");
            let msg = j["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains(want), "{body}: {msg}");
        }
        let mut wav = std::io::Cursor::new(Vec::new());
        {
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: 16000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::new(&mut wav, spec).expect("writer");
            for _ in 0..16000 {
                w.write_sample(1000i16).expect("sample");
            }
            w.finalize().expect("wav");
        }
        let clip = base64::engine::general_purpose::STANDARD.encode(wav.into_inner());
        let body = serde_json::json!({
            "text": "Hi.",
            "reference_audio": clip,
            "emotion": [0, 0.5, 0, 0, 0, 0, 0, 0],
            "emo_alpha": 0.6,
            "top_k": 30,
            "temperature": 0.8,
            "num_beams": 3,
            "diffusion_steps": 10,
            "inference_cfg_rate": 0.5,
        });
        let r = call(&app, post("/api/tts", &body.to_string())).await;
        assert_eq!(r.status, StatusCode::OK);
        let first = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(first.len(), 1);
        let c = &first[0];
        let reference = c.reference_audio.as_ref().expect("the clip");
        assert_eq!(
            (reference.samples.len(), reference.sample_rate),
            (16000, 16000)
        );
        assert_eq!(
            c.emotion.as_deref(),
            Some(&[0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0][..])
        );
        assert_eq!(
            (c.emo_alpha, c.top_k, c.temperature, c.num_beams),
            (Some(0.6), Some(30), Some(0.8), Some(3))
        );
        assert_eq!(
            (c.diffusion_steps, c.inference_cfg_rate),
            (Some(10), Some(0.5))
        );
        assert_eq!((c.top_p, c.noise_scale, c.length_scale), (None, None, None));

        // The same as multipart/form-data, the clip as a file part.
        let wav_bytes = base64::engine::general_purpose::STANDARD
            .decode(clip.as_bytes())
            .expect("the clip's bytes");
        let parts = |extra: &[(&str, &str)]| {
            let b = "XyZbOuNdArY";
            let mut body = Vec::new();
            for (name, value) in [
                ("text", "Hi."),
                ("emotion", "[0, 0.5, 0, 0, 0, 0, 0, 0]"),
                ("emo_alpha", "0.6"),
                ("num_beams", "2"),
            ]
            .iter()
            .chain(extra)
            {
                body.extend_from_slice(
                    format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            body.extend_from_slice(
                format!("--{b}\r\nContent-Disposition: form-data; name=\"reference_audio\"; filename=\"me.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(&wav_bytes);
            body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
            axum::http::Request::post("/api/tts")
                .header("content-type", format!("multipart/form-data; boundary={b}"))
                .body(Body::from(body))
                .expect("request")
        };
        let r = call(&app, parts(&[])).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(seen.len(), 2);
        let c = &seen[1];
        let reference = c
            .reference_audio
            .as_ref()
            .expect("the clip, from a file part");
        assert_eq!(reference.samples.len(), 16000);
        assert_eq!((c.emo_alpha, c.num_beams), (Some(0.6), Some(2)));
        // Unknown or mistyped parts are refused as in JSON.
        for (extra, want) in [
            (("colour", "1"), "unknown field"),
            (("top_k", "many"), "not a JSON value"),
            (("top_p", "2"), "top_p must be from 0 to 1"),
        ] {
            let r = call(&app, parts(&[extra])).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra:?}");
            let msg = r.json()["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(msg.contains(want), "{extra:?}: {msg}");
        }
    }

    // ------------------------------------------------------------ access

    const USER_KEY: &str = "user-key-0123456789abcdef0123";
    const ADMIN_KEY: &str = "admin-key-0123456789abcdef012";
    const METRICS_KEY: &str = "metrics-key-0123456789abcdef0";
    const SLOW_KEY: &str = "slow-key-0123456789abcdef01234";

    /// A keys file with a user, an admin, a metrics and a rate-limited key.
    fn keys_file() -> std::path::PathBuf {
        let h = crate::access::hash_key;
        let text = format!(
            "[[keys]]\nname = \"web\"\nrole = \"user\"\nhash = \"{}\"\n\n\
             [[keys]]\nname = \"ops\"\nrole = \"admin\"\nhash = \"{}\"\n\n\
             [[keys]]\nname = \"prom\"\nrole = \"metrics\"\nhash = \"{}\"\n\n\
             [[keys]]\nname = \"slow\"\nrole = \"user\"\nhash = \"{}\"\nrequests_per_second = 0.2\nburst = 1\n",
            h(USER_KEY),
            h(ADMIN_KEY),
            h(METRICS_KEY),
            h(SLOW_KEY)
        );
        let path = std::env::temp_dir().join(format!("tts-keys-{}.toml", fastrand::u64(..)));
        std::fs::write(&path, text).expect("write keys");
        path
    }

    fn with_key(mut req: axum::http::Request<Body>, key: &str) -> axum::http::Request<Body> {
        req.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {key}")).expect("header"),
        );
        req
    }

    fn wav_b64(seconds: f64) -> String {
        use base64::Engine as _;
        let n = (seconds * 16000.0) as usize;
        let samples: Vec<f32> = (0..n).map(|i| (i as f32 * 0.03).sin() * 0.4).collect();
        let wav = models::audio::wav::wav_i16(&samples, 16000).expect("wav");
        base64::engine::general_purpose::STANDARD.encode(wav)
    }

    #[tokio::test]
    async fn keys_roles_and_limits_guard_the_routes_and_no_key_is_ever_logged() {
        let events = Events::default();
        let _d = events.capture();
        let keys = keys_file();
        let (piper, _) = fake_voice("en_US-a-medium", models::EngineKind::Piper, &PIPER);
        let app = ready_app_with(
            vec![piper],
            &["--api-keys-file", keys.to_str().expect("utf-8")],
        );
        let synth = || post("/api/tts", r#"{"text": "Hello."}"#);

        // Load balancers and the page need no key.
        for path in ["/healthz", "/readyz", "/"] {
            assert_eq!(call(&app, get(path)).await.status, StatusCode::OK, "{path}");
        }
        // No key, a wrong key, a key in the wrong scheme: 401 with the challenge.
        for req in [
            synth(),
            with_key(synth(), "not-a-key-0123456789abcdef0123"),
            {
                let mut r = synth();
                r.headers_mut().insert(
                    header::AUTHORIZATION,
                    HeaderValue::from_static("Basic d2ViOnB3"),
                );
                r
            },
        ] {
            let r = call(&app, req).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
            assert_eq!(r.json()["error"]["code"], "UNAUTHORIZED");
            assert_eq!(
                r.headers
                    .get(header::WWW_AUTHENTICATE)
                    .map(|v| v.as_bytes()),
                Some(&b"Bearer realm=\"tts-node\""[..])
            );
        }
        let logged = events.with_code("UNAUTHORIZED");
        assert_eq!(logged.len(), 3, "one event per refusal: {logged:?}");
        assert!(logged
            .iter()
            .all(|(level, _)| *level == tracing::Level::WARN));

        // The right key: by Bearer and by X-Api-Key.
        let r = call(&app, with_key(synth(), USER_KEY)).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let mut req = synth();
        req.headers_mut()
            .insert("x-api-key", HeaderValue::from_static(USER_KEY));
        assert_eq!(call(&app, req).await.status, StatusCode::OK);
        assert_eq!(
            call(&app, with_key(get("/api/voices"), USER_KEY))
                .await
                .status,
            StatusCode::OK
        );

        // Roles: metrics reads /metrics only; users and admins do not.
        let r = call(&app, with_key(synth(), METRICS_KEY)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.json()["error"]["code"], "FORBIDDEN");
        for key in [USER_KEY, ADMIN_KEY] {
            let r = call(&app, with_key(get("/metrics"), key)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN);
        }
        assert_eq!(
            call(&app, get("/metrics")).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&app, with_key(get("/api/speakers"), USER_KEY))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        let forbidden = events.with_code("FORBIDDEN");
        assert_eq!(forbidden.len(), 4);
        assert!(forbidden.iter().all(|(l, _)| *l == tracing::Level::WARN));

        // A limited key: one request, then 429 with how long to wait.
        assert_eq!(
            call(&app, with_key(synth(), SLOW_KEY)).await.status,
            StatusCode::OK
        );
        let r = call(&app, with_key(synth(), SLOW_KEY)).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.json()["error"]["code"], "RATE_LIMITED");
        let wait: u64 = r
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((4..=5).contains(&wait), "{wait}");

        // Usage by key name in /metrics.
        let m = call(&app, with_key(get("/metrics"), METRICS_KEY)).await;
        assert_eq!(m.status, StatusCode::OK);
        let text = String::from_utf8_lossy(&m.body).into_owned();
        for want in [
            "tts_key_requests_total{key=\"web\",status=\"200\"} 3",
            "tts_key_requests_total{key=\"slow\",status=\"429\"} 1",
            "tts_key_errors_total{key=\"slow\",code=\"RATE_LIMITED\"} 1",
            "tts_key_errors_total{key=\"prom\",code=\"FORBIDDEN\"} 1",
            "tts_key_audio_seconds_total{key=\"web\"}",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        // No key anywhere: not in /metrics, not in any event.
        let all = events.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert!(!all.is_empty());
        for key in [
            USER_KEY,
            ADMIN_KEY,
            METRICS_KEY,
            SLOW_KEY,
            "not-a-key-0123456789abcdef0123",
        ] {
            assert!(!text.contains(key));
            for (_, f) in &all {
                assert!(
                    f.values().all(|v| !v.contains(key)),
                    "{key} logged in {f:?}"
                );
            }
        }
        let _ = std::fs::remove_file(keys);
    }

    #[tokio::test]
    async fn the_speaker_library_stores_lists_serves_and_deletes_clips_for_admins() {
        let keys = keys_file();
        let (ix2, seen) = fake_voice("ix2", models::EngineKind::IndexTts2, &INDEXTTS2);
        let app = ready_app_with(
            vec![ix2],
            &["--api-keys-file", keys.to_str().expect("utf-8")],
        );
        let add = |body: String| with_key(post("/api/speakers", &body), ADMIN_KEY);

        let r = call(
            &app,
            add(format!(
                r#"{{"name": "alice", "audio": "{}"}}"#,
                wav_b64(1.5)
            )),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["speaker"]["name"], "alice");
        let r = call(
            &app,
            add(format!(
                r#"{{"name": "alice", "audio": "{}"}}"#,
                wav_b64(2.0)
            )),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["replaced"], true);
        let list = call(&app, with_key(get("/api/speakers"), ADMIN_KEY))
            .await
            .json();
        assert_eq!(list["speakers"][0]["name"], "alice");
        assert_eq!(list["speakers"][0]["seconds"], 2.0);

        // A user synthesises with the stored speaker by name.
        let r = call(
            &app,
            with_key(
                post("/api/tts", r#"{"text": "Hi.", "speaker": "alice"}"#),
                USER_KEY,
            ),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let got = seen
            .lock()
            .expect("seen")
            .last()
            .cloned()
            .expect("a request");
        assert_eq!(got.reference_audio.map(|c| c.samples.len()), Some(32000));
        // The voice lists the library's speakers; a number is a place in it.
        let v = call(&app, with_key(get("/api/voices"), USER_KEY))
            .await
            .json();
        assert_eq!(v["voices"][0]["speakers"], serde_json::json!(["alice"]));
        assert!(v["voices"][0]["capabilities"]["fields"]
            .as_array()
            .is_some_and(|f| f.contains(&serde_json::json!("speaker"))));
        let r = call(
            &app,
            with_key(
                post("/api/tts", r#"{"text": "Hi.", "speaker": 0}"#),
                USER_KEY,
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let r = call(
            &app,
            with_key(
                post("/api/tts", r#"{"text": "Hi.", "speaker": 1}"#),
                USER_KEY,
            ),
        )
        .await;
        assert_eq!(r.json()["error"]["code"], "INVALID_PARAMETER");
        let r = call(
            &app,
            with_key(
                post("/api/tts", r#"{"text": "Hi.", "speaker": "bob"}"#),
                USER_KEY,
            ),
        )
        .await;
        assert_eq!(r.json()["error"]["code"], "SPEAKER_NOT_FOUND");

        // Names are never paths; clips are bounded and must decode.
        for (name, audio, code) in [
            ("../../etc/passwd", wav_b64(1.0), "BAD_REQUEST"),
            ("a/b", wav_b64(1.0), "BAD_REQUEST"),
            (".hidden", wav_b64(1.0), "BAD_REQUEST"),
            ("carol", "bm90IGEgd2F2".to_owned(), "BAD_AUDIO"),
            ("carol", wav_b64(0.2), "BAD_AUDIO"),
            ("carol", wav_b64(31.0), "BAD_AUDIO"),
        ] {
            let r = call(
                &app,
                add(format!(r#"{{"name": "{name}", "audio": "{audio}"}}"#)),
            )
            .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}");
            assert_eq!(r.json()["error"]["code"], code, "{name}");
        }
        let del = |path: &str| {
            with_key(
                axum::http::Request::delete(path)
                    .body(Body::empty())
                    .expect("request"),
                ADMIN_KEY,
            )
        };
        assert_eq!(
            call(&app, del("/api/speakers/..%2F..%2Fetc")).await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            call(&app, del("/api/speakers/alice")).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            call(&app, del("/api/speakers/alice")).await.status,
            StatusCode::NOT_FOUND
        );
        let list = call(&app, with_key(get("/api/speakers"), ADMIN_KEY))
            .await
            .json();
        assert_eq!(list["speakers"].as_array().map(Vec::len), Some(0));
        let _ = std::fs::remove_file(keys);
    }

    #[tokio::test]
    async fn a_key_is_held_to_its_concurrency_and_its_audio_per_minute() {
        let h = crate::access::hash_key;
        let text = format!(
            "[[keys]]\nname = \"one\"\nrole = \"user\"\nhash = \"{}\"\nmax_concurrent = 1\n\n\
             [[keys]]\nname = \"brief\"\nrole = \"user\"\nhash = \"{}\"\naudio_seconds_per_minute = 0.005\n",
            h(USER_KEY),
            h(SLOW_KEY)
        );
        let keys = std::env::temp_dir().join(format!("tts-keys-{}.toml", fastrand::u64(..)));
        std::fs::write(&keys, text).expect("write keys");
        let (piper, _) = fake_voice("en_US-a-medium", models::EngineKind::Piper, &PIPER);
        let app = ready_app_with(
            vec![piper],
            &["--api-keys-file", keys.to_str().expect("utf-8")],
        );
        let streamed = || post("/api/tts", r#"{"text": "Hello.", "stream": true}"#);

        // A streamed answer holds the key's one place until its body is read.
        let first = app
            .clone()
            .oneshot(with_key(streamed(), USER_KEY))
            .await
            .expect("infallible");
        assert_eq!(first.status(), StatusCode::OK);
        let r = call(&app, with_key(streamed(), USER_KEY)).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_concurrent")));
        let body = axum::body::to_bytes(first.into_body(), 1 << 20)
            .await
            .expect("body");
        assert!(!body.is_empty());
        assert_eq!(
            call(&app, with_key(streamed(), USER_KEY)).await.status,
            StatusCode::OK
        );

        // 0.005 s of audio a minute: the first request (0.01 s) is admitted
        // and charged, the next waits until the debt is paid back.
        let whole = || post("/api/tts", r#"{"text": "Hello."}"#);
        assert_eq!(
            call(&app, with_key(whole(), SLOW_KEY)).await.status,
            StatusCode::OK
        );
        let r = call(&app, with_key(whole(), SLOW_KEY)).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("audio seconds per minute")));
        let wait: u64 = r
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        // 0.01 s charged against 0.005 s a minute: about 60 s to pay back.
        assert!((55..=61).contains(&wait), "{wait}");
        let _ = std::fs::remove_file(keys);
    }

    #[tokio::test]
    async fn cors_answers_only_the_configured_origins() {
        let preflight = |origin: &str| {
            axum::http::Request::options("/api/tts")
                .header(header::ORIGIN, origin)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .body(Body::empty())
                .expect("request")
        };
        let closed = app(&[]);
        let r = call(&closed, preflight("https://app.example")).await;
        assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        let open = app(&["--cors-origins", "https://app.example"]);
        let r = call(&open, preflight("https://app.example")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(
            r.headers
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|v| v.as_bytes()),
            Some(&b"https://app.example"[..])
        );
        assert!(r
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
            .is_some());
        let r = call(&open, preflight("https://evil.example")).await;
        assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        let mut req = get("/healthz");
        req.headers_mut().insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example"),
        );
        let r = call(&open, req).await;
        assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_some());
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
