//! The service behind `examples/axum_service.rs`, kept in a library so that
//! `tests/axum_service.rs` drives the same code against a real GELF receiver.
//!
//! A greeter: `GET /greet/{name}` answers `Hello, {name}!`. Each request runs
//! in a `request` span carrying `request_id` and `route`, so every event inside
//! it reaches Graylog with those fields; a name over [`MAX_NAME_CHARS`] is
//! refused with a 400 JSON body and a WARN event carrying
//! `error_code = "NAME_TOO_LONG"`, which [`attribution_rules`] classifies at
//! the source.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, examples::router()).await?;
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gelf_tracing::{AttributionError, AttributionRules};
use tracing::Instrument;

/// Longest name the greeter accepts, in characters.
pub const MAX_NAME_CHARS: usize = 32;

const RULES: &str = r#"
[[rule]]
code = "NAME_TOO_LONG"
component = "greeter"
category = "client_input"
severity = "minor"
root_cause = "The name in the path is longer than the greeter accepts."
solution = "Fix the client; nothing to do on the service."
"#;

/// The attribution rules of the greeter's error codes.
///
/// ```
/// let rules = examples::attribution_rules().unwrap();
/// assert_eq!(rules.len(), 1);
/// ```
pub fn attribution_rules() -> Result<AttributionRules, AttributionError> {
    AttributionRules::from_toml(RULES)
}

/// The greeter's routes.
///
/// ```
/// let app: axum::Router = examples::router();
/// # drop(app);
/// ```
pub fn router() -> Router {
    Router::new().route("/greet/{name}", get(greet))
}

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

async fn greet(Path(name): Path<String>) -> Response {
    let request_id = format!("req-{}", NEXT_REQUEST.fetch_add(1, Ordering::Relaxed));
    let span = tracing::info_span!("request", request_id = %request_id, route = "/greet/{name}");
    async move {
        let chars = name.chars().count();
        if chars > MAX_NAME_CHARS {
            tracing::warn!(
                error_code = "NAME_TOO_LONG",
                name_chars = chars as u64,
                "name refused: {chars} characters, at most {MAX_NAME_CHARS}"
            );
            let body = serde_json::json!({
                "error_code": "NAME_TOO_LONG",
                "message": format!("the name has {chars} characters; at most {MAX_NAME_CHARS}"),
                "request_id": request_id,
            });
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
        tracing::info!(name_chars = chars as u64, "greeted");
        format!("Hello, {name}!").into_response()
    }
    .instrument(span)
    .await
}
