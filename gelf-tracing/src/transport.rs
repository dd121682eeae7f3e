//! The transports: NUL-delimited frames over TCP or TLS, chunked datagrams
//! over UDP, one POST per message over HTTP(S). The worker sees one
//! [`Connection`] and asks it to send a batch; the connection says how many
//! messages are done with (delivered or refused for good) before any error.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

use crate::{Endpoint, Scheme, TransportError};

/// Compression of UDP datagrams and HTTP bodies.
///
/// ```
/// use gelf_tracing::{Compression, GelfLayer};
/// let b = GelfLayer::builder().udp_compression(Compression::Zlib);
/// # drop(b);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// gzip (RFC 1952); Graylog detects it by its magic bytes.
    #[default]
    Gzip,
    /// zlib (RFC 1950).
    Zlib,
    /// Plain JSON.
    None,
}

/// The GELF chunk header: magic (2), message id (8), sequence (1), count (1).
pub const UDP_CHUNK_HEADER: usize = 12;
/// Graylog discards messages of more than 128 chunks.
pub const UDP_MAX_CHUNKS: usize = 128;
/// How long a TLS 1.3 client waits after its handshake for the server's
/// verdict on its certificate.
const TLS13_VERDICT_WAIT: Duration = Duration::from_millis(200);
/// Largest HTTP response head the client reads.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Largest HTTP response body the client reads and discards on a kept-alive connection.
const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// A TCP/TLS write blocks at most this long before the writer looks at the
/// clock (stall) and at the shutdown flag.
const WRITE_SLICE: Duration = Duration::from_millis(50);

/// Settings shared by every endpoint's connections.
#[derive(Clone)]
pub(crate) struct TransportConfig {
    pub(crate) connect_timeout: Duration,
    /// Longest time without progress (bytes taken by the socket, or
    /// acknowledged by the peer) before an endpoint counts as stalled; also
    /// the read timeout for TLS handshakes and HTTP answers.
    pub(crate) stall_timeout: Duration,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) udp_chunk_size: usize,
    pub(crate) udp_compression: Compression,
    pub(crate) http_compression: Compression,
}

/// What a batch send achieved: the first `done` frames are finished with
/// (`rejected` of them refused for good by an HTTP server); when `error` is
/// set, the connection is unusable and the frames from `done` on are still
/// to be sent.
///
/// Over TCP and TLS "done" means handed to the kernel whole, not delivered:
/// `wire_ends[i]` is where frame `i` ends in the bytes written to the socket
/// (for TLS, where its batch ends), to be matched against
/// [`Connection::acked`].
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) done: usize,
    pub(crate) wire_ends: Vec<u64>,
    /// The connection made no progress for the stall timeout.
    pub(crate) stalled: bool,
    pub(crate) rejected: usize,
    /// The last refusing HTTP status when `rejected > 0`.
    pub(crate) reject_status: u16,
    pub(crate) bytes: u64,
    pub(crate) error: Option<TransportError>,
}

/// A TCP socket that counts the bytes handed to the kernel (TLS records
/// included), to match them against what the kernel says is unacknowledged.
pub(crate) struct Sock {
    tcp: TcpStream,
    written: u64,
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tcp.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// A byte stream, plain or TLS.
pub(crate) enum Stream {
    Plain(Sock),
    Tls(Box<StreamOwned<ClientConnection, Sock>>),
}

impl Stream {
    fn sock(&self) -> &Sock {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Bytes the peer has acknowledged, in the count of bytes written to the
    /// socket; `None` where the kernel cannot tell.
    fn acked(&self) -> Option<u64> {
        let sock = self.sock();
        unacked_bytes(&sock.tcp).map(|q| sock.written.saturating_sub(q))
    }

    /// True when the peer has closed the connection. A GELF server sends
    /// nothing but TLS records (session tickets) and HTTP responses we have
    /// read already, so end of stream, an error or a TLS close alert all mean
    /// the connection is gone. Checked before every batch: frames written
    /// into a connection the server already dropped would be lost unnoticed.
    fn peer_closed(&mut self) -> bool {
        match self {
            Stream::Plain(s) => peek_closed(&s.tcp),
            Stream::Tls(s) => {
                if s.sock.tcp.set_nonblocking(true).is_err() {
                    return true;
                }
                let mut closed = false;
                loop {
                    match s.conn.read_tls(&mut s.sock) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(_) => {
                            if s.conn.process_new_packets().is_err() {
                                closed = true;
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if !closed {
                    let mut probe = [0u8; 1];
                    // Ok(0): the server sent close_notify.
                    closed = matches!(s.conn.reader().read(&mut probe), Ok(0));
                }
                s.sock.tcp.set_nonblocking(false).is_err() || closed
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

#[cfg(unix)]
fn peek_closed(s: &TcpStream) -> bool {
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match socket2::SockRef::from(s).recv_with_flags(&mut probe, libc::MSG_PEEK | libc::MSG_DONTWAIT)
    {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    }
}

/// Without a non-blocking peek, rely on the write error instead.
#[cfg(not(unix))]
fn peek_closed(_: &TcpStream) -> bool {
    false
}

/// Bytes written to the socket that the peer has not acknowledged yet (sent
/// or not), from the kernel.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn unacked_bytes(s: &TcpStream) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) on a TCP socket stores one c_int, the
    // bytes not yet acknowledged by the peer, through the pointer, which
    // points at `n` for the whole call; the descriptor belongs to `s`, which
    // is borrowed (so open) for the call. No other memory is touched. The
    // standard library and socket2 offer no safe way to ask this.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    (r == 0 && n >= 0).then_some(n as u64)
}

/// Elsewhere the kernel is not asked: a frame counts as delivered once
/// written whole.
#[cfg(not(target_os = "linux"))]
fn unacked_bytes(_: &TcpStream) -> Option<u64> {
    None
}

/// An open connection to one endpoint.
pub(crate) enum Connection {
    /// TCP or TLS: NUL-delimited frames.
    Frames { stream: Stream, buf: Vec<u8> },
    /// UDP: a connected datagram socket.
    Udp { socket: UdpSocket, buf: Vec<u8> },
    /// HTTP(S): keep-alive connection, one POST per message.
    Http {
        stream: Stream,
        head: Vec<u8>,
        body: Vec<u8>,
    },
}

/// Resolves (every time: DNS may have moved) and connects over TCP to the
/// first address that accepts.
fn connect_tcp(ep: &Endpoint, cfg: &TransportConfig) -> Result<TcpStream, TransportError> {
    let addrs = resolve(ep)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, cfg.connect_timeout) {
            Ok(stream) => {
                // Small events should leave at once; batching is done by the worker.
                let _ = stream.set_nodelay(true);
                let setup = stream
                    .set_write_timeout(Some(cfg.stall_timeout))
                    .and_then(|()| stream.set_read_timeout(Some(cfg.stall_timeout)));
                if let Err(source) = setup {
                    return Err(TransportError::Connect {
                        endpoint: ep.to_string(),
                        source,
                    });
                }
                let _ = socket2::SockRef::from(&stream).set_keepalive(true);
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(TransportError::Connect {
        endpoint: ep.to_string(),
        source: last,
    })
}

fn resolve(ep: &Endpoint) -> Result<Vec<SocketAddr>, TransportError> {
    Ok((ep.host(), ep.port())
        .to_socket_addrs()
        .map_err(|source| TransportError::Resolve {
            endpoint: ep.to_string(),
            source,
        })?
        .collect())
}

/// Wraps a TCP connection in TLS and completes the handshake, so certificate
/// problems surface here, named, rather than at the first write.
fn start_tls(
    ep: &Endpoint,
    cfg: &TransportConfig,
    tcp: TcpStream,
) -> Result<Stream, TransportError> {
    let mut sock = Sock { tcp, written: 0 };
    let tls_err = |source: io::Error| TransportError::Tls {
        endpoint: ep.to_string(),
        source,
    };
    let config = cfg
        .tls
        .clone()
        .ok_or_else(|| tls_err(io::Error::other("no TLS configuration was built")))?;
    let name = ServerName::try_from(ep.host().to_owned())
        .map_err(|e| tls_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let mut conn = ClientConnection::new(config, name).map_err(|e| tls_err(io::Error::other(e)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(tls_err)?;
    }
    if conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
        await_server_verdict(&mut conn, &mut sock, cfg).map_err(tls_err)?;
    }
    Ok(Stream::Tls(Box::new(StreamOwned::new(conn, sock))))
}

/// In TLS 1.3 the client finishes its handshake before the server has
/// checked the client's certificate: a refusal arrives as an alert after,
/// and frames written meanwhile would be lost. Waits briefly for the
/// server's first records (session tickets, or that alert).
fn await_server_verdict(
    conn: &mut ClientConnection,
    sock: &mut Sock,
    cfg: &TransportConfig,
) -> io::Result<()> {
    sock.tcp.set_read_timeout(Some(TLS13_VERDICT_WAIT))?;
    let result = loop {
        match conn.read_tls(sock) {
            Ok(0) => {
                break Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the server closed the connection after the handshake",
                ))
            }
            Ok(_) => match conn.process_new_packets() {
                Ok(_) => break Ok(()),
                Err(e) => break Err(io::Error::other(e)),
            },
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    sock.tcp.set_read_timeout(Some(cfg.stall_timeout))?;
    result
}

impl Connection {
    /// Opens a connection to `ep`.
    pub(crate) fn open(ep: &Endpoint, cfg: &TransportConfig) -> Result<Self, TransportError> {
        match ep.scheme() {
            Scheme::Tcp | Scheme::Http => {
                let stream = Stream::Plain(Sock {
                    tcp: connect_tcp(ep, cfg)?,
                    written: 0,
                });
                Ok(Self::wrap(ep, stream))
            }
            Scheme::Tls | Scheme::Https => {
                let stream = start_tls(ep, cfg, connect_tcp(ep, cfg)?)?;
                Ok(Self::wrap(ep, stream))
            }
            Scheme::Udp => {
                let addr =
                    resolve(ep)?
                        .into_iter()
                        .next()
                        .ok_or_else(|| TransportError::Resolve {
                            endpoint: ep.to_string(),
                            source: io::Error::new(
                                io::ErrorKind::NotFound,
                                "the name resolved to no address",
                            ),
                        })?;
                let local: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                let connect_err = |source| TransportError::Connect {
                    endpoint: ep.to_string(),
                    source,
                };
                let socket = UdpSocket::bind(local).map_err(connect_err)?;
                socket.connect(addr).map_err(connect_err)?;
                socket
                    .set_write_timeout(Some(cfg.stall_timeout))
                    .map_err(connect_err)?;
                Ok(Self::Udp {
                    socket,
                    buf: Vec::new(),
                })
            }
        }
    }

    fn wrap(ep: &Endpoint, stream: Stream) -> Self {
        if ep.scheme().is_http() {
            Self::Http {
                stream,
                head: Vec::with_capacity(1024),
                body: Vec::new(),
            }
        } else {
            // Frame writes wake up often to watch for a stall and for shutdown.
            let _ = stream.sock().tcp.set_write_timeout(Some(WRITE_SLICE));
            Self::Frames {
                stream,
                buf: Vec::new(),
            }
        }
    }

    /// Bytes acknowledged by the peer, comparable with
    /// [`Outcome::wire_ends`]; `None` when this connection does not track
    /// acknowledgements (UDP, HTTP, or a system where the kernel cannot tell):
    /// then a frame is done once written.
    pub(crate) fn acked(&self) -> Option<u64> {
        match self {
            Self::Frames { stream, .. } => stream.acked(),
            _ => None,
        }
    }

    /// Whether frames written here wait for the peer's acknowledgement.
    pub(crate) fn tracks_acks(&self) -> bool {
        self.acked().is_some()
    }

    /// Closes the connection discarding whatever the kernel still holds
    /// unsent (a reset), so that a peer that stalled never gets frames that
    /// are sent again elsewhere.
    pub(crate) fn abort(self) {
        match &self {
            Self::Frames { stream, .. } | Self::Http { stream, .. } => {
                let _ = socket2::SockRef::from(&stream.sock().tcp).set_linger(Some(Duration::ZERO));
            }
            Self::Udp { .. } => {}
        }
    }

    /// True when a stream's peer has gone (never for UDP).
    pub(crate) fn peer_closed(&mut self) -> bool {
        match self {
            Self::Frames { stream, .. } | Self::Http { stream, .. } => stream.peer_closed(),
            Self::Udp { .. } => false,
        }
    }

    /// Sends `frames` in order. A TCP/TLS write gives up when `abort` is set
    /// (shutdown) or when it makes no progress for the stall timeout.
    pub(crate) fn send<'a, I>(
        &mut self,
        ep: &Endpoint,
        cfg: &TransportConfig,
        frames: I,
        abort: &AtomicBool,
    ) -> Outcome
    where
        I: ExactSizeIterator<Item = &'a [u8]>,
    {
        match self {
            Self::Frames { stream, buf } => {
                send_frames(ep, stream, buf, frames, cfg.stall_timeout, abort)
            }
            Self::Udp { socket, buf } => send_udp(ep, cfg, socket, buf, frames),
            Self::Http { stream, head, body } => send_http(ep, cfg, stream, head, body, frames),
        }
    }
}

/// TCP/TLS: one write of all frames, each followed by a NUL. On failure the
/// frames written whole count as done; the rest are re-sent whole on the next
/// connection (the receiver discards the cut frame with the old connection).
fn send_frames<'a>(
    ep: &Endpoint,
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    frames: impl Iterator<Item = &'a [u8]>,
    stall: Duration,
    abort: &AtomicBool,
) -> Outcome {
    buf.clear();
    let mut ends = Vec::new();
    for f in frames {
        buf.extend_from_slice(f);
        buf.push(0);
        ends.push(buf.len());
    }
    let start = stream.sock().written;
    let (mut written, mut fail) = write_watched(stream, buf, stall, abort);
    if fail.is_none() {
        if let Err(f) = flush_watched(stream, stall, abort) {
            // TLS keeps records it could not write; count none of the tail.
            written = written.saturating_sub(1);
            fail = Some(f);
        }
    }
    let done = ends.iter().take_while(|&&e| e <= written).count();
    let bytes = if done == 0 { 0 } else { ends[done - 1] as u64 };
    let wire_ends = match stream {
        Stream::Plain(_) => ends[..done].iter().map(|&e| start + e as u64).collect(),
        // TLS records do not map byte for byte: a frame is acknowledged with
        // its whole batch, and after a failure not at all (it is re-sent).
        Stream::Tls(s) => {
            let end = if fail.is_none() {
                s.sock.written
            } else {
                u64::MAX
            };
            vec![end; done]
        }
    };
    let endpoint = ep.to_string();
    Outcome {
        done,
        wire_ends,
        stalled: matches!(fail, Some(WriteFail::Stalled)),
        rejected: 0,
        reject_status: 0,
        bytes,
        error: fail.map(|f| match f {
            WriteFail::Stalled => TransportError::Stalled {
                endpoint,
                after: stall,
            },
            WriteFail::Aborted => TransportError::Write {
                endpoint,
                source: io::Error::new(
                    io::ErrorKind::Interrupted,
                    "shutting down: the flush deadline passed",
                ),
            },
            WriteFail::Io(source) => TransportError::Write { endpoint, source },
        }),
    }
}

/// Why a watched write gave up.
enum WriteFail {
    Io(io::Error),
    /// No byte reached the socket for the stall time.
    Stalled,
    /// The layer is shutting down.
    Aborted,
}

/// What a socket write timing out looks like.
fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Tells whether a write that could not go on should keep waiting.
struct Watch<'a> {
    wire: u64,
    progress: Instant,
    stall: Duration,
    abort: &'a AtomicBool,
}

impl<'a> Watch<'a> {
    fn new(stream: &Stream, stall: Duration, abort: &'a AtomicBool) -> Self {
        Self {
            wire: stream.sock().written,
            progress: Instant::now(),
            stall,
            abort,
        }
    }

    fn progressed(&mut self) {
        self.progress = Instant::now();
    }

    /// After a write timed out: `Some` when it is time to give up.
    fn give_up(&mut self, stream: &Stream) -> Option<WriteFail> {
        let now = stream.sock().written;
        if now != self.wire {
            self.wire = now;
            self.progress = Instant::now();
        }
        if self.abort.load(Relaxed) {
            Some(WriteFail::Aborted)
        } else if self.progress.elapsed() >= self.stall {
            Some(WriteFail::Stalled)
        } else {
            None
        }
    }
}

/// Writes all of `data`, in slices of at most [`WRITE_SLICE`]; fails when no
/// byte reaches the socket for `stall` or when `abort` is set. Returns how
/// many bytes of `data` were taken.
fn write_watched(
    stream: &mut Stream,
    data: &[u8],
    stall: Duration,
    abort: &AtomicBool,
) -> (usize, Option<WriteFail>) {
    let mut taken = 0;
    let mut watch = Watch::new(stream, stall, abort);
    while taken < data.len() {
        match stream.write(&data[taken..]) {
            Ok(0) => {
                let e = io::Error::from(io::ErrorKind::WriteZero);
                return (taken, Some(WriteFail::Io(e)));
            }
            Ok(n) => {
                taken += n;
                watch.progressed();
            }
            Err(e) if would_block(&e) => {
                if let Some(f) = watch.give_up(stream) {
                    return (taken, Some(f));
                }
            }
            Err(e) => return (taken, Some(WriteFail::Io(e))),
        }
    }
    (taken, None)
}

/// Flushes (TLS: writes out the buffered records), watched like a write.
fn flush_watched(
    stream: &mut Stream,
    stall: Duration,
    abort: &AtomicBool,
) -> Result<(), WriteFail> {
    let mut watch = Watch::new(stream, stall, abort);
    loop {
        match stream.flush() {
            Ok(()) => return Ok(()),
            Err(e) if would_block(&e) => {
                if let Some(f) = watch.give_up(stream) {
                    return Err(f);
                }
            }
            Err(e) => return Err(WriteFail::Io(e)),
        }
    }
}

/// Compresses `input` into `out` (cleared first).
pub(crate) fn compress(c: Compression, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let level = flate2::Compression::fast();
    // Writing into a Vec cannot fail.
    let _ = match c {
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(std::mem::take(out), level);
            e.write_all(input)
                .and_then(|()| e.finish())
                .map(|v| *out = v)
        }
        Compression::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(std::mem::take(out), level);
            e.write_all(input)
                .and_then(|()| e.finish())
                .map(|v| *out = v)
        }
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
    };
}

/// The largest uncompressed message that always fits in 128 chunks: deflate
/// can grow incompressible input by a few bytes per 16 KiB block plus its
/// header, which the margin covers.
pub(crate) fn udp_max_message(chunk_size: usize) -> usize {
    let room = UDP_MAX_CHUNKS * (chunk_size - UDP_CHUNK_HEADER);
    room - room / 1024 - 64
}

/// UDP: each message compressed, then sent as one datagram or as GELF chunks.
fn send_udp<'a>(
    ep: &Endpoint,
    cfg: &TransportConfig,
    socket: &UdpSocket,
    buf: &mut Vec<u8>,
    frames: impl Iterator<Item = &'a [u8]>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut datagram = Vec::with_capacity(cfg.udp_chunk_size);
    for f in frames {
        compress(cfg.udp_compression, f, buf);
        let result = if buf.len() <= cfg.udp_chunk_size {
            socket.send(buf).map(|_| buf.len())
        } else {
            let room = cfg.udp_chunk_size - UDP_CHUNK_HEADER;
            let count = buf.len().div_ceil(room);
            if count > UDP_MAX_CHUNKS {
                // Cannot happen: messages are capped to fit (udp_max_message).
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("message needs {count} chunks, more than Graylog's {UDP_MAX_CHUNKS}"),
                ))
            } else {
                let id = fastrand::u64(..).to_be_bytes();
                let mut sent = 0;
                let mut r = Ok(0);
                for (seq, chunk) in buf.chunks(room).enumerate() {
                    datagram.clear();
                    datagram.extend_from_slice(&[0x1e, 0x0f]);
                    datagram.extend_from_slice(&id);
                    datagram.push(seq as u8);
                    datagram.push(count as u8);
                    datagram.extend_from_slice(chunk);
                    match socket.send(&datagram) {
                        Ok(n) => sent += n,
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    }
                }
                r.map(|_| sent)
            }
        };
        match result {
            Ok(n) => {
                out.done += 1;
                out.bytes += n as u64;
            }
            Err(source) => {
                out.error = Some(TransportError::Write {
                    endpoint: ep.to_string(),
                    source,
                });
                break;
            }
        }
    }
    out
}

/// HTTP(S): one POST per message on a kept-alive connection. A message is
/// done when the server answered: 2xx delivered, other 4xx (except 408 and
/// 429) refused for good; 5xx, 408 and 429 leave it to be retried after a
/// backoff.
fn send_http<'a>(
    ep: &Endpoint,
    cfg: &TransportConfig,
    stream: &mut Stream,
    head: &mut Vec<u8>,
    body: &mut Vec<u8>,
    frames: impl Iterator<Item = &'a [u8]>,
) -> Outcome {
    let mut out = Outcome::default();
    for f in frames {
        let (payload, encoding) = match cfg.http_compression {
            Compression::None => (f, None),
            c => {
                compress(c, f, body);
                let name = if c == Compression::Gzip {
                    "gzip"
                } else {
                    "deflate"
                };
                (&body[..], Some(name))
            }
        };
        head.clear();
        let host = if ep.host().contains(':') {
            format!("[{}]", ep.host())
        } else {
            ep.host().to_owned()
        };
        let _ = write!(
            head,
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            ep.path(),
            host,
            ep.port(),
            payload.len()
        );
        if let Some(enc) = encoding {
            let _ = write!(head, "Content-Encoding: {enc}\r\n");
        }
        head.extend_from_slice(b"Connection: keep-alive\r\n\r\n");
        let sent = stream
            .write_all(head)
            .and_then(|()| stream.write_all(payload))
            .and_then(|()| stream.flush());
        if let Err(source) = sent {
            out.error = Some(TransportError::Write {
                endpoint: ep.to_string(),
                source,
            });
            break;
        }
        let response = match read_response(stream) {
            Ok(r) => r,
            Err(source) => {
                out.error = Some(TransportError::Write {
                    endpoint: ep.to_string(),
                    source,
                });
                break;
            }
        };
        let status = response.status;
        if (200..300).contains(&status) {
            out.done += 1;
            out.bytes += (head.len() + payload.len()) as u64;
        } else if (400..500).contains(&status) && status != 408 && status != 429 {
            out.done += 1;
            out.rejected += 1;
            out.reject_status = status;
        } else {
            out.error = Some(TransportError::HttpStatus {
                endpoint: ep.to_string(),
                status,
            });
            break;
        }
        if response.close {
            // Done with this connection; the next batch opens another.
            if out.error.is_none() {
                out.error = Some(TransportError::Write {
                    endpoint: ep.to_string(),
                    source: io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the server closed the keep-alive connection",
                    ),
                });
            }
            break;
        }
    }
    out
}

struct Response {
    status: u16,
    /// The connection cannot be reused.
    close: bool,
}

/// Reads a response head and discards its body (bounded sizes).
fn read_response(stream: &mut Stream) -> io::Result<Response> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let mut buf = Vec::with_capacity(512);
    let mut byte = [0u8; 512];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(bad("HTTP response head too large"));
        }
        let n = stream.read(&mut byte)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before answering",
            ));
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("HTTP head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not an HTTP/1.x response"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("HTTP status line without a status"))?;
    let mut close = version == "HTTP/1.0";
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| bad("bad Content-Length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            close = v.contains("close") || (close && !v.contains("keep-alive"));
        }
    }
    let already = buf.len() - head_end;
    if chunked {
        // Not worth parsing for a body we discard: read what came and give
        // the connection up.
        close = true;
    } else if let Some(len) = length {
        if len > MAX_RESPONSE_BODY {
            close = true;
        } else {
            let mut left = len.saturating_sub(already);
            while left > 0 {
                let n = stream.read(&mut byte[..left.min(512)])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection in the response body",
                    ));
                }
                left -= n;
            }
        }
    } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
        // Body until end of stream.
        close = true;
    }
    Ok(Response { status, close })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    fn cfg() -> TransportConfig {
        TransportConfig {
            connect_timeout: Duration::from_secs(2),
            stall_timeout: Duration::from_secs(2),
            tls: None,
            udp_chunk_size: 1420,
            udp_compression: Compression::Gzip,
            http_compression: Compression::None,
        }
    }

    #[test]
    fn udp_cap_fits_128_chunks_even_for_incompressible_data() {
        for chunk in [512, 1420, 8192] {
            let max = udp_max_message(chunk);
            let noise: Vec<u8> = (0..max).map(|_| fastrand::u8(..)).collect();
            let mut out = Vec::new();
            for c in [Compression::Gzip, Compression::Zlib, Compression::None] {
                compress(c, &noise, &mut out);
                let chunks = out.len().div_ceil(chunk - UDP_CHUNK_HEADER);
                assert!(chunks <= UDP_MAX_CHUNKS, "{chunk} {c:?}: {chunks} chunks");
            }
        }
    }

    #[test]
    fn http_statuses_decide_done_rejected_and_retry() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            for status in ["202 Accepted", "400 Bad Request", "503 Service Unavailable"] {
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    if let Some(v) = line.strip_prefix("Content-Length: ") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                write!(w, "HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok").unwrap();
            }
        });
        let ep: Endpoint = format!("http://127.0.0.1:{port}/gelf").parse().unwrap();
        let mut c = Connection::open(&ep, &cfg()).unwrap();
        let frames: [&[u8]; 4] = [b"{\"a\":1}", b"{\"b\":2}", b"{\"c\":3}", b"{\"d\":4}"];
        let o = c.send(&ep, &cfg(), frames.iter().copied(), &AtomicBool::new(false));
        assert_eq!((o.done, o.rejected), (2, 1));
        let e = o.error.expect("503 is an error to retry");
        assert!(e.to_string().contains("503"), "{e}");
        server.join().unwrap();
    }
}
