//! Receivers for the other GELF inputs Graylog offers, on real loopback
//! sockets: UDP (chunk reassembly and decompression as Graylog does them),
//! TLS (the TCP framing behind a rustls server, optionally requiring a
//! client certificate) and HTTP (202 per message, or 503 for a while), plus a
//! throw-away PKI generated with rcgen.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gelf_tracing::graylog;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{accept_with, bind_reusable, protocol_error, read_loop, record, Inbox, State};

/// Graylog forgets a chunked message whose chunks did not all arrive within 5 s.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(5);

/// Decompresses a payload as Graylog's GELF decoder does: by its magic bytes.
fn inflate(payload: &[u8]) -> std::io::Result<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    match payload {
        [0x1f, 0x8b, ..] => {
            flate2::read::GzDecoder::new(payload).read_to_end(&mut out)?;
            Ok(("gzip", out))
        }
        [0x78, ..] => {
            flate2::read::ZlibDecoder::new(payload).read_to_end(&mut out)?;
            Ok(("zlib", out))
        }
        _ => Ok(("plain", payload.to_vec())),
    }
}

fn note_message(st: &State, encoding: &'static str, chunks: usize, payload: &[u8]) {
    {
        let mut r = st.received.lock().unwrap_or_else(|p| p.into_inner());
        *r.encodings.entry(encoding).or_default() += 1;
        if chunks > 1 {
            r.chunked += 1;
        }
        r.max_chunks = r.max_chunks.max(chunks);
    }
    record(st, vec![graylog::check(payload)]);
}

/// A Graylog-like GELF UDP receiver.
pub struct UdpReceiver {
    addr: SocketAddr,
    inbox: Inbox,
    thread: Option<thread::JoinHandle<()>>,
}

impl UdpReceiver {
    /// Starts on a free loopback port.
    pub fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        // Room for bursts: the test sends faster than a real network would.
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(8 << 20);
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("local addr");
        let inbox = Inbox::new();
        let st = Arc::clone(&inbox.0);
        let thread = thread::spawn(move || udp_loop(socket, st));
        Self {
            addr,
            inbox,
            thread: Some(thread),
        }
    }

    /// The `udp://127.0.0.1:PORT` endpoint string.
    pub fn endpoint(&self) -> String {
        format!("udp://{}", self.addr)
    }
}

struct Partial {
    count: usize,
    chunks: Vec<Option<Vec<u8>>>,
    got: usize,
    first: Instant,
}

fn udp_loop(socket: UdpSocket, st: Arc<State>) {
    let mut buf = vec![0u8; 65_536];
    let mut partial: HashMap<[u8; 8], Partial> = HashMap::new();
    while !st.stop.load(Ordering::SeqCst) {
        partial.retain(|_, p| {
            let keep = p.first.elapsed() < CHUNK_TIMEOUT;
            if !keep {
                protocol_error(
                    &st,
                    format!("chunked message incomplete: {}/{}", p.got, p.count),
                );
            }
            keep
        });
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        };
        let d = &buf[..n];
        if n >= 12 && d[0] == 0x1e && d[1] == 0x0f {
            let mut id = [0u8; 8];
            id.copy_from_slice(&d[2..10]);
            let (seq, count) = (d[10] as usize, d[11] as usize);
            if count == 0 || count > 128 || seq >= count {
                protocol_error(&st, format!("bad chunk {seq}/{count}"));
                continue;
            }
            let p = partial.entry(id).or_insert_with(|| Partial {
                count,
                chunks: vec![None; count],
                got: 0,
                first: Instant::now(),
            });
            if p.count != count {
                protocol_error(&st, "chunk count changed within a message".into());
                continue;
            }
            if p.chunks[seq].is_none() {
                p.chunks[seq] = Some(d[12..].to_vec());
                p.got += 1;
            }
            if p.got == p.count {
                if let Some(p) = partial.remove(&id) {
                    let whole: Vec<u8> = p.chunks.into_iter().flatten().flatten().collect();
                    deliver(&st, &whole, count);
                }
            }
        } else {
            deliver(&st, d, 1);
        }
    }
}

fn deliver(st: &State, payload: &[u8], chunks: usize) {
    match inflate(payload) {
        Ok((enc, plain)) => note_message(st, enc, chunks, &plain),
        Err(e) => protocol_error(st, format!("cannot decompress: {e}")),
    }
}

impl std::ops::Deref for UdpReceiver {
    type Target = Inbox;
    fn deref(&self) -> &Inbox {
        &self.inbox
    }
}

impl Drop for UdpReceiver {
    fn drop(&mut self) {
        self.inbox.0.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A certificate authority, a server certificate for `localhost` and a
/// client certificate, written as PEM files into a temporary directory.
pub struct TestPki {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca_file: PathBuf,
    /// The client certificate (PEM) and key (PEM), signed by the CA.
    pub client_cert: PathBuf,
    /// The client's private key.
    pub client_key: PathBuf,
    /// The server certificate (PEM, for `localhost` and `127.0.0.1`) and
    /// its key (PEM), for servers that read files (the node's `--tls-cert`).
    pub server_cert_file: PathBuf,
    pub server_key_file: PathBuf,
    ca_der: CertificateDer<'static>,
    ca_key: rcgen::KeyPair,
    ca: rcgen::Certificate,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

impl TestPki {
    /// Generates a fresh PKI under the system's temporary directory.
    pub fn generate(name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let dir = std::env::temp_dir().join(format!("gelf-pki-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("pki dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca = ca_params.self_signed(&ca_key).expect("CA cert");
        let srv_key = KeyPair::generate().expect("server key");
        let srv = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params")
            .signed_by(&srv_key, &ca, &ca_key)
            .expect("server cert");
        let cli_key = KeyPair::generate().expect("client key");
        let cli = CertificateParams::new(vec!["gelf-client".to_string()])
            .expect("client params")
            .signed_by(&cli_key, &ca, &ca_key)
            .expect("client cert");
        let write = |file: &str, pem: String| {
            let p = dir.join(file);
            std::fs::write(&p, pem).expect("write pem");
            p
        };
        Self {
            ca_file: write("ca.pem", ca.pem()),
            client_cert: write("client.pem", cli.pem()),
            client_key: write("client.key", cli_key.serialize_pem()),
            server_cert_file: write("server.pem", srv.pem()),
            server_key_file: write("server.key", srv_key.serialize_pem()),
            ca_der: ca.der().clone(),
            server_chain: vec![srv.der().clone()],
            server_key: srv_key.serialize_der(),
            ca_key,
            ca,
            dir,
        }
    }

    /// Writes a new server certificate and key (same names, same CA) over
    /// the files, and returns the certificate (DER): a server that reloads
    /// its files presents it from then on.
    pub fn renew_server_cert(&self) -> Vec<u8> {
        use rcgen::{CertificateParams, KeyPair};
        let key = KeyPair::generate().expect("server key");
        let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params")
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("server cert");
        // Key first, then the certificate: a reload between the two writes
        // fails (key and certificate do not match) and keeps the old pair.
        std::fs::write(&self.server_key_file, key.serialize_pem()).expect("write key");
        std::fs::write(&self.server_cert_file, cert.pem()).expect("write cert");
        cert.der().to_vec()
    }

    /// The first server certificate (DER).
    pub fn server_cert_der(&self) -> Vec<u8> {
        self.server_chain[0].to_vec()
    }

    /// The server's TLS configuration; with `require_client_cert`, clients
    /// must present a certificate signed by the CA.
    pub fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).expect("CA root");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        Arc::new(
            builder
                .with_single_cert(self.server_chain.clone(), key)
                .expect("server cert"),
        )
    }

    /// The directory, for cleaning up.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A GELF TCP receiver behind TLS.
pub struct TlsReceiver {
    addr: SocketAddr,
    inbox: Inbox,
    accept: Option<thread::JoinHandle<()>>,
}

impl TlsReceiver {
    /// Starts on a free loopback port with this server configuration.
    pub fn start(config: Arc<rustls::ServerConfig>) -> Self {
        let listener = bind_reusable(0).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let inbox = Inbox::new();
        let st = Arc::clone(&inbox.0);
        let accept = thread::spawn(move || {
            accept_with(listener, st, move |mut tcp, st| {
                let Ok(mut conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                    return;
                };
                let started = Instant::now();
                while conn.is_handshaking() {
                    match conn.complete_io(&mut tcp) {
                        Ok(_) => {}
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                                && started.elapsed() < Duration::from_secs(5) => {}
                        Err(e) => {
                            protocol_error(&st, format!("TLS handshake: {e}"));
                            return;
                        }
                    }
                }
                read_loop(rustls::StreamOwned::new(conn, tcp), st);
            })
        });
        Self {
            addr,
            inbox,
            accept: Some(accept),
        }
    }

    /// The `tls://localhost:PORT` endpoint string (the certificate's name).
    pub fn endpoint(&self) -> String {
        format!("tls://localhost:{}", self.addr.port())
    }
}

impl std::ops::Deref for TlsReceiver {
    type Target = Inbox;
    fn deref(&self) -> &Inbox {
        &self.inbox
    }
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        self.inbox.0.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A Graylog-like GELF HTTP input: `POST /gelf`, one message per request,
/// 202 Accepted, 413 over the body limit; optionally 503 for a while first.
pub struct HttpReceiver {
    addr: SocketAddr,
    inbox: Inbox,
    accept: Option<thread::JoinHandle<()>>,
    /// Answer 503 to every request until this instant.
    refuse_until: Arc<Mutex<Instant>>,
}

impl HttpReceiver {
    /// Starts on a free loopback port, answering 202 to every message.
    pub fn start() -> Self {
        Self::refusing_for(Duration::ZERO)
    }

    /// Starts, answering 503 Service Unavailable for `refuse` and 202 after.
    pub fn refusing_for(refuse: Duration) -> Self {
        let listener = bind_reusable(0).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let inbox = Inbox::new();
        let st = Arc::clone(&inbox.0);
        let refuse_until = Arc::new(Mutex::new(Instant::now() + refuse));
        let until = Arc::clone(&refuse_until);
        let accept = thread::spawn(move || {
            accept_with(listener, st, move |tcp, st| {
                http_connection(tcp, st, &until);
            })
        });
        Self {
            addr,
            inbox,
            accept: Some(accept),
            refuse_until,
        }
    }

    /// The `http://127.0.0.1:PORT/gelf` endpoint string.
    pub fn endpoint(&self) -> String {
        format!("http://{}/gelf", self.addr)
    }

    /// Answer 503 from now on for `d`.
    pub fn refuse_for(&self, d: Duration) {
        *self.refuse_until.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now() + d;
    }
}

/// Graylog's HTTP input default `max_chunk_size`.
const HTTP_MAX_BODY: usize = 65_536;

fn http_connection(tcp: TcpStream, st: Arc<State>, refuse_until: &Mutex<Instant>) {
    let Ok(mut out) = tcp.try_clone() else {
        return;
    };
    let mut r = BufReader::new(tcp);
    while !st.stop.load(Ordering::SeqCst) {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        if line.trim().is_empty() {
            continue;
        }
        let request = line.trim().to_owned();
        let (mut length, mut encoding) = (0usize, String::new());
        loop {
            let mut h = String::new();
            match r.read_line(&mut h) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => return,
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(usize::MAX);
                } else if k.eq_ignore_ascii_case("content-encoding") {
                    encoding = v.trim().to_ascii_lowercase();
                }
            }
        }
        if !request.starts_with("POST /gelf ") || length > HTTP_MAX_BODY {
            protocol_error(&st, format!("{request}: {length} bytes"));
            let _ = out.write_all(
                b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            );
            return;
        }
        let mut body = vec![0u8; length];
        let mut got = 0;
        while got < length {
            match r.read(&mut body[got..]) {
                Ok(0) => return,
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
        let refusing = Instant::now() < *refuse_until.lock().unwrap_or_else(|p| p.into_inner());
        if refusing {
            st.received
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .refused += 1;
            let _ = out.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\n\r\nunavailable",
            );
            continue;
        }
        let plain = match encoding.as_str() {
            "gzip" | "deflate" => inflate(&body).map(|(_, p)| p),
            _ => Ok(body),
        };
        match plain {
            Ok(p) => {
                let enc = match encoding.as_str() {
                    "gzip" => "gzip",
                    "deflate" => "zlib",
                    _ => "plain",
                };
                note_message(&st, enc, 1, &p);
                let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
            }
            Err(e) => {
                protocol_error(&st, format!("cannot decompress: {e}"));
                let _ = out.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            }
        }
    }
}

impl std::ops::Deref for HttpReceiver {
    type Target = Inbox;
    fn deref(&self) -> &Inbox {
        &self.inbox
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.inbox.0.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A GELF TCP endpoint that accepts connections and never reads: Graylog
/// applying backpressure (full journal, paused JVM) or a half-dead peer. Its
/// receive buffer is kept small so that it stalls after a few KiB.
/// [`drain`](Self::drain) reads at the end what the kernel accepted for it.
pub struct StalledReceiver {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<thread::JoinHandle<()>>,
}

impl StalledReceiver {
    /// Starts on a free loopback port.
    pub fn start() -> Self {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        // Inherited by accepted connections: the window stays small.
        sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        sock.bind(&addr.into()).expect("bind");
        sock.listen(16).expect("listen");
        let listener: std::net::TcpListener = sock.into();
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (stop2, acc2) = (Arc::clone(&stop), Arc::clone(&accepted));
        let accept = thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => acc2.lock().unwrap_or_else(|p| p.into_inner()).push(s),
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self {
            addr,
            stop,
            accepted,
            accept: Some(accept),
        }
    }

    /// The `tcp://127.0.0.1:PORT` endpoint string.
    pub fn endpoint(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Stops accepting, then reads everything the kernel holds for every
    /// connection and returns the whole frames it contains, checked with
    /// Graylog's rules (a frame cut by a reset connection is not counted).
    pub fn drain(mut self) -> Vec<graylog::Accepted> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let mut out = Vec::new();
        for mut s in self
            .accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut data = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            for frame in data.split_inclusive(|&b| b == 0) {
                if frame.last() == Some(&0) {
                    if let Ok(m) = graylog::check(&frame[..frame.len() - 1]) {
                        out.push(m);
                    }
                }
            }
        }
        out
    }
}
