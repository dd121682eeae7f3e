//! Every error code the node emits, in one table: HTTP status, component,
//! category, severity, log level, and what it means and what to do. The API's
//! error responses, the engine's failures, the log event of a failure, the
//! built-in attribution rules shipped to Graylog (`_component`,
//! `_error_category`, `_severity`, `_root_cause`, `_solution`) and the
//! README's error table are all made from it; a test fails when the README
//! drifts from it.
//!
//! Adding a code is one entry in the `error_codes!` list below (and the
//! README row its test then asks for).

use std::fmt::Write as _;

use crate::fields;

/// How urgent an error is for the operator (`_severity` in Graylog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Major,
    Minor,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Major => "major",
            Self::Minor => "minor",
        }
    }
}

/// The level a failure is logged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Not the node's failure (a wrong path): WARN.
    Warn,
    Error,
}

/// One row of the table.
#[derive(Debug)]
pub struct Spec {
    /// The stable `error_code`.
    pub code: &'static str,
    /// The HTTP status of the response; `None` for start failures (exit 1).
    pub http: Option<u16>,
    /// Whether the response says `Retry-After: 1`.
    pub retry_after: bool,
    pub level: Level,
    /// The part of the node it comes from (`_component`).
    pub component: &'static str,
    /// `_error_category`.
    pub category: &'static str,
    pub severity: Severity,
    /// One line for the README table.
    pub summary: &'static str,
    /// `_root_cause`.
    pub root_cause: &'static str,
    /// `_solution`.
    pub solution: &'static str,
}

macro_rules! error_codes {
    ($( $variant:ident { $($field:ident : $value:expr),* $(,)? } ),* $(,)?) => {
        /// An error code of the node; [`Code::spec`] tells everything about it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code { $($variant),* }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code's row of the table.
            pub fn spec(self) -> &'static Spec {
                match self {
                    $(Code::$variant => {
                        use Level::*;
                        use Severity::*;
                        const S: Spec = Spec { $($field: $value),* };
                        &S
                    })*
                }
            }

            /// The stable `error_code` string.
            pub fn as_str(self) -> &'static str {
                self.spec().code
            }
        }
    };
}

error_codes! {
    TextEmpty {
        code: "TEXT_EMPTY",
        http: Some(400),
        retry_after: false,
        level: Error,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "text/input empty or blank: fix the client",
        root_cause: "The request's text (or input) was empty or only whitespace.",
        solution: "Fix the client: send non-blank text. Nothing to do on the node.",
    },
    TextTooLong {
        code: "TEXT_TOO_LONG",
        http: Some(413),
        retry_after: false,
        level: Error,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "text over `TTS_MAX_TEXT_CHARS`: split it on the client",
        root_cause: "The text has more characters than TTS_MAX_TEXT_CHARS allows.",
        solution: "Split the text on the client, or raise TTS_MAX_TEXT_CHARS if nodes have the headroom.",
    },
    BodyTooLarge {
        code: "BODY_TOO_LARGE",
        http: Some(413),
        retry_after: false,
        level: Error,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "body over `TTS_MAX_BODY_BYTES`",
        root_cause: "The request body is larger than TTS_MAX_BODY_BYTES.",
        solution: "Send smaller requests, or raise TTS_MAX_BODY_BYTES together with TTS_MAX_TEXT_CHARS.",
    },
    BadRequest {
        code: "BAD_REQUEST",
        http: Some(400),
        retry_after: false,
        level: Error,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "not JSON, wrong type or unknown field: the message names it",
        root_cause: "The body is not JSON, has a field of the wrong type, or an unknown field.",
        solution: "Compare the client's request with the API in the README; the message names the field.",
    },
    InvalidParameter {
        code: "INVALID_PARAMETER",
        http: Some(400),
        retry_after: false,
        level: Error,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "a control out of range (speed, noise, speaker, emotion, sampling): see `/api/voices`",
        root_cause: "speed, noise_scale, noise_w, speaker, or an IndexTTS2 control (emotion, emo_alpha, sampling) is outside its range; the message names it and the range.",
        solution: "Use GET /api/voices for each voice's ranges and speakers.",
    },
    UnsupportedFormat {
        code: "UNSUPPORTED_FORMAT",
        http: Some(400),
        retry_after: false,
        level: Error,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "OpenAI `response_format` the node does not serve: the message names those it does",
        root_cause: "An OpenAI client asked for a response_format other than wav or pcm.",
        solution: "Set response_format to wav or pcm in the client.",
    },
    UnsupportedControl {
        code: "UNSUPPORTED_CONTROL",
        http: Some(400),
        retry_after: false,
        level: Error,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "a control the voice's engine does not honour (e.g. `top_k` for a Piper voice): the message names it and those the voice supports",
        root_cause: "The request sets a control (reference_audio, emotion, emotion_audio, emo_alpha, top_k, top_p, temperature, repetition_penalty, num_beams, max_mel_tokens, diffusion_steps, inference_cfg_rate, or a Piper scale) that the chosen voice's engine does not honour.",
        solution: "Send only the controls in the voice's capabilities (GET /api/voices), or choose a voice whose engine honours them.",
    },
    UnsupportedLanguage {
        code: "UNSUPPORTED_LANGUAGE",
        http: Some(400),
        retry_after: false,
        level: Error,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "the text is in a script the chosen voice does not speak (Chinese to an English voice), or that no voice on the node speaks: the message names the voices that can",
        root_cause: "The request names a voice that does not speak the language of its text, or the text is written in a script (Cyrillic, kana, ...) for which the node has no voice.",
        solution: "Leave the voice out (the node picks one by the text's script) or choose one of the voices the message names; GET /api/voices lists each voice's languages.",
    },
    BadAudio {
        code: "BAD_AUDIO",
        http: Some(400),
        retry_after: false,
        level: Error,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "`reference_audio`/`emotion_audio` is not a base64 WAV clip of 0.5 to 30 s, or a cloning voice without stored speakers got none",
        root_cause: "A reference clip in the request is not base64, not a readable WAV file (8/16/24/32-bit integer or float PCM), shorter than 0.5 s or longer than 30 s; or an IndexTTS2 voice with no stored speaker (cache_hub/voices/) got no reference_audio.",
        solution: "Fix the client: send a WAV file of 0.5 to 30 s, base64-encoded, in reference_audio / emotion_audio (or store speakers as cache_hub/voices/<name>.wav).",
    },
    VoiceNotFound {
        code: "VOICE_NOT_FOUND",
        http: Some(404),
        retry_after: false,
        level: Error,
        component: "api",
        category: "configuration",
        severity: Minor,
        summary: "voice not served here (names are looked up, never used as paths)",
        root_cause: "The request names a voice this node does not serve.",
        solution: "Check GET /api/voices on the node (voices found but not served are listed under unavailable, with why); if the voice should exist, put it under cache_hub/piper/ and restart.",
    },
    SpeakerNotFound {
        code: "SPEAKER_NOT_FOUND",
        http: Some(404),
        retry_after: false,
        level: Error,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "no stored speaker of that name (`GET /api/speakers`)",
        root_cause: "The request names a speaker the node's speaker library does not hold.",
        solution: "List the stored speakers with GET /api/speakers (admin key); add the clip with POST /api/speakers.",
    },
    StoreFail {
        code: "STORE_FAIL",
        http: Some(500),
        retry_after: false,
        level: Error,
        component: "speakers",
        category: "resource",
        severity: Major,
        summary: "the speaker library could not write or delete a clip: disk full or permissions",
        root_cause: "Writing or deleting a clip under <cache-dir>/voices/ failed (the message names the file and the system's error).",
        solution: "Check free space and permissions of the cache directory on this node.",
    },
    Unauthorized {
        code: "UNAUTHORIZED",
        http: Some(401),
        retry_after: false,
        level: Warn,
        component: "access",
        category: "access",
        severity: Minor,
        summary: "no API key, or one not in the keys file (logged as WARN)",
        root_cause: "The request had no API key, or one whose hash is not in TTS_API_KEYS_FILE.",
        solution: "Send Authorization: Bearer <key> (or X-Api-Key); if many arrive from one client_addr, someone is guessing keys.",
    },
    Forbidden {
        code: "FORBIDDEN",
        http: Some(403),
        retry_after: false,
        level: Warn,
        component: "access",
        category: "access",
        severity: Minor,
        summary: "the key's role may not use the route (logged as WARN)",
        root_cause: "The API key is valid but its role does not allow this route (user: synthesis and voices; admin: also speakers; metrics: /metrics).",
        solution: "Use a key with the right role, or change the key's role in TTS_API_KEYS_FILE and send SIGHUP.",
    },
    RateLimited {
        code: "RATE_LIMITED",
        http: Some(429),
        retry_after: true,
        level: Warn,
        component: "access",
        category: "capacity",
        severity: Minor,
        summary: "over the key's requests, audio or concurrency limit: retry after `Retry-After`",
        root_cause: "The API key is over one of its limits in TTS_API_KEYS_FILE (requests_per_second, audio_seconds_per_minute, max_concurrent).",
        solution: "Clients retry after Retry-After (OpenAI clients do); if the tenant needs more, raise the key's limits and send SIGHUP.",
    },
    NotFound {
        code: "NOT_FOUND",
        http: Some(404),
        retry_after: false,
        level: Warn,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "wrong path (logged as WARN)",
        root_cause: "A request for a path the node does not serve.",
        solution: "Check the client's URL against the routes in the README.",
    },
    MethodNotAllowed {
        code: "METHOD_NOT_ALLOWED",
        http: Some(405),
        retry_after: false,
        level: Warn,
        component: "api",
        category: "client_input",
        severity: Minor,
        summary: "wrong method for the path (logged as WARN)",
        root_cause: "A request used the wrong HTTP method for the path (e.g. GET /api/tts).",
        solution: "Use POST for synthesis routes.",
    },
    NotReady {
        code: "NOT_READY",
        http: Some(503),
        retry_after: true,
        level: Error,
        component: "queue",
        category: "availability",
        severity: Major,
        summary: "voice still loading: route traffic after `/readyz`",
        root_cause: "A request arrived before the voice finished loading.",
        solution: "Route traffic only after /readyz answers 200 (load balancer health check).",
    },
    QueueFull {
        code: "QUEUE_FULL",
        http: Some(503),
        retry_after: true,
        level: Error,
        component: "queue",
        category: "capacity",
        severity: Major,
        summary: "more requests than workers and queue hold: retry, add nodes",
        root_cause: "More requests than the node's workers and queue can hold (TTS_QUEUE_SIZE).",
        solution: "Clients should retry after Retry-After; add nodes, or raise TTS_WORKERS on hosts with free cores.",
    },
    Timeout {
        code: "TIMEOUT",
        http: Some(504),
        retry_after: false,
        level: Error,
        component: "queue",
        category: "capacity",
        severity: Major,
        summary: "over `TTS_REQUEST_TIMEOUT_S`: look at `queue_wait_ms` and `rtf`",
        root_cause: "The request waited and ran longer than TTS_REQUEST_TIMEOUT_S.",
        solution: "Look at queue_wait_ms and rtf on this node: overloaded (add nodes) or slow (check device and CPU).",
    },
    ShuttingDown {
        code: "SHUTTING_DOWN",
        http: Some(503),
        retry_after: true,
        level: Error,
        component: "queue",
        category: "availability",
        severity: Minor,
        summary: "node stopping: expected during deploys",
        root_cause: "The node was stopping and refused or gave up on the request.",
        solution: "Expected during deploys; if frequent, raise TTS_SHUTDOWN_GRACE_S or drain nodes before stopping.",
    },
    CudaOom {
        code: "CUDA_OOM",
        http: Some(500),
        retry_after: false,
        level: Error,
        component: "gpu",
        category: "resource",
        severity: Critical,
        summary: "GPU out of memory: check `gpu_memory_used_gb`, shorten segments",
        root_cause: "The GPU ran out of memory during synthesis.",
        solution: "Check gpu_memory_used_gb on this node and other processes on the GPU; shorten TTS_MAX_SEGMENT_CHARS or move to a GPU with more memory.",
    },
    ModelInferFail {
        code: "MODEL_INFER_FAIL",
        http: Some(500),
        retry_after: false,
        level: Error,
        component: "model_inference",
        category: "model",
        severity: Major,
        summary: "the model failed on this input: reproduce with the request's text",
        root_cause: "The voice model failed on this input.",
        solution: "Reproduce with the request's text (models/examples/synth) and report it with the request_id.",
    },
    EncodeFail {
        code: "ENCODE_FAIL",
        http: Some(500),
        retry_after: false,
        level: Error,
        component: "audio",
        category: "internal",
        severity: Major,
        summary: "the audio encoder (mp3, opus, flac) failed: read `full_message`; other formats still work",
        root_cause: "An audio encoder (LAME, libopus, flacenc) refused the synthesised samples.",
        solution: "Ask for another response_format meanwhile, and report the request_id with the node's log.",
    },
    ClientClosed {
        code: "CLIENT_CLOSED",
        http: None,
        retry_after: false,
        level: Warn,
        component: "api",
        category: "client",
        severity: Minor,
        summary: "the client closed a streamed response before its end (WARN, with `audio_sent_seconds`): synthesis stopped, the worker is free",
        root_cause: "The client went away during a streamed response (user stopped playback, timeout, network).",
        solution: "Nothing on the node; if frequent, check client timeouts against the time the text takes.",
    },
    ModelLoadFail {
        code: "MODEL_LOAD_FAIL",
        http: None,
        retry_after: false,
        level: Error,
        component: "startup",
        category: "configuration",
        severity: Critical,
        summary: "the node could not load its voice or open its device: read `full_message`",
        root_cause: "The node could not load its voice or open its device (missing or damaged files, no usable GPU).",
        solution: "Read the event's full_message; run scripts/fetch-models.sh, check --voice, --cache-dir and --device.",
    },
    ListenFail {
        code: "LISTEN_FAIL",
        http: None,
        retry_after: false,
        level: Error,
        component: "startup",
        category: "configuration",
        severity: Critical,
        summary: "the port is taken or the host is not local: `scripts/status.sh`, another `TTS_PORT`",
        root_cause: "The node could not listen on its address: the port is taken (often by a node already running) or the host is not local.",
        solution: "scripts/status.sh shows what runs on the port; scripts/start.sh replaces a node it started; otherwise pick another TTS_PORT or fix TTS_HOST.",
    },
}

/// Rules for error codes the node does not know itself (from libraries, or
/// a message with no code), after the exact ones: (`code_prefix` or
/// keywords, component, category, severity, root cause, solution).
struct Fallback {
    prefix: Option<&'static str>,
    keywords: &'static [&'static str],
    component: &'static str,
    category: &'static str,
    severity: Severity,
    root_cause: &'static str,
    solution: &'static str,
}

const FALLBACKS: [Fallback; 3] = [
    Fallback {
        prefix: Some("CUDA_"),
        keywords: &[],
        component: "gpu",
        category: "driver",
        severity: Severity::Critical,
        root_cause: "The CUDA runtime or driver reported an error.",
        solution: "Check nvidia-smi and the driver version on the host; restart the node.",
    },
    Fallback {
        prefix: Some("MODEL_"),
        keywords: &[],
        component: "model_inference",
        category: "model",
        severity: Severity::Major,
        root_cause: "An error in the voice model.",
        solution: "Check the node's log around this request_id.",
    },
    Fallback {
        prefix: None,
        keywords: &["out of memory", "CUDA_ERROR_OUT_OF_MEMORY"],
        component: "gpu",
        category: "resource",
        severity: Severity::Critical,
        root_cause: "Memory ran out.",
        solution: "Check the host's and GPU's memory use at that time.",
    },
];

/// A failure with its code and a message for the client and the log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    pub code: Code,
    pub message: String,
    /// In a streamed response: seconds of audio and bytes already sent.
    pub audio_sent: Option<(f64, u64)>,
    /// `Retry-After` in seconds, when the code has one and it is not 1.
    pub retry_after_s: Option<u64>,
}

impl NodeError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            audio_sent: None,
            retry_after_s: None,
        }
    }

    /// Sets the response's `Retry-After` (seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// Notes how much of a streamed response had been sent.
    pub fn with_audio_sent(mut self, seconds: f64, bytes: u64) -> Self {
        self.audio_sent = Some((seconds, bytes));
        self
    }

    /// Logs the failure: the one event for it, inside the current span
    /// (request id, node id, ...), at the table's level, with the table's
    /// component.
    pub fn log(&self) {
        let spec = self.code.spec();
        let code = spec.code;
        let message = &self.message;
        let http_status = spec.http.map(u64::from);
        let audio_sent_seconds = self.audio_sent.map(|(s, _)| s);
        let bytes_sent = self.audio_sent.map(|(_, b)| b);
        match spec.level {
            Level::Warn => tracing::warn!(
                { fields::ERROR_CODE } = code,
                { gelf_tracing::fields::COMPONENT } = spec.component,
                { fields::HTTP_STATUS } = http_status,
                { fields::AUDIO_SENT_SECONDS } = audio_sent_seconds,
                { fields::BYTES_SENT } = bytes_sent,
                "{code}: {message}"
            ),
            Level::Error => tracing::error!(
                { fields::ERROR_CODE } = code,
                { gelf_tracing::fields::COMPONENT } = spec.component,
                { fields::HTTP_STATUS } = http_status,
                { fields::AUDIO_SENT_SECONDS } = audio_sent_seconds,
                { fields::BYTES_SENT } = bytes_sent,
                { fields::ERROR } = %message,
                "{code}: {message}"
            ),
        }
    }
}

/// TOML string value.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The node's attribution rules, as TOML (see `gelf_tracing::attribution`):
/// one exact rule per code of the table, then the fallbacks. Printed by
/// `tts-node --print-attribution-rules` as a template for
/// `--attribution-rules`.
pub fn attribution_toml() -> String {
    let mut t = String::from(
        "# Error attribution rules of the TTS node, made from its error table\n\
         # (tts-node/src/errors.rs). Edit a copy and pass it with\n\
         # --attribution-rules / TTS_ATTRIBUTION_RULES to change them.\n",
    );
    for code in Code::ALL {
        let s = code.spec();
        let _ = write!(
            t,
            "\n[[rule]]\ncode = {}\ncomponent = {}\ncategory = {}\nseverity = {}\nroot_cause = {}\nsolution = {}\n",
            quoted(s.code),
            quoted(s.component),
            quoted(s.category),
            quoted(s.severity.as_str()),
            quoted(s.root_cause),
            quoted(s.solution)
        );
    }
    for f in &FALLBACKS {
        t.push_str("\n[[rule]]\n");
        if let Some(p) = f.prefix {
            let _ = writeln!(t, "code_prefix = {}", quoted(p));
        } else {
            let kw: Vec<String> = f.keywords.iter().map(|k| quoted(k)).collect();
            let _ = writeln!(t, "keywords = [{}]", kw.join(", "));
        }
        let _ = write!(
            t,
            "component = {}\ncategory = {}\nseverity = {}\nroot_cause = {}\nsolution = {}\n",
            quoted(f.component),
            quoted(f.category),
            quoted(f.severity.as_str()),
            quoted(f.root_cause),
            quoted(f.solution)
        );
    }
    t
}

/// The README's error table (between its `error-codes` markers).
pub fn markdown_table() -> String {
    let mut t = String::from(
        "| error_code | HTTP | component | severity | meaning, and what to do |\n|---|---|---|---|---|\n",
    );
    for code in Code::ALL {
        let s = code.spec();
        let http = match (s.http, s.retry_after) {
            (Some(h), true) => format!("{h} + `Retry-After`"),
            (Some(h), false) => h.to_string(),
            (None, _) if s.component == "startup" => "exit 1".to_owned(),
            (None, _) => "—".to_owned(),
        };
        let _ = writeln!(
            t,
            "| `{}` | {http} | {} | {} | {} |",
            s.code,
            s.component,
            s.severity.as_str(),
            s.summary
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            let s = c.spec();
            assert!(seen.insert(s.code), "{} twice", s.code);
            assert!(
                s.code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{}",
                s.code
            );
            if let Some(h) = s.http {
                assert!((400..600).contains(&h), "{}: {h}", s.code);
            }
            assert!(!s.root_cause.is_empty() && !s.solution.is_empty());
        }
    }

    #[test]
    fn the_attribution_rules_give_every_code_its_row() {
        let rules = gelf_tracing::AttributionRules::from_toml(&attribution_toml())
            .expect("the generated rules parse");
        assert_eq!(rules.len(), Code::ALL.len() + FALLBACKS.len());
        let text = attribution_toml();
        for c in Code::ALL {
            let s = c.spec();
            let rule = format!(
                "code = {}\ncomponent = {}\ncategory = {}\nseverity = {}\n",
                quoted(s.code),
                quoted(s.component),
                quoted(s.category),
                quoted(s.severity.as_str())
            );
            assert!(text.contains(&rule), "{}", s.code);
        }
    }

    /// The README's table is made from this one: when a code is added or
    /// changed here, this fails and prints the table to paste.
    #[test]
    fn the_readme_table_is_the_error_table() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        let begin =
            "<!-- error-codes:begin (made from tts-node/src/errors.rs; a test checks it) -->\n";
        let end = "<!-- error-codes:end -->";
        let table = readme
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(t, _)| t)
            .expect("README.md has the error-codes markers");
        let want = markdown_table();
        assert!(
            table == want,
            "README.md's error table differs from tts-node/src/errors.rs; put this between the markers:\n{want}"
        );
    }
}
