//! The names of the fields the node's events carry (as Graylog stores them,
//! without GELF's leading `_`), one definition each. The request span, the
//! completion event and the failure event are written with these constants
//! (`{ fields::DURATION_MS } = …`), and the Graylog kit (`graylog.rs`) builds
//! its streams, alerts and dashboards from the same constants, so the pack
//! names exactly what the nodes send. [`CATALOGUE`] lists every field the
//! node writes, with its type; `tts-node --print-graylog-fields` prints it
//! and the end-to-end tests check that nothing else arrives.

use serde::Serialize;

/// The short message of the one event of a successful request.
pub const COMPLETED: &str = "Audio generation completed";

// Every event (static fields of the GELF layer).
pub const NODE_ID: &str = "node_id";
pub const SERVICE: &str = "service";

// The request span.
pub const REQUEST_ID: &str = "request_id";
pub const ROUTE: &str = "route";
pub const CHAR_COUNT: &str = "char_count";
pub const VOICE: &str = "voice";
pub const MODEL_VERSION: &str = "model_version";
pub const LANGUAGE: &str = "language";
pub const VOICE_CHOICE: &str = "voice_choice";
pub const CLIENT_ADDR: &str = "client_addr";
pub const API_KEY_NAME: &str = "api_key_name";

// The completion event.
pub const ENGINE: &str = "engine";
pub const DURATION_MS: &str = "duration_ms";
pub const QUEUE_WAIT_MS: &str = "queue_wait_ms";
pub const FIRST_AUDIO_MS: &str = "first_audio_ms";
pub const STREAMED: &str = "streamed";
pub const FORMAT: &str = "format";
pub const AUDIO_SECONDS: &str = "audio_seconds";
pub const RTF: &str = "rtf";
pub const SEGMENTS: &str = "segments";
pub const SAMPLE_RATE: &str = "sample_rate";
pub const DEVICE: &str = "device";
pub const GPU_MEMORY_USED_GB: &str = "gpu_memory_used_gb";
pub const GPU_MEMORY_TOTAL_GB: &str = "gpu_memory_total_gb";
pub const GPU_PROCESS_MEMORY_GB: &str = "gpu_process_memory_gb";
pub const VOICES: &str = "voices";
pub const LANGUAGES: &str = "languages";
pub const REFERENCE_SECONDS: &str = "reference_seconds";
pub const MEL_TOKENS: &str = "mel_tokens";
pub const REFERENCE_MS: &str = "reference_ms";
pub const GPT_MS: &str = "gpt_ms";
pub const S2MEL_MS: &str = "s2mel_ms";
pub const VOCODER_MS: &str = "vocoder_ms";

// The failure event (one per failed request, `errors::NodeError::log`).
pub const ERROR_CODE: &str = "error_code";
pub const HTTP_STATUS: &str = "http_status";
pub const AUDIO_SENT_SECONDS: &str = "audio_sent_seconds";
pub const BYTES_SENT: &str = "bytes_sent";
pub const ERROR: &str = "error";

/// A field's value type in Graylog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A string.
    Text,
    /// A number (integer or decimal): usable in avg/percentile series and
    /// in GREATER/SMALLER stream rules.
    Number,
    /// `true` or `false`.
    Flag,
}

/// One field the node writes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Field {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Which events carry it.
    pub on: &'static str,
    pub doc: &'static str,
}

const fn f(name: &'static str, kind: Kind, on: &'static str, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        on,
        doc,
    }
}

use Kind::{Flag, Number, Text};

const ALL: &str = "every event";
const REQ: &str = "request events";
const DONE: &str = "completion";
const FAIL: &str = "failure";
const START: &str = "start and stop";
const ADMIN: &str = "reloads and the speaker library";

/// Every field the node's own events carry (the GELF layer adds those of
/// `gelf_tracing::fields`).
pub const CATALOGUE: &[Field] = &[
    f(NODE_ID, Text, ALL, "the node's id (NODE_ID)"),
    f(SERVICE, Text, ALL, "always tts-node"),
    f(
        REQUEST_ID,
        Text,
        REQ,
        "X-Request-Id: the client's or the front's, else made by the node",
    ),
    f(ROUTE, Text, REQ, "the matched route, or `unmatched`"),
    f(CHAR_COUNT, Number, REQ, "characters of the text"),
    f(
        VOICE,
        Text,
        REQ,
        "the voice that spoke (also: the voice a start event names)",
    ),
    f(MODEL_VERSION, Text, REQ, "the voice's model version"),
    f(LANGUAGE, Text, REQ, "the text's language as detected"),
    f(
        VOICE_CHOICE,
        Text,
        REQ,
        "how the voice was chosen: named, by language, default",
    ),
    f(
        CLIENT_ADDR,
        Text,
        REQ,
        "the peer's IP address (the front's, behind HAProxy)",
    ),
    f(
        API_KEY_NAME,
        Text,
        REQ,
        "the name of the request's API key (never the key), when keys are on",
    ),
    f(ENGINE, Text, DONE, "piper, fastspeech2 or indextts2"),
    f(DURATION_MS, Number, DONE, "request start to last byte"),
    f(
        QUEUE_WAIT_MS,
        Number,
        DONE,
        "time queued before a worker took the job",
    ),
    f(
        FIRST_AUDIO_MS,
        Number,
        DONE,
        "request start to the first audio byte",
    ),
    f(STREAMED, Flag, DONE, "a streamed (chunked) answer"),
    f(FORMAT, Text, DONE, "wav, mp3, opus, flac, pcm, …"),
    f(AUDIO_SECONDS, Number, DONE, "length of the audio"),
    f(RTF, Number, DONE, "compute time over audio time"),
    f(SEGMENTS, Number, DONE, "sentences synthesised"),
    f(SAMPLE_RATE, Number, DONE, "Hz"),
    f(
        DEVICE,
        Text,
        DONE,
        "cpu or cuda:N (also on the ready event)",
    ),
    f(
        GPU_MEMORY_USED_GB,
        Number,
        DONE,
        "GPU memory in use (CUDA only)",
    ),
    f(
        GPU_MEMORY_TOTAL_GB,
        Number,
        DONE,
        "GPU memory in all (CUDA only)",
    ),
    f(
        GPU_PROCESS_MEMORY_GB,
        Number,
        DONE,
        "GPU memory of this process (CUDA only)",
    ),
    f(
        VOICES,
        Text,
        DONE,
        "voices used, `,`-separated (a count on the ready event)",
    ),
    f(LANGUAGES, Text, DONE, "languages read, `,`-separated"),
    f(
        REFERENCE_SECONDS,
        Number,
        DONE,
        "IndexTTS2: reference clip length",
    ),
    f(MEL_TOKENS, Number, DONE, "IndexTTS2: mel tokens generated"),
    f(
        REFERENCE_MS,
        Number,
        DONE,
        "IndexTTS2: reference encoding time",
    ),
    f(GPT_MS, Number, DONE, "IndexTTS2: GPT time"),
    f(S2MEL_MS, Number, DONE, "IndexTTS2: s2mel time"),
    f(VOCODER_MS, Number, DONE, "IndexTTS2: vocoder time"),
    f(
        ERROR_CODE,
        Text,
        FAIL,
        "the stable error code (README, error table)",
    ),
    f(
        HTTP_STATUS,
        Number,
        FAIL,
        "the status answered, when there was an answer",
    ),
    f(
        AUDIO_SENT_SECONDS,
        Number,
        FAIL,
        "audio already streamed when it failed",
    ),
    f(
        BYTES_SENT,
        Number,
        FAIL,
        "bytes already streamed when it failed",
    ),
    f(ERROR, Text, FAIL, "the error's text (ERROR level)"),
    f("version", Text, START, "the node's version"),
    f("listen", Text, START, "host:port"),
    f("gpu_name", Text, START, "the GPU's name (CUDA only)"),
    f("voice_load_ms", Number, START, "time to load the voices"),
    f("workers", Number, START, "synthesis workers"),
    f("queue_size", Number, START, "queue places"),
    f("requested", Text, START, "the device asked for"),
    f("cuda_unavailable", Text, START, "why CUDA was not used"),
    f("reason", Text, START, "why the node shuts down"),
    f("queued", Number, START, "jobs queued at shutdown"),
    f("busy", Number, START, "jobs running at shutdown"),
    f("grace_s", Number, START, "the shutdown grace"),
    f("gain", Number, START, "a voice's loudness gain"),
    f("dir", Text, START, "a skipped voice directory"),
    f("served", Text, START, "the directory served instead"),
    f("scheme", Text, START, "http or https"),
    f(
        "keys_required",
        Flag,
        START,
        "whether requests need an API key",
    ),
    f(
        "tls_client_auth",
        Flag,
        START,
        "whether HTTPS clients must show a certificate",
    ),
    f(
        "keys",
        Number,
        ADMIN,
        "API keys in use after a SIGHUP reload",
    ),
    f("speaker", Text, ADMIN, "a stored speaker saved or deleted"),
    f("seconds", Number, ADMIN, "the stored speaker's clip length"),
    f(
        "replaced",
        Flag,
        ADMIN,
        "whether the saved speaker replaced one",
    ),
    f(
        "path",
        Text,
        ADMIN,
        "a stored speaker's file skipped at start",
    ),
];

/// The catalogue entry of `name`.
pub fn find(name: &str) -> Option<&'static Field> {
    CATALOGUE.iter().find(|f| f.name == name)
}

/// `--print-graylog-fields`: the node's fields, the layer's and GELF's own.
pub fn catalogue_json() -> serde_json::Value {
    serde_json::json!({
        "node": CATALOGUE,
        "gelf_layer": gelf_tracing::fields::ALL,
        "gelf": gelf_tracing::fields::GELF_STANDARD,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_graylog_keys() {
        let mut seen = std::collections::HashSet::new();
        for f in CATALOGUE {
            assert!(seen.insert(f.name), "{} twice", f.name);
            assert!(
                f.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                f.name
            );
            assert!(
                !gelf_tracing::fields::GELF_STANDARD.contains(&f.name),
                "{} clashes with a GELF field",
                f.name
            );
        }
    }

    #[test]
    fn the_json_lists_the_layers_fields_too() {
        let j = catalogue_json();
        assert_eq!(j["node"][0]["name"], NODE_ID);
        assert_eq!(j["node"][0]["type"], "text");
        assert!(j["gelf_layer"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == gelf_tracing::fields::ERROR_CATEGORY)));
    }
}
