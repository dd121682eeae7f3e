//! The node's settings: command-line flags, each also read from an
//! environment variable, validated at start with messages naming the setting.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

/// Where the voice runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    /// CUDA when a usable GPU is present (and the binary has CUDA), else CPU.
    Auto,
    /// Always the CPU.
    Cpu,
    /// The first CUDA GPU; fails at start without one.
    Cuda,
}

/// The text-to-speech node: web UI and HTTP API, per-request GELF events.
#[derive(Debug, Clone, Parser)]
#[command(name = "tts-node", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "TTS_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on.
    #[arg(long, env = "TTS_PORT", default_value_t = 7860)]
    pub port: u16,
    /// This node's name in every log event (`node_id`).
    #[arg(long, env = "NODE_ID", default_value = "tts-node-01")]
    pub node_id: String,
    /// GELF endpoint(s): tcp://, tls://, udp://, http(s)://…/gelf, or a
    /// comma-separated failover list. Without it the node logs to stdout only.
    #[arg(long, env = "GELF_ENDPOINT")]
    pub gelf: Option<String>,
    /// Directory where GELF events wait on disk while Graylog is down (and
    /// across restarts). Without it, events wait in memory only.
    #[arg(long, env = "GELF_SPOOL_DIR")]
    pub gelf_spool_dir: Option<PathBuf>,
    /// Model cache directory: every voice directory under it is found
    /// (<cache-dir>/piper/<voice>/ for Piper, <cache-dir>/indextts2/<voice>/
    /// for IndexTTS2), its engine chosen from the files it holds.
    #[arg(long, env = "TTS_CACHE_DIR", default_value = "cache_hub")]
    pub cache_dir: PathBuf,
    /// Hugging Face hub cache holding IndexTTS2's auxiliary models
    /// (facebook/w2v-bert-2.0, amphion/MaskGCT, funasr/campplus, the BigVGAN
    /// its config.yaml names); default: $HF_HUB_CACHE, $HF_HOME/hub or
    /// ~/.cache/huggingface/hub.
    #[arg(long, env = "TTS_HF_HUB")]
    pub hf_hub: Option<PathBuf>,
    /// Default voice; every voice found in the cache is served.
    #[arg(long, env = "TTS_VOICE", default_value = "en_US-joe-medium")]
    pub voice: String,
    /// Device for inference.
    #[arg(long, env = "TTS_DEVICE", value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Synthesis workers on CPU (on GPU: one).
    #[arg(long, env = "TTS_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Cores each worker computes on, in a thread pool of its own (0: the
    /// machine's cores divided among the workers, at least one each).
    #[arg(long, env = "TTS_THREADS_PER_WORKER", default_value_t = 0)]
    pub threads_per_worker: usize,
    /// Requests that may wait for a worker; more get 503 QUEUE_FULL.
    #[arg(long, env = "TTS_QUEUE_SIZE", default_value_t = 8)]
    pub queue_size: usize,
    /// Longest a request may take, queue wait included (seconds).
    #[arg(long, env = "TTS_REQUEST_TIMEOUT_S", default_value_t = 60.0)]
    pub request_timeout_s: f64,
    /// Longest text accepted, in characters (more: 413 TEXT_TOO_LONG).
    #[arg(long, env = "TTS_MAX_TEXT_CHARS", default_value_t = 5000)]
    pub max_text_chars: usize,
    /// Largest request body in bytes (more: 413 BODY_TOO_LARGE).
    /// (Default 4 MiB: a 30 s reference clip, base64, fits.)
    #[arg(long, env = "TTS_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest segment long text is cut into, in characters.
    #[arg(long, env = "TTS_MAX_SEGMENT_CHARS", default_value_t = 300)]
    pub max_segment_chars: usize,
    /// Silence between segments, in milliseconds.
    #[arg(long, env = "TTS_SEGMENT_SILENCE_MS", default_value_t = 200)]
    pub segment_silence_ms: u32,
    /// Error attribution rules (TOML) applied to ERROR/WARN events before they
    /// are shipped; default: the rules made from the node's error table
    /// (print them with --print-attribution-rules, as a template).
    #[arg(long, env = "TTS_ATTRIBUTION_RULES")]
    pub attribution_rules: Option<PathBuf>,
    /// Print the built-in attribution rules (TOML) and exit.
    #[arg(long)]
    pub print_attribution_rules: bool,
    /// Print the error-code table (Markdown, as in the README) and exit.
    #[arg(long)]
    pub print_error_table: bool,
    /// Print the fields the node's events carry (JSON: name, type, events)
    /// and exit.
    #[arg(long)]
    pub print_graylog_fields: bool,
    /// Print the Graylog content pack for a cluster (JSON) and exit; see
    /// deploy/graylog/ and the --graylog-* settings.
    #[arg(long)]
    pub print_graylog_pack: bool,
    /// Check a Graylog content pack (JSON file) against Graylog's rules and
    /// the fields the node sends; exit 1 naming each problem.
    #[arg(long, value_name = "FILE")]
    pub check_graylog_pack: Option<PathBuf>,
    /// Send one GELF event with this request id through the layer to
    /// GELF_ENDPOINT, wait until it is delivered, and exit (1 when it is
    /// not): how scripts/graylog-provision.sh proves the pack's input works.
    #[arg(long, value_name = "REQUEST_ID")]
    pub send_gelf_test_event: Option<String>,
    /// The pack's node ids, `,`-separated: one stream each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tts-node-01,tts-node-02,tts-node-03"
    )]
    pub graylog_nodes: Vec<String>,
    /// Where the pack's HTTP notification POSTs alerts (allowlisted in the pack).
    #[arg(long)]
    pub graylog_webhook_url: Option<String>,
    /// Names the pack, its streams and dashboard; the pack id derives from it.
    #[arg(long, default_value = "tts")]
    pub graylog_cluster: String,
    /// The pack's revision (raise it when the pack changes).
    #[arg(long, default_value_t = 1)]
    pub graylog_pack_rev: u32,
    /// The GELF TCP input's default port (the pack parameter GELF_PORT).
    #[arg(long, default_value_t = 12201)]
    pub graylog_gelf_port: u16,
    /// The alert bound on a node's p95 duration_ms over 5 minutes.
    #[arg(long, default_value_t = 5000)]
    pub graylog_p95_ms: u64,
    /// API keys (TOML: name, role, SHA-256 of the key, limits; see the
    /// README's security section), read again on SIGHUP. Without it every
    /// route is open, which the node allows only on loopback or with
    /// --allow-anonymous.
    #[arg(long, env = "TTS_API_KEYS_FILE", value_name = "FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Serve without API keys on an address other than loopback.
    #[arg(long, env = "TTS_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,
    /// Serve HTTPS with this certificate chain (PEM), read again on SIGHUP.
    #[arg(long, env = "TTS_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TTS_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Ask clients for a certificate signed by one of these CAs (PEM), and
    /// refuse connections without one.
    #[arg(
        long,
        env = "TTS_TLS_CLIENT_CA",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Origins whose pages may call the API from a browser (CORS), `,`-separated
    /// (`https://app.example.com`, or `*`); none by default.
    #[arg(long, env = "TTS_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Read an API key from standard input, print its hash for the keys
    /// file, and exit.
    #[arg(long)]
    pub hash_api_key: bool,
    /// Make a new random API key, print it and its hash, and exit.
    #[arg(long)]
    pub new_api_key: bool,
    /// Seconds to finish queued requests on SIGTERM before failing them.
    #[arg(long, env = "TTS_SHUTDOWN_GRACE_S", default_value_t = 20.0)]
    pub shutdown_grace_s: f64,
}

impl Config {
    /// The --graylog-* settings as a pack specification; the error names
    /// the setting.
    pub fn graylog_pack_spec(&self) -> anyhow::Result<crate::graylog::pack::PackSpec> {
        let Some(url) = self.graylog_webhook_url.clone() else {
            bail!("--graylog-webhook-url is required with --print-graylog-pack (where Graylog POSTs alerts)");
        };
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.contains(char::is_whitespace)
        {
            bail!("--graylog-webhook-url {url:?} is not an http:// or https:// URL");
        }
        let nodes: Vec<String> = self
            .graylog_nodes
            .iter()
            .map(|n| n.trim().to_owned())
            .collect();
        if nodes.is_empty() || !nodes.iter().all(|n| valid_node_id(n)) {
            bail!("--graylog-nodes must list node ids (1 to 128 visible ASCII characters each), `,`-separated");
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = nodes.iter().find(|n| !seen.insert(n.as_str())) {
            bail!("--graylog-nodes lists {d:?} twice");
        }
        if self.graylog_cluster.is_empty()
            || !self
                .graylog_cluster
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("--graylog-cluster must be letters, digits, '-' or '_'");
        }
        if self.graylog_gelf_port == 0 {
            bail!("--graylog-gelf-port must be from 1 to 65535");
        }
        if self.graylog_p95_ms == 0 {
            bail!("--graylog-p95-ms must be at least 1");
        }
        let mut spec = crate::graylog::pack::PackSpec::new(nodes, url);
        spec.cluster = self.graylog_cluster.clone();
        spec.rev = self.graylog_pack_rev;
        spec.gelf_port = self.graylog_gelf_port;
        spec.p95_bound_ms = self.graylog_p95_ms;
        Ok(spec)
    }

    /// Checks ranges and relations the parser cannot; the error names the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !valid_node_id(&self.node_id) {
            bail!(
                "--node-id / NODE_ID must have 1 to 128 visible ASCII characters (it is sent as the X-Node-Id header)"
            );
        }
        if self.port == 0 {
            bail!("--port / TTS_PORT must be from 1 to 65535");
        }
        if !valid_voice_name(&self.voice) {
            bail!(
                "--voice / TTS_VOICE {:?} is not a voice name (letters, digits, '_', '-', '.')",
                self.voice
            );
        }
        if self.workers == 0 || self.workers > 64 {
            bail!("--workers / TTS_WORKERS must be from 1 to 64");
        }
        if self.threads_per_worker > 256 {
            bail!(
                "--threads-per-worker / TTS_THREADS_PER_WORKER must be from 0 (automatic) to 256"
            );
        }
        if self.queue_size == 0 || self.queue_size > 10_000 {
            bail!("--queue-size / TTS_QUEUE_SIZE must be from 1 to 10000");
        }
        if !(self.request_timeout_s > 0.0 && self.request_timeout_s <= 3600.0) {
            bail!("--request-timeout-s / TTS_REQUEST_TIMEOUT_S must be above 0 and at most 3600");
        }
        if self.max_text_chars == 0 {
            bail!("--max-text-chars / TTS_MAX_TEXT_CHARS must be at least 1");
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > 16 * 1024 * 1024 {
            bail!("--max-body-bytes / TTS_MAX_BODY_BYTES must be from 1024 to 16777216");
        }
        if self.max_segment_chars < 20 {
            bail!("--max-segment-chars / TTS_MAX_SEGMENT_CHARS must be at least 20");
        }
        if self.segment_silence_ms > 5000 {
            bail!("--segment-silence-ms / TTS_SEGMENT_SILENCE_MS must be at most 5000");
        }
        if !(self.shutdown_grace_s >= 0.0 && self.shutdown_grace_s <= 600.0) {
            bail!("--shutdown-grace-s / TTS_SHUTDOWN_GRACE_S must be from 0 to 600");
        }
        if !self.host.is_loopback() && self.api_keys_file.is_none() && !self.allow_anonymous {
            bail!(
                "--host / TTS_HOST {} is not a loopback address and no --api-keys-file / TTS_API_KEYS_FILE is given: anyone who reaches the port could use the node. Give a keys file (see `tts-node --new-api-key`), or pass --allow-anonymous / TTS_ALLOW_ANONYMOUS=true to serve without keys",
                self.host
            );
        }
        if let Some(o) = self
            .cors_origins
            .iter()
            .find(|o| !crate::access::valid_origin(o))
        {
            bail!(
                "--cors-origins / TTS_CORS_ORIGINS {o:?} is not an origin (https://host[:port], or *)"
            );
        }
        self.attribution()?;
        if let Some(g) = &self.gelf {
            gelf_tracing::Endpoint::parse_list(g)
                .with_context(|| "--gelf / GELF_ENDPOINT".to_string())?;
        }
        Ok(())
    }

    /// The attribution rules: the configured file, or the built-in one.
    pub fn attribution(&self) -> anyhow::Result<gelf_tracing::AttributionRules> {
        match &self.attribution_rules {
            Some(path) => gelf_tracing::AttributionRules::from_file(path)
                .with_context(|| "--attribution-rules / TTS_ATTRIBUTION_RULES".to_string()),
            None => gelf_tracing::AttributionRules::from_toml(&crate::errors::attribution_toml())
                .context("the built-in attribution rules"),
        }
    }

    /// The per-request time limit.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_s)
    }

    /// How long queued requests may still run after SIGTERM.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_grace_s)
    }
}

/// True for a node id: 1 to 128 visible ASCII characters (it is sent as the
/// `X-Node-Id` header and matched exactly by the Graylog pack's streams).
pub fn valid_node_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// True for names that may be used as a voice name: short, and only
/// characters that cannot form a path (no `/`, no `..` on its own).
pub fn valid_voice_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["tts-node"];
        all.extend_from_slice(args);
        Config::parse_from(all)
    }

    #[test]
    fn bad_graylog_pack_settings_name_the_setting() {
        let url = ["--graylog-webhook-url", "http://h/x"];
        for (args, name) in [
            (vec![], "--graylog-webhook-url"),
            (
                vec!["--graylog-webhook-url", "ftp://h/x"],
                "--graylog-webhook-url",
            ),
            (
                vec![url[0], url[1], "--graylog-nodes", "a,,b"],
                "--graylog-nodes",
            ),
            (
                vec![url[0], url[1], "--graylog-nodes", "a,a"],
                "--graylog-nodes",
            ),
            (
                vec![url[0], url[1], "--graylog-cluster", "a b"],
                "--graylog-cluster",
            ),
            (
                vec![url[0], url[1], "--graylog-gelf-port", "0"],
                "--graylog-gelf-port",
            ),
            (
                vec![url[0], url[1], "--graylog-p95-ms", "0"],
                "--graylog-p95-ms",
            ),
        ] {
            let err = parse(&args).graylog_pack_spec().unwrap_err().to_string();
            assert!(err.contains(name), "{args:?}: {err}");
        }
        let spec = parse(&[url[0], url[1], "--graylog-nodes", "n1, n2"])
            .graylog_pack_spec()
            .unwrap();
        assert_eq!(spec.nodes, ["n1", "n2"]);
        assert_eq!(spec.webhook_url, "http://h/x");
    }

    #[test]
    fn bad_settings_name_the_setting() {
        for (args, name) in [
            (vec!["--node-id", "node 01"], "NODE_ID"),
            (vec!["--node-id", ""], "NODE_ID"),
            (vec!["--workers", "0"], "TTS_WORKERS"),
            (
                vec!["--threads-per-worker", "1000"],
                "TTS_THREADS_PER_WORKER",
            ),
            (vec!["--queue-size", "0"], "TTS_QUEUE_SIZE"),
            (vec!["--voice", "../etc"], "TTS_VOICE"),
            (vec!["--gelf", "ftp://x:1"], "GELF_ENDPOINT"),
            (vec!["--gelf", "tcp://a:1,"], "GELF_ENDPOINT"),
            (vec!["--max-body-bytes", "10"], "TTS_MAX_BODY_BYTES"),
            (vec!["--request-timeout-s", "0"], "TTS_REQUEST_TIMEOUT_S"),
            (
                vec!["--attribution-rules", "/nonexistent.toml"],
                "TTS_ATTRIBUTION_RULES",
            ),
            (
                vec!["--cors-origins", "app.example.com"],
                "TTS_CORS_ORIGINS",
            ),
            (
                vec!["--cors-origins", "https://a.example/path"],
                "TTS_CORS_ORIGINS",
            ),
        ] {
            let err = parse(&args).validate().unwrap_err();
            assert!(format!("{err:#}").contains(name), "{args:?}: {err:#}");
        }
        parse(&[]).validate().unwrap();
    }

    #[test]
    fn a_node_on_a_public_address_needs_keys_or_an_explicit_anonymous() {
        for host in ["0.0.0.0", "192.0.2.7", "::"] {
            let err = format!("{:#}", parse(&["--host", host]).validate().unwrap_err());
            for option in ["--api-keys-file", "TTS_API_KEYS_FILE", "--allow-anonymous"] {
                assert!(err.contains(option), "{host}: {err}");
            }
            parse(&["--host", host, "--allow-anonymous"])
                .validate()
                .unwrap();
            parse(&["--host", host, "--api-keys-file", "keys.toml"])
                .validate()
                .unwrap();
        }
        for host in ["127.0.0.1", "::1"] {
            parse(&["--host", host]).validate().unwrap();
        }
        // TLS needs both files.
        assert!(Config::try_parse_from(["tts-node", "--tls-cert", "c.pem"]).is_err());
    }

    #[test]
    fn a_broken_rule_file_fails_naming_the_line() {
        let path = std::env::temp_dir().join(format!("tts-rules-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[[rule]]\ncode = \"X\"\ncomponent = \"api\"\ncategory = \"c\"\nseverity = \"bad\"\n",
        )
        .unwrap();
        let err = parse(&["--attribution-rules", path.to_str().unwrap()])
            .validate()
            .unwrap_err();
        let _ = std::fs::remove_file(&path);
        let msg = format!("{err:#}");
        assert!(
            msg.contains("TTS_ATTRIBUTION_RULES") && msg.contains("line 5"),
            "{msg}"
        );
    }

    #[test]
    fn voice_names_cannot_form_paths() {
        for ok in ["en_US-joe-medium", "a.b"] {
            assert!(valid_voice_name(ok));
        }
        for bad in ["", ".", "..", "a/b", "a\\b", "x y", "é"] {
            assert!(!valid_voice_name(bad), "{bad}");
        }
    }
}
