//! Who may use the node, and how much: API keys with roles, per-key limits
//! and usage, and CORS — one middleware ([`authorize`]) in front of the
//! routes.
//!
//! Keys come from a TOML file (`--api-keys-file`), one `[[keys]]` table per
//! key, holding its name, role and the SHA-256 of the key (never the key):
//!
//! ```toml
//! [[keys]]
//! name = "web-frontend"          # in logs, metrics and the completion event
//! role = "user"                  # user | admin | metrics
//! hash = "sha256:…"              # tts-node --hash-api-key / --new-api-key
//! requests_per_second = 5        # optional: a token bucket per key
//! burst = 10                     #   its size (default: the rate, at least 1)
//! audio_seconds_per_minute = 300 # optional: audio the key may have made
//! max_concurrent = 2             # optional: its synthesis requests at once
//! ```
//!
//! Roles: `user` synthesises and lists voices; `admin` also manages the
//! speaker library; `metrics` reads `/metrics` only. The page, `/healthz` and
//! `/readyz` stay open. Without a keys file every route is open (the node
//! allows that only on loopback, or with `--allow-anonymous`). The file is
//! read again on SIGHUP ([`Access::reload`]); a broken file keeps the keys
//! in use. Keys are taken from `Authorization: Bearer …` (what OpenAI
//! clients send) or `X-Api-Key`, hashed, and compared with every entry in
//! constant time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::errors::{Code, NodeError};
use crate::fields;

/// The realm named in `WWW-Authenticate`.
const REALM: &str = "Bearer realm=\"tts-node\"";
/// The shortest key `--hash-api-key` accepts (a key is a secret, not a
/// password: at least 128 bits when random hex or base64).
pub const MIN_KEY_CHARS: usize = 24;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Synthesis and `/api/voices`.
    User,
    /// What `user` may, and the speaker library.
    Admin,
    /// `/metrics` only.
    Metrics,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
            Self::Metrics => "metrics",
        }
    }

    fn allows(self, need: Need) -> bool {
        matches!(
            (self, need),
            (_, Need::Open)
                | (Self::User | Self::Admin, Need::User)
                | (Self::Admin, Need::Admin)
                | (Self::Metrics, Need::Metrics)
        )
    }
}

/// What a route asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The page, `/healthz`, `/readyz` (load balancers), unknown paths.
    Open,
    User,
    Admin,
    Metrics,
}

/// The role a route (as matched) needs.
pub fn need(route: &str) -> Need {
    match route {
        "/api/tts" | "/v1/audio/speech" | "/api/voices" => Need::User,
        "/api/speakers" | "/api/speakers/{name}" => Need::Admin,
        "/metrics" => Need::Metrics,
        _ => Need::Open,
    }
}

/// Routes that synthesise: the audio and concurrency limits apply to them.
fn synthesises(route: &str) -> bool {
    matches!(route, "/api/tts" | "/v1/audio/speech")
}

// ---------------------------------------------------------------- the keys file

/// A keys file that cannot be used; the message names the file and the entry.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read the API keys file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("API keys file {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    role: Role,
    hash: String,
    requests_per_second: Option<f64>,
    burst: Option<u32>,
    audio_seconds_per_minute: Option<f64>,
    max_concurrent: Option<u32>,
}

/// A key's limits; `None`: unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub requests_per_second: Option<f64>,
    pub burst: Option<u32>,
    pub audio_seconds_per_minute: Option<f64>,
    pub max_concurrent: Option<u32>,
}

/// One key of the file (its hash, never the key).
pub struct Key {
    pub name: String,
    pub role: Role,
    hash: [u8; 32],
    pub limits: Limits,
    usage: Arc<Usage>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A key's buckets and in-flight requests, kept across reloads while its
/// limits stay the same.
struct Usage {
    requests: Option<Mutex<Bucket>>,
    audio: Option<Mutex<Bucket>>,
    concurrent: Option<Arc<Semaphore>>,
}

impl Usage {
    fn new(l: &Limits) -> Self {
        let now = Instant::now();
        Self {
            requests: l.requests_per_second.map(|rate| {
                let size = l.burst.map_or(rate.ceil().max(1.0), f64::from);
                Mutex::new(Bucket::new(size, rate, now))
            }),
            audio: l
                .audio_seconds_per_minute
                .map(|per_min| Mutex::new(Bucket::new(per_min, per_min / 60.0, now))),
            concurrent: l
                .max_concurrent
                .map(|n| Arc::new(Semaphore::new(n as usize))),
        }
    }
}

/// A token bucket: `size` tokens, refilled at `rate` per second.
#[derive(Debug)]
struct Bucket {
    level: f64,
    size: f64,
    rate: f64,
    at: Instant,
}

impl Bucket {
    fn new(size: f64, rate: f64, now: Instant) -> Self {
        Self {
            level: size,
            size,
            rate,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * self.rate).min(self.size);
        self.at = now;
    }

    /// Takes one token, or says in how many seconds one is there.
    fn take(&mut self, now: Instant) -> Result<(), f64> {
        self.refill(now);
        if self.level >= 1.0 {
            self.level -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.level) / self.rate)
        }
    }

    /// Admits while the bucket is not empty (the cost is known only after
    /// the request, [`Bucket::charge`]), or says when it is no longer empty.
    fn admit(&mut self, now: Instant) -> Result<(), f64> {
        self.refill(now);
        if self.level > 0.0 {
            Ok(())
        } else {
            Err((-self.level) / self.rate + 0.01)
        }
    }

    /// Takes `n` tokens; the level may go below zero (a debt).
    fn charge(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.level -= n;
    }
}

/// The keys of one reading of the file.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<Arc<Key>>,
}

impl KeyRing {
    /// Reads and checks the keys file; `previous` lends its usage to keys
    /// whose name and limits are unchanged.
    pub fn load(path: &Path, previous: Option<&KeyRing>) -> Result<Self, KeysError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, previous).map_err(|message| KeysError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    fn parse(text: &str, previous: Option<&KeyRing>) -> Result<Self, String> {
        let file: KeysFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.keys.is_empty() {
            return Err("no [[keys]] entry: a keys file with no key would refuse every request; remove --api-keys-file to serve without keys".into());
        }
        let mut keys: Vec<Arc<Key>> = Vec::with_capacity(file.keys.len());
        for (i, e) in file.keys.into_iter().enumerate() {
            let at = format!("key {} ({:?})", i + 1, e.name);
            if !valid_key_name(&e.name) {
                return Err(format!(
                    "{at}: name must be 1 to 64 of A-Za-z0-9 . _ - (it labels logs and metrics)"
                ));
            }
            if keys.iter().any(|k| k.name == e.name) {
                return Err(format!("{at}: the name is used twice"));
            }
            let hash = parse_hash(&e.hash).ok_or_else(|| {
                format!("{at}: hash must be sha256: and 64 hex digits (tts-node --hash-api-key)")
            })?;
            if keys.iter().any(|k| k.hash == hash) {
                return Err(format!("{at}: the same key hash is given twice"));
            }
            let positive = |what: &str, v: Option<f64>| match v {
                Some(x) if !(x.is_finite() && x > 0.0) => {
                    Err(format!("{at}: {what} must be above 0"))
                }
                _ => Ok(()),
            };
            positive("requests_per_second", e.requests_per_second)?;
            positive("audio_seconds_per_minute", e.audio_seconds_per_minute)?;
            if e.burst == Some(0) || e.max_concurrent == Some(0) {
                return Err(format!("{at}: burst and max_concurrent must be at least 1"));
            }
            if e.burst.is_some() && e.requests_per_second.is_none() {
                return Err(format!("{at}: burst needs requests_per_second"));
            }
            let limits = Limits {
                requests_per_second: e.requests_per_second,
                burst: e.burst,
                audio_seconds_per_minute: e.audio_seconds_per_minute,
                max_concurrent: e.max_concurrent,
            };
            let usage = previous
                .and_then(|p| p.keys.iter().find(|k| k.name == e.name))
                .filter(|k| k.limits == limits)
                .map_or_else(|| Arc::new(Usage::new(&limits)), |k| Arc::clone(&k.usage));
            keys.push(Arc::new(Key {
                name: e.name,
                role: e.role,
                hash,
                limits,
                usage,
            }));
        }
        Ok(Self { keys })
    }

    /// The key whose hash is the presented key's: every entry is compared,
    /// each in constant time.
    pub fn find(&self, presented: &str) -> Option<Arc<Key>> {
        let h = sha256(presented.as_bytes());
        let mut found = None;
        for k in &self.keys {
            if bool::from(k.hash.ct_eq(&h)) {
                found = Some(Arc::clone(k));
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

/// A key's name: it labels logs and metrics.
fn valid_key_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let hex = s.trim().strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The keys file's `hash` of a key.
pub fn hash_key(key: &str) -> String {
    let mut s = String::from("sha256:");
    for b in sha256(key.as_bytes()) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A fresh key: 32 random bytes from the system, as 64 hex digits.
pub fn new_key() -> Result<String, ring::error::Unspecified> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

// ---------------------------------------------------------------- the node's access

/// The node's access rules: the keys (none: every route open) and CORS.
pub struct Access {
    file: Option<PathBuf>,
    keys: RwLock<Option<Arc<KeyRing>>>,
    cors: Cors,
}

impl Access {
    /// Reads the keys file, if any; the error names it.
    pub fn new(file: Option<&Path>, cors_origins: &[String]) -> Result<Self, KeysError> {
        let keys = file
            .map(|p| KeyRing::load(p, None).map(Arc::new))
            .transpose()?;
        Ok(Self {
            file: file.map(Path::to_path_buf),
            keys: RwLock::new(keys),
            cors: Cors {
                origins: cors_origins.to_vec(),
            },
        })
    }

    /// Whether requests need a key.
    pub fn requires_keys(&self) -> bool {
        self.file.is_some()
    }

    /// Reads the keys file again (SIGHUP). On an error the keys in use stay,
    /// and the error says why; requests in flight are not touched.
    pub fn reload(&self) -> Result<Option<usize>, KeysError> {
        let Some(path) = &self.file else {
            return Ok(None);
        };
        let previous = self.ring();
        let ring = KeyRing::load(path, previous.as_deref())?;
        let n = ring.len();
        if let Ok(mut k) = self.keys.write() {
            *k = Some(Arc::new(ring));
        }
        Ok(Some(n))
    }

    fn ring(&self) -> Option<Arc<KeyRing>> {
        self.keys.read().ok().and_then(|k| k.clone())
    }
}

/// Whom a request was admitted for: in the request's extensions (handlers
/// charge its audio) and the response's (metrics by key).
#[derive(Clone)]
pub struct Caller(Arc<Key>);

impl Caller {
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Charges seconds of audio made to the key's audio bucket.
    pub fn charge_audio(&self, seconds: f64) {
        if let Some(b) = &self.0.usage.audio {
            if let Ok(mut b) = b.lock() {
                b.charge(seconds, Instant::now());
            }
        }
    }
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Caller").field(&self.0.name).finish()
    }
}

/// The key a request presents: `Authorization: Bearer …` or `X-Api-Key`.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if let Some((scheme, rest)) = v.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some(rest.trim());
            }
        }
        return None;
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn rate_limited(message: String, wait_s: f64) -> NodeError {
    NodeError::new(Code::RateLimited, message).with_retry_after(wait_s.ceil().max(1.0) as u64)
}

/// Runs `op` on a key's bucket, when it has that limit; a refusal says
/// what the key is over (`over`) and when to retry.
fn within(
    bucket: &Option<Mutex<Bucket>>,
    op: fn(&mut Bucket, Instant) -> Result<(), f64>,
    now: Instant,
    over: impl FnOnce() -> String,
) -> Result<(), NodeError> {
    match bucket.as_ref().map(Mutex::lock) {
        Some(Ok(mut b)) => op(&mut b, now).map_err(|wait| rate_limited(over(), wait)),
        _ => Ok(()),
    }
}

/// What [`admit`] decided.
enum Admission {
    /// An open route, or a node without keys.
    Open,
    /// A key with the role, within its limits (and its concurrency permit).
    Admitted(Caller, Option<OwnedSemaphorePermit>),
    /// 401 (no key known), 403 or 429 (the key's).
    Refused(NodeError, Option<Caller>),
}

/// Admits a request for `route`, or refuses it.
fn admit(access: &Access, headers: &HeaderMap, route: &str) -> Admission {
    let need = need(route);
    if need == Need::Open {
        return Admission::Open;
    }
    let Some(ring) = access.ring() else {
        return Admission::Open;
    };
    let key = match presented(headers) {
        None | Some("") => {
            return Admission::Refused(
                NodeError::new(
                    Code::Unauthorized,
                    "no API key: send Authorization: Bearer <key> or X-Api-Key",
                ),
                None,
            )
        }
        Some(k) => match ring.find(k) {
            Some(key) => key,
            None => {
                return Admission::Refused(
                    NodeError::new(Code::Unauthorized, "unknown API key"),
                    None,
                )
            }
        },
    };
    tracing::Span::current().record(fields::API_KEY_NAME, key.name.as_str());
    match limit(&key, need, route) {
        Ok(permit) => Admission::Admitted(Caller(key), permit),
        Err(e) => Admission::Refused(e, Some(Caller(key))),
    }
}

/// The key's role and limits for `route`.
fn limit(key: &Key, need: Need, route: &str) -> Result<Option<OwnedSemaphorePermit>, NodeError> {
    if !key.role.allows(need) {
        return Err(NodeError::new(
            Code::Forbidden,
            format!(
                "API key {:?} has role {}, which may not use {route}",
                key.name,
                key.role.as_str()
            ),
        ));
    }
    let now = Instant::now();
    within(&key.usage.requests, Bucket::take, now, || {
        format!(
            "API key {:?} is over its {} requests per second",
            key.name,
            key.limits.requests_per_second.unwrap_or_default()
        )
    })?;
    let mut permit = None;
    if synthesises(route) {
        within(&key.usage.audio, Bucket::admit, now, || {
            format!(
                "API key {:?} is over its {} audio seconds per minute",
                key.name,
                key.limits.audio_seconds_per_minute.unwrap_or_default()
            )
        })?;
        if let Some(s) = &key.usage.concurrent {
            permit = Some(Arc::clone(s).try_acquire_owned().map_err(|_| {
                rate_limited(
                    format!(
                        "API key {:?} has its {} synthesis requests in flight (max_concurrent)",
                        key.name,
                        key.limits.max_concurrent.unwrap_or_default()
                    ),
                    1.0,
                )
            })?);
        }
    }
    Ok(permit)
}

/// The middleware: CORS preflights, then the key, its role and its limits;
/// the client's address and the key's name go on the request span (never
/// the key). A refusal is answered (and logged once, as WARN, by the
/// request-context middleware) without running the route.
pub async fn authorize(
    State(access): State<Arc<Access>>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let span = tracing::Span::current();
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        span.record(fields::CLIENT_ADDR, tracing::field::display(addr.ip()));
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return access.cors.preflight(origin.as_ref());
    }
    let mut resp = match admit(&access, req.headers(), &route) {
        Admission::Refused(e, caller) => {
            let unauthorized = e.code == Code::Unauthorized;
            let mut resp = e.into_response();
            if unauthorized {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
            }
            if let Some(c) = caller {
                resp.extensions_mut().insert(c);
            }
            resp
        }
        Admission::Open => next.run(req).await,
        Admission::Admitted(caller, permit) => {
            req.extensions_mut().insert(caller.clone());
            let mut resp = next.run(req).await;
            if let Some(permit) = permit {
                // Held until the body is sent (a stream's last chunk).
                resp = resp.map(|body| {
                    Body::new(Held {
                        body,
                        _permit: permit,
                    })
                });
            }
            resp.extensions_mut().insert(caller);
            resp
        }
    };
    access.cors.decorate(origin.as_ref(), resp.headers_mut());
    resp
}

/// A response body that holds a concurrency permit until it is dropped.
struct Held {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

// ---------------------------------------------------------------- CORS

/// Browser pages of other origins: none allowed by default.
struct Cors {
    /// Exact origins (`https://app.example.com`), or `*`.
    origins: Vec<String>,
}

impl Cors {
    fn allows(&self, origin: &HeaderValue) -> bool {
        let Ok(o) = origin.to_str() else {
            return false;
        };
        self.origins.iter().any(|a| a == "*" || a == o)
    }

    /// Headers for a response to a cross-origin request from an allowed origin.
    fn decorate(&self, origin: Option<&HeaderValue>, h: &mut HeaderMap) {
        let Some(origin) = origin.filter(|o| self.allows(o)) else {
            return;
        };
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(
                "x-request-id, x-node-id, x-voice, x-audio-seconds, retry-after",
            ),
        );
    }

    /// The answer to a preflight: 204, with the CORS headers only for an
    /// allowed origin (a browser then refuses the others).
    fn preflight(&self, origin: Option<&HeaderValue>) -> Response {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if origin.is_some_and(|o| self.allows(o)) {
            let h = resp.headers_mut();
            self.decorate(origin, h);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type, x-api-key, x-request-id"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        resp
    }
}

/// True for a `--cors-origins` entry: `*`, or `http(s)://host[:port]`
/// without a path.
pub fn valid_origin(o: &str) -> bool {
    if o == "*" {
        return true;
    }
    let Some(rest) = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn ring(extra: &str) -> Result<KeyRing, String> {
        KeyRing::parse(
            &format!(
                "[[keys]]\nname = \"alice\"\nrole = \"user\"\nhash = \"{}\"\n{extra}",
                hash_key(KEY)
            ),
            None,
        )
    }

    #[test]
    fn a_key_is_found_by_its_hash_and_a_wrong_one_is_not() {
        let r = ring("").expect("parses");
        assert_eq!(r.find(KEY).map(|k| k.name.clone()), Some("alice".into()));
        assert!(r.find("0123456789abcdef0123456789abcdeX").is_none());
        assert!(r.find("").is_none());
        let roles: HashMap<&str, Role> = r.keys.iter().map(|k| (k.name.as_str(), k.role)).collect();
        assert_eq!(roles.get("alice"), Some(&Role::User));
    }

    #[test]
    fn hashes_are_sha256_hex_and_round_trip() {
        let h = hash_key("abc");
        assert_eq!(
            h,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_hash(&h), Some(sha256(b"abc")));
        assert_eq!(parse_hash("sha256:abc"), None);
        assert_eq!(parse_hash(&h.replace("sha256:", "md5:")), None);
        let k = new_key().expect("system randomness");
        assert_eq!(k.len(), 64);
        assert_ne!(k, new_key().expect("system randomness"));
    }

    #[test]
    fn broken_files_name_the_entry_and_the_setting() {
        let cases = [
            ("role = \"root\"", "role"),
            (
                "requests_per_second = 0",
                "requests_per_second must be above 0",
            ),
            ("burst = 3", "burst needs requests_per_second"),
            ("max_concurrent = 0", "at least 1"),
            ("password = \"x\"", "password"),
        ];
        for (extra, want) in cases {
            let text = format!(
                "[[keys]]\nname = \"alice\"\nrole = \"user\"\nhash = \"{}\"\n{extra}",
                hash_key(KEY)
            );
            let text = if extra.starts_with("role") {
                text.replace("role = \"user\"\n", "")
            } else {
                text
            };
            let err = KeyRing::parse(&text, None).expect_err(extra);
            assert!(err.contains(want), "{extra}: {err}");
        }
        let err = KeyRing::parse("", None).expect_err("empty");
        assert!(err.contains("no [[keys]]"), "{err}");
        let bad_name = format!(
            "[[keys]]\nname = \"../x\"\nrole = \"user\"\nhash = \"{}\"\n",
            hash_key(KEY)
        );
        assert!(KeyRing::parse(&bad_name, None)
            .expect_err("name")
            .contains("name must be"));
        let twice = format!(
            "[[keys]]\nname = \"a\"\nrole = \"user\"\nhash = \"{h}\"\n[[keys]]\nname = \"b\"\nrole = \"admin\"\nhash = \"{h}\"\n",
            h = hash_key(KEY)
        );
        assert!(KeyRing::parse(&twice, None)
            .expect_err("twice")
            .contains("key 2 (\"b\")"));
    }

    #[test]
    fn roles_open_what_the_table_says() {
        use Need::*;
        assert!(
            Role::User.allows(User) && !Role::User.allows(Admin) && !Role::User.allows(Metrics)
        );
        assert!(
            Role::Admin.allows(User) && Role::Admin.allows(Admin) && !Role::Admin.allows(Metrics)
        );
        assert!(!Role::Metrics.allows(User) && Role::Metrics.allows(Metrics));
        assert!(Role::Metrics.allows(Open));
        assert_eq!(need("/healthz"), Open);
        assert_eq!(need("/readyz"), Open);
        assert_eq!(need("/"), Open);
        assert_eq!(need("/v1/audio/speech"), User);
        assert_eq!(need("/api/speakers/{name}"), Admin);
        assert_eq!(need("/metrics"), Metrics);
    }

    #[test]
    fn buckets_refill_at_their_rate_and_say_when() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2.0, 1.0, t0);
        assert!(b.take(t0).is_ok() && b.take(t0).is_ok());
        let wait = b.take(t0).expect_err("empty");
        assert!((wait - 1.0).abs() < 1e-9, "{wait}");
        assert!(b.take(t0 + std::time::Duration::from_millis(1000)).is_ok());
        // Audio: admitted while not empty, then in debt until refilled.
        let mut a = Bucket::new(60.0, 1.0, t0);
        assert!(a.admit(t0).is_ok());
        a.charge(90.0, t0);
        let wait = a.admit(t0).expect_err("in debt");
        assert!((wait - 30.01).abs() < 1e-6, "{wait}");
        assert!(a.admit(t0 + std::time::Duration::from_secs(31)).is_ok());
    }

    #[test]
    fn usage_survives_a_reload_while_limits_stay() {
        let r1 = ring("requests_per_second = 1").expect("parses");
        let k1 = r1.find(KEY).expect("found");
        assert!(k1
            .usage
            .requests
            .as_ref()
            .expect("bucket")
            .lock()
            .expect("lock")
            .take(Instant::now())
            .is_ok());
        let r2 = KeyRing::parse(
            &format!(
                "[[keys]]\nname = \"alice\"\nrole = \"user\"\nhash = \"{}\"\nrequests_per_second = 1\n",
                hash_key(KEY)
            ),
            Some(&r1),
        )
        .expect("parses");
        let k2 = r2.find(KEY).expect("found");
        assert!(Arc::ptr_eq(&k1.usage, &k2.usage));
        let r3 = ring("requests_per_second = 2").expect("parses");
        let r3 = KeyRing::parse(
            &format!(
                "[[keys]]\nname = \"alice\"\nrole = \"user\"\nhash = \"{}\"\nrequests_per_second = 2\n",
                hash_key(KEY)
            ),
            Some(&r3),
        )
        .expect("parses");
        assert!(!Arc::ptr_eq(&k1.usage, &r3.find(KEY).expect("found").usage));
    }

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc "),
        );
        assert_eq!(presented(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented(&h), None);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("xyz"));
        assert_eq!(presented(&h), Some("xyz"));
    }

    #[test]
    fn origins_are_exact_scheme_host_port() {
        assert!(valid_origin("https://app.example.com"));
        assert!(valid_origin("http://localhost:3000"));
        assert!(valid_origin("*"));
        assert!(!valid_origin("app.example.com"));
        assert!(!valid_origin("https://app.example.com/path"));
        let c = Cors {
            origins: vec!["https://a.example".into()],
        };
        assert!(c.allows(&HeaderValue::from_static("https://a.example")));
        assert!(!c.allows(&HeaderValue::from_static("https://b.example")));
    }
}
