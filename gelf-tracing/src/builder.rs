//! The builder: every setting with its default, validated at `build()`.

use std::sync::Arc;
use std::time::Duration;

use tracing_core::Level;

use crate::encode::{EncodeConfig, OwnedField, OwnedValue, EMPTY_VALUE};
use crate::guard::{GelfGuard, GelfHandle};
use crate::layer::{GelfLayer, LayerConfig};
use crate::redact::{Redactor, DEFAULT_SECRET_NAMES, REDACTED};
use crate::spool::{Spool, SpoolFullPolicy};
use crate::tls::{client_config, TlsSettings};
use crate::transport::{udp_max_message, Compression, TransportConfig};
use crate::worker::{ErrorCallback, ErrorReporter, Shared, SpoolState, Worker, WorkerConfig};
use crate::{AttributionRules, BuildError, Endpoint, Scheme, TransportError};

/// Distinguishes layers in the per-thread callsite caches.
static NEXT_LAYER_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Graylog's TCP input closes the connection on a frame of 2 MiB or more.
pub const GRAYLOG_MAX_FRAME: usize = 2 * 1024 * 1024;

/// Graylog's HTTP input refuses bodies over 64 KiB unless its
/// `max_chunk_size` is raised.
pub const GRAYLOG_HTTP_MAX_BODY: usize = 64 * 1024;

/// What to do with an event when the queue is full.
///
/// ```
/// use gelf_tracing::{GelfLayer, OverflowPolicy};
/// let b = GelfLayer::builder().overflow_policy(OverflowPolicy::DropOldest);
/// # drop(b);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Drop the new event and count it (the default): what is queued is
    /// delivered in order, the newest events are lost.
    #[default]
    DropNewest,
    /// Drop the oldest queued event to make room and count it: the most
    /// recent events are kept.
    DropOldest,
}

/// A value for [`GelfLayerBuilder::static_field`].
///
/// ```
/// use gelf_tracing::FieldValue;
/// let v: FieldValue = "eu-west-1".into();
/// let n: FieldValue = 3u64.into();
/// # drop((v, n));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldValue {
    /// A string.
    Str(String),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A float.
    F64(f64),
    /// A boolean (sent as `"true"`/`"false"`: Graylog drops JSON booleans).
    Bool(bool),
}

macro_rules! field_value_from {
    ($($t:ty => $v:ident via $conv:expr),* $(,)?) => {
        $(impl From<$t> for FieldValue {
            fn from(x: $t) -> Self {
                FieldValue::$v($conv(x))
            }
        })*
    };
}

field_value_from! {
    &str => Str via str::to_owned,
    String => Str via std::convert::identity,
    i64 => I64 via std::convert::identity,
    i32 => I64 via i64::from,
    u64 => U64 via std::convert::identity,
    u32 => U64 via u64::from,
    f64 => F64 via std::convert::identity,
    bool => Bool via std::convert::identity,
}

/// Builds a [`GelfLayer`] and its [`GelfGuard`].
///
/// Defaults: host = the machine's hostname; levels ERROR 3, WARN 4, INFO 6,
/// DEBUG 7, TRACE 7; queue 65 536 events or 64 MiB; [`OverflowPolicy::DropNewest`];
/// messages capped at 1 MiB (less where the transport needs: see
/// [`max_message_bytes`](Self::max_message_bytes)); `short_message` cut at
/// 250 characters; default secret names redacted; reconnect backoff 100 ms →
/// 30 s with jitter; connect timeout 5 s; write timeout 10 s; flush on drop
/// within 5 s; UDP chunks of 1420 bytes, gzip; HTTP bodies uncompressed, at
/// most 64 KiB; return to the first endpoint of a list tried every 30 s; no spool.
///
/// ```
/// use std::time::Duration;
/// use tracing::Level;
///
/// let (layer, guard) = gelf_tracing::GelfLayer::builder()
///     .endpoint("tcp://graylog.internal:12201")?
///     .host("tts-node-01.eu")
///     .static_field("node_id", "tts-node-01")
///     .static_field("env", "prod")
///     .level(Level::DEBUG, 7)
///     .queue_capacity(10_000)
///     .redact_field("session")
///     .redact_value(r"Bearer [A-Za-z0-9._~+/-]+")
///     .flush_timeout(Duration::from_secs(2))
///     .build()?;
/// # drop((layer, guard));
/// # Ok::<(), gelf_tracing::BuildError>(())
/// ```
pub struct GelfLayerBuilder {
    endpoint: Option<Vec<Endpoint>>,
    host: Option<String>,
    statics: Vec<(String, FieldValue)>,
    levels: [u8; 5],
    queue_capacity: usize,
    queue_max_bytes: usize,
    overflow: OverflowPolicy,
    max_message_bytes: usize,
    short_message_max_chars: usize,
    secret_names: Vec<String>,
    not_secret: Vec<String>,
    value_patterns: Vec<String>,
    backoff: (Duration, Duration),
    connect_timeout: Duration,
    stall_timeout: Duration,
    flush_timeout: Duration,
    batch_max_bytes: usize,
    on_error: Option<ErrorCallback>,
    stderr_interval: Duration,
    attribution: Option<Arc<AttributionRules>>,
    udp_chunk_size: usize,
    udp_compression: Compression,
    http_compression: Compression,
    http_max_body: usize,
    tls: TlsSettings,
    failback_after: Duration,
    spool_dir: Option<std::path::PathBuf>,
    spool_max_bytes: u64,
    spool_after: Duration,
    spool_policy: SpoolFullPolicy,
}

impl std::fmt::Debug for GelfLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GelfLayerBuilder")
            .field("endpoint", &self.endpoint)
            .field("host", &self.host)
            .field("statics", &self.statics.len())
            .field("levels", &self.levels)
            .field("queue_capacity", &self.queue_capacity)
            .field("queue_max_bytes", &self.queue_max_bytes)
            .field("overflow", &self.overflow)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("on_error", &self.on_error.is_some())
            .field("spool_dir", &self.spool_dir)
            .finish_non_exhaustive()
    }
}

impl Default for GelfLayerBuilder {
    fn default() -> Self {
        Self {
            endpoint: None,
            host: None,
            statics: Vec::new(),
            levels: [3, 4, 6, 7, 7],
            queue_capacity: 65_536,
            queue_max_bytes: 64 * 1024 * 1024,
            overflow: OverflowPolicy::DropNewest,
            max_message_bytes: 1024 * 1024,
            short_message_max_chars: 250,
            secret_names: DEFAULT_SECRET_NAMES.iter().map(|s| s.to_string()).collect(),
            not_secret: Vec::new(),
            value_patterns: Vec::new(),
            backoff: (Duration::from_millis(100), Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(5),
            batch_max_bytes: 256 * 1024,
            on_error: None,
            stderr_interval: Duration::from_secs(10),
            attribution: None,
            udp_chunk_size: 1420,
            udp_compression: Compression::Gzip,
            http_compression: Compression::None,
            http_max_body: GRAYLOG_HTTP_MAX_BODY,
            tls: TlsSettings::default(),
            failback_after: Duration::from_secs(30),
            spool_dir: None,
            spool_max_bytes: 1024 * 1024 * 1024,
            spool_after: Duration::from_secs(5),
            spool_policy: SpoolFullPolicy::DropNewest,
        }
    }
}

impl GelfLayerBuilder {
    /// Where to send: `tcp://host:port`, `tls://host:port`, `udp://host:port`,
    /// `http://host:port/gelf` or `https://host:port/gelf`, or a
    /// comma-separated list of these for failover (the first is preferred;
    /// the others are used in order while it is down). Without it, `build()`
    /// reads the `GELF_ENDPOINT` environment variable, in the same syntax.
    ///
    /// ```
    /// let b = gelf_tracing::GelfLayer::builder()
    ///     .endpoint("tls://graylog-a:12201,tls://graylog-b:12201")?;
    /// # drop(b);
    /// # Ok::<(), gelf_tracing::BuildError>(())
    /// ```
    pub fn endpoint(mut self, endpoint: &str) -> Result<Self, BuildError> {
        self.endpoint = Some(Endpoint::parse_list(endpoint)?);
        Ok(self)
    }

    /// UDP datagram size, header included (default 1420, safe across the
    /// internet; 8192 suits a LAN). From 512 to 65 000. Messages are capped
    /// so that they fit in Graylog's 128 chunks.
    pub fn udp_chunk_size(mut self, bytes: usize) -> Self {
        self.udp_chunk_size = bytes;
        self
    }

    /// Compression of UDP datagrams (default gzip), applied before chunking.
    pub fn udp_compression(mut self, compression: Compression) -> Self {
        self.udp_compression = compression;
        self
    }

    /// Compression of HTTP bodies (default none; gzip sends
    /// `Content-Encoding: gzip`, zlib `deflate`).
    pub fn http_compression(mut self, compression: Compression) -> Self {
        self.http_compression = compression;
        self
    }

    /// Largest HTTP body, before compression (default 64 KiB, Graylog's
    /// default `max_chunk_size`); messages to HTTP endpoints are capped to it.
    pub fn http_max_body_bytes(mut self, bytes: usize) -> Self {
        self.http_max_body = bytes;
        self
    }

    /// Trust the CA certificates in this PEM file for `tls://` and
    /// `https://` endpoints, instead of the system's roots.
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca_file = Some(path.into());
        self
    }

    /// Present this client certificate chain and private key (PEM files)
    /// for mutual TLS.
    pub fn tls_client_cert(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// While a later endpoint of the list is in use, how often the earlier
    /// ones are tried again (default 30 s).
    pub fn failback_after(mut self, interval: Duration) -> Self {
        self.failback_after = interval;
        self
    }

    /// Keep messages in segment files under this directory when the queue
    /// is full or the endpoints have been down for
    /// [`spool_after`](Self::spool_after); they are replayed in order when an
    /// endpoint is back, and by the next process using the same directory.
    /// At shutdown, what could not be sent is spooled instead of dropped.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("gelf-spool-doc");
    /// let (_layer, guard) = gelf_tracing::GelfLayer::builder()
    ///     .endpoint("http://127.0.0.1:12202/gelf")?
    ///     .spool_dir(&dir)
    ///     .spool_max_bytes(256 * 1024 * 1024)
    ///     .build()?;
    /// assert_eq!(guard.stats().spool_bytes, 0);
    /// # drop(guard); let _ = std::fs::remove_dir_all(dir);
    /// # Ok::<(), gelf_tracing::BuildError>(())
    /// ```
    pub fn spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// Most bytes the spool's files may hold (default 1 GiB).
    pub fn spool_max_bytes(mut self, bytes: u64) -> Self {
        self.spool_max_bytes = bytes;
        self
    }

    /// How long the endpoints must be down before queued messages go to the
    /// spool (default 5 s).
    pub fn spool_after(mut self, after: Duration) -> Self {
        self.spool_after = after;
        self
    }

    /// What the spool drops when full (default: the newest).
    pub fn spool_full_policy(mut self, policy: SpoolFullPolicy) -> Self {
        self.spool_policy = policy;
        self
    }

    /// The GELF `host` field (default: this machine's hostname). Must not be blank.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// A field added to every event unless the event or one of its spans sets
    /// the same name. The name is sanitised like any field name.
    pub fn static_field(mut self, name: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.statics.push((name.into(), value.into()));
        self
    }

    /// The syslog severity (0–7) sent for a tracing level.
    pub fn level(mut self, level: Level, severity: u8) -> Self {
        let i = match level {
            Level::ERROR => 0,
            Level::WARN => 1,
            Level::INFO => 2,
            Level::DEBUG => 3,
            Level::TRACE => 4,
        };
        self.levels[i] = severity;
        self
    }

    /// Most events waiting to be sent (default 65 536).
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events;
        self
    }

    /// Most bytes of encoded events waiting to be sent (default 64 MiB).
    pub fn queue_max_bytes(mut self, bytes: usize) -> Self {
        self.queue_max_bytes = bytes;
        self
    }

    /// What happens to an event when the queue is full (default: drop it and count it).
    pub fn overflow_policy(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// Largest encoded message (default 1 MiB; at most 2 MiB − 1, Graylog's TCP limit).
    /// Larger messages are cut, never dropped.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Characters of the first line kept in `short_message` (default 250);
    /// the whole message then goes to `full_message`.
    pub fn short_message_max_chars(mut self, chars: usize) -> Self {
        self.short_message_max_chars = chars;
        self
    }

    /// Also redact fields whose name contains `fragment` (case-insensitive).
    pub fn redact_field(mut self, fragment: impl Into<String>) -> Self {
        self.secret_names.push(fragment.into());
        self
    }

    /// Never redact the field called `name` (exactly, case-insensitive) for
    /// its name: for counts and metrics whose names contain a secret word,
    /// such as `mel_tokens` or `prompt_tokens` next to the default `token`.
    /// Value patterns ([`redact_value`](Self::redact_value)) still apply.
    ///
    /// ```
    /// let builder = gelf_tracing::GelfLayer::builder().not_secret("mel_tokens");
    /// # drop(builder);
    /// ```
    pub fn not_secret(mut self, name: impl Into<String>) -> Self {
        self.not_secret.push(name.into());
        self
    }

    /// Replace matches of this regular expression with `[REDACTED]` in every
    /// string value and message.
    pub fn redact_value(mut self, pattern: impl Into<String>) -> Self {
        self.value_patterns.push(pattern.into());
        self
    }

    /// Forget the default secret names ([`DEFAULT_SECRET_NAMES`](crate::DEFAULT_SECRET_NAMES));
    /// names added with [`redact_field`](Self::redact_field) after this call still apply.
    pub fn without_default_redaction(mut self) -> Self {
        self.secret_names.clear();
        self
    }

    /// Reconnect delays: exponential from `min` to `max`, each with jitter
    /// (default 100 ms → 30 s).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max);
        self
    }

    /// Longest wait for a TCP connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an endpoint may make no progress before it counts as down
    /// (default 5 s): a write that cannot hand a byte to the socket, or
    /// written data the peer does not acknowledge (a Graylog that accepts
    /// connections but stopped reading: a full journal, a paused JVM, a
    /// half-dead host). The layer then leaves it for the next endpoint of
    /// the list, does not try it again before
    /// [`failback_after`](Self::failback_after), and sends the frames it had
    /// not acknowledged again. Also the read timeout of TLS handshakes and
    /// HTTP answers.
    ///
    /// ```
    /// let b = gelf_tracing::GelfLayer::builder()
    ///     .endpoint("tcp://graylog-a:12201,tcp://graylog-b:12201")?
    ///     .stall_timeout(std::time::Duration::from_secs(3));
    /// # drop(b);
    /// # Ok::<(), gelf_tracing::BuildError>(())
    /// ```
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// The former name of [`stall_timeout`](Self::stall_timeout).
    #[deprecated(note = "use stall_timeout: it also covers unacknowledged writes")]
    pub fn write_timeout(self, timeout: Duration) -> Self {
        self.stall_timeout(timeout)
    }

    /// Deadline for the flush when the guard is dropped (default 5 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Most bytes the worker writes in one batch (default 256 KiB).
    pub fn batch_max_bytes(mut self, bytes: usize) -> Self {
        self.batch_max_bytes = bytes;
        self
    }

    /// Called on the worker thread for every transport error (connection
    /// refused, DNS failure, write error). Events logged from inside it are
    /// not shipped, so it cannot feed back into the layer.
    pub fn on_error(mut self, callback: impl Fn(&TransportError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(callback));
        self
    }

    /// Least time between two transport errors printed to stderr (default 10 s).
    pub fn stderr_interval(mut self, interval: Duration) -> Self {
        self.stderr_interval = interval;
        self
    }

    /// Classify ERROR and WARN events with these rules (see
    /// [`attribution`](crate::attribution)): matching events get `_component`,
    /// `_error_category`, `_severity`, `_root_cause` and `_solution`.
    ///
    /// ```
    /// let rules = gelf_tracing::AttributionRules::from_toml(
    ///     "[[rule]]\ncode_prefix = \"MODEL_\"\ncomponent = \"model_inference\"\ncategory = \"model\"\nseverity = \"major\"\n",
    /// )?;
    /// let (_layer, _guard) = gelf_tracing::GelfLayer::builder()
    ///     .endpoint("tcp://127.0.0.1:12201")?
    ///     .attribution(rules)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attribution(mut self, rules: AttributionRules) -> Self {
        self.attribution = Some(Arc::new(rules));
        self
    }

    /// Validates the settings, starts the worker thread and returns the layer
    /// and its guard.
    pub fn build(self) -> Result<(GelfLayer, GelfGuard), BuildError> {
        let setting = |name: &'static str, reason: String| BuildError::Setting { name, reason };
        let endpoints = match self.endpoint {
            Some(e) => e,
            None => match std::env::var("GELF_ENDPOINT") {
                Ok(s) if !s.trim().is_empty() => Endpoint::parse_list(&s)?,
                _ => return Err(BuildError::NoEndpoint),
            },
        };
        let host = match self.host {
            Some(h) => h.trim().to_owned(),
            None => default_host(),
        };
        if host.is_empty() || host.len() > 255 {
            return Err(setting(
                "host",
                format!("{host:?} must have 1 to 255 characters"),
            ));
        }
        if let Some(s) = self.levels.iter().find(|&&s| s > 7) {
            return Err(setting(
                "level",
                format!("severity {s} is not a syslog level 0-7"),
            ));
        }
        if self.queue_capacity == 0 {
            return Err(setting("queue_capacity", "must be at least 1".into()));
        }
        if !(1024..GRAYLOG_MAX_FRAME).contains(&self.max_message_bytes) {
            return Err(setting(
                "max_message_bytes",
                format!(
                    "{} must be from 1024 to {} (Graylog closes the connection on a 2 MiB frame)",
                    self.max_message_bytes,
                    GRAYLOG_MAX_FRAME - 1
                ),
            ));
        }
        if self.queue_max_bytes < self.max_message_bytes {
            return Err(setting(
                "queue_max_bytes",
                format!(
                    "{} is less than max_message_bytes ({}): a largest message could never be queued",
                    self.queue_max_bytes, self.max_message_bytes
                ),
            ));
        }
        if self.short_message_max_chars == 0 {
            return Err(setting(
                "short_message_max_chars",
                "must be at least 1".into(),
            ));
        }
        let (bmin, bmax) = self.backoff;
        if bmin.is_zero() || bmin > bmax {
            return Err(setting(
                "reconnect_backoff",
                format!("min {bmin:?} must be positive and not above max {bmax:?}"),
            ));
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("stall_timeout", self.stall_timeout),
        ] {
            if d.is_zero() {
                return Err(setting(name, "must be positive".into()));
            }
        }
        if !(512..=65_000).contains(&self.udp_chunk_size) {
            return Err(setting(
                "udp_chunk_size",
                format!("{} must be from 512 to 65000", self.udp_chunk_size),
            ));
        }
        if self.http_max_body < 1024 {
            return Err(setting(
                "http_max_body_bytes",
                format!("{} must be at least 1024", self.http_max_body),
            ));
        }
        if self.failback_after.is_zero() {
            return Err(setting("failback_after", "must be positive".into()));
        }
        // The cap every endpoint of the list can take.
        let mut max_message_bytes = self.max_message_bytes;
        for e in &endpoints {
            let cap = match e.scheme() {
                Scheme::Tcp | Scheme::Tls => self.max_message_bytes,
                Scheme::Udp => udp_max_message(self.udp_chunk_size),
                Scheme::Http | Scheme::Https => self.http_max_body,
            };
            max_message_bytes = max_message_bytes.min(cap);
        }
        let tls = if endpoints.iter().any(|e| e.scheme().is_tls()) {
            Some(client_config(&self.tls)?)
        } else {
            None
        };
        let spool = match &self.spool_dir {
            None => None,
            Some(dir) => {
                if self.spool_max_bytes < 1024 * 1024 {
                    return Err(setting(
                        "spool_max_bytes",
                        format!("{} must be at least 1 MiB", self.spool_max_bytes),
                    ));
                }
                let (spool, recovered) = Spool::open(dir, self.spool_max_bytes, self.spool_policy)
                    .map_err(|source| {
                        let dir = dir.display().to_string();
                        if source.kind() == std::io::ErrorKind::WouldBlock {
                            BuildError::SpoolLocked { dir }
                        } else {
                            BuildError::Spool { dir, source }
                        }
                    })?;
                Some((
                    SpoolState {
                        dir: dir.display().to_string(),
                        spool: std::sync::Mutex::new(spool),
                        after: self.spool_after,
                    },
                    recovered,
                ))
            }
        };
        let redactor =
            Redactor::with_allowed(&self.secret_names, &self.not_secret, &self.value_patterns)?;
        let statics = self
            .statics
            .into_iter()
            .map(|(name, value)| static_field(&redactor, &name, value))
            .collect::<Vec<_>>();
        let encode = EncodeConfig {
            host,
            short_message_max_chars: self.short_message_max_chars,
            max_message_bytes,
        };

        let (spool, recovered) = match spool {
            Some((s, r)) => (Some(s), Some(r)),
            None => (None, None),
        };
        let shared = Arc::new(Shared::new(
            ErrorReporter::new(self.on_error, self.stderr_interval),
            &endpoints,
            spool,
        ));
        if let (Some(r), Some(state)) = (recovered, shared.spool.as_ref()) {
            let c = &shared.counters;
            c.recovered
                .store(r.records, std::sync::atomic::Ordering::Relaxed);
            c.dropped_spool_corrupt
                .store(r.corrupt_tail, std::sync::atomic::Ordering::Relaxed);
            c.recovered
                .fetch_add(r.corrupt_tail, std::sync::atomic::Ordering::Relaxed);
            if let Ok(s) = state.spool.lock() {
                c.spooled
                    .store(s.records, std::sync::atomic::Ordering::Relaxed);
                c.spool_bytes
                    .store(s.bytes, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let (tx, rx) = crossbeam_channel::bounded(self.queue_capacity);
        let worker = Worker::new(
            WorkerConfig {
                endpoints,
                transport: TransportConfig {
                    connect_timeout: self.connect_timeout,
                    stall_timeout: self.stall_timeout,
                    tls,
                    udp_chunk_size: self.udp_chunk_size,
                    udp_compression: self.udp_compression,
                    http_compression: self.http_compression,
                },
                failback_after: self.failback_after,
                stderr_interval: self.stderr_interval,
                batch_max_bytes: self.batch_max_bytes.max(1),
                backoff_min: bmin,
                backoff_max: bmax,
                encode: encode.clone(),
                statics: statics.clone(),
            },
            Arc::clone(&shared),
            rx.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("gelf-worker".into())
            .spawn(move || worker.run())
            .map_err(BuildError::Spawn)?;
        let _ = shared.worker.set(thread.thread().clone());

        let layer = GelfLayer {
            tx,
            evict: rx.clone(),
            shared: Arc::clone(&shared),
            inner: Arc::new(LayerConfig {
                id: NEXT_LAYER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                encode,
                redactor,
                statics,
                levels: self.levels,
                queue_max_bytes: self.queue_max_bytes,
                overflow: self.overflow,
                attribution: self.attribution.clone(),
            }),
            #[cfg(feature = "opentelemetry")]
            otel: crate::otel::OtelLookup::default(),
        };
        let guard = GelfGuard {
            handle: GelfHandle {
                shared,
                attribution: self.attribution,
            },
            queue: rx,
            worker: Some(thread),
            flush_timeout: self.flush_timeout,
        };
        Ok((layer, guard))
    }
}

/// The machine's hostname, or `unknown-host` when it cannot be read.
fn default_host() -> String {
    let h = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_owned();
    if h.is_empty() {
        "unknown-host".to_owned()
    } else {
        h
    }
}

fn static_field(redactor: &Redactor, name: &str, value: FieldValue) -> OwnedField {
    let value = if redactor.is_secret_name(name) {
        OwnedValue::Str(REDACTED.into())
    } else {
        match value {
            FieldValue::Str(s) if s.trim().is_empty() => OwnedValue::Str(EMPTY_VALUE.into()),
            FieldValue::Str(s) => OwnedValue::Str(redactor.redact_value(&s).into()),
            FieldValue::I64(v) => OwnedValue::I64(v),
            FieldValue::U64(v) => OwnedValue::U64(v),
            FieldValue::F64(v) => OwnedValue::F64(v),
            FieldValue::Bool(v) => OwnedValue::Bool(v),
        }
    };
    OwnedField::new(name, value)
}
