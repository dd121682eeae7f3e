//! Test support shared by the end-to-end tests: a GELF TCP receiver on a real
//! loopback socket that behaves like Graylog's GELF TCP input.
//!
//! It splits frames on NUL, closes a connection on a frame of 2 MiB or more and
//! on a frame under 2 bytes (as Graylog does), applies Graylog's message rules
//! through [`gelf_tracing::graylog::check`], and records what Graylog would
//! keep, reject, or drop silently.

pub mod cluster;
pub mod mounts;
pub mod node;
pub mod receivers;

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gelf_tracing::graylog::{self, Accepted};

/// Graylog's TCP input closes the connection on a frame this long or longer.
pub const MAX_FRAME: usize = 2 * 1024 * 1024;

/// What the receiver has seen.
#[derive(Debug, Default)]
pub struct Received {
    /// Messages Graylog would store.
    pub accepted: Vec<Accepted>,
    /// Messages Graylog would reject, with the reason.
    pub rejected: Vec<String>,
    /// Fields Graylog would drop silently, over all accepted messages.
    pub dropped_fields: Vec<String>,
    /// Connections closed because of a protocol violation (frame too long or too short).
    pub protocol_errors: Vec<String>,
    /// Connections accepted.
    pub connections: usize,
    /// UDP and HTTP: messages that arrived in more than one chunk.
    pub chunked: usize,
    /// UDP: most chunks seen for one message.
    pub max_chunks: usize,
    /// UDP and HTTP: payloads seen per encoding (`gzip`, `zlib`, `plain`).
    pub encodings: std::collections::BTreeMap<&'static str, usize>,
    /// HTTP: requests answered with an error status on purpose.
    pub refused: usize,
}

pub(crate) struct State {
    received: Mutex<Received>,
    changed: Condvar,
    stop: AtomicBool,
    streams: Mutex<Vec<TcpStream>>,
}

/// What a receiver has seen, with ways to wait for it. Every receiver
/// dereferences to one.
pub struct Inbox(pub(crate) Arc<State>);

impl Inbox {
    pub(crate) fn new() -> Self {
        Self(Arc::new(State {
            received: Mutex::new(Received::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            streams: Mutex::new(Vec::new()),
        }))
    }

    /// Number of accepted messages so far.
    pub fn count(&self) -> usize {
        self.lock().accepted.len()
    }

    /// Waits until at least `n` messages were accepted or `timeout` passes;
    /// returns the count reached.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if g.accepted.len() >= n {
                return g.accepted.len();
            }
            let now = Instant::now();
            if now >= deadline {
                return g.accepted.len();
            }
            g = self
                .0
                .changed
                .wait_timeout(g, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Waits until no message arrived for `quiet`, at most `timeout` in all.
    pub fn wait_quiet(&self, quiet: Duration, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut last = self.count();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
            let n = self.count();
            if n != last {
                last = n;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
        }
        last
    }

    /// Everything seen so far.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.0.received.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes what was seen, leaving the receiver running and empty.
    pub fn take(&self) -> Received {
        std::mem::take(&mut *self.lock())
    }
}

/// A Graylog-like GELF TCP receiver. Stops (closing every connection) on drop.
pub struct GelfReceiver {
    addr: SocketAddr,
    state: Inbox,
    accept: Option<thread::JoinHandle<()>>,
}

impl GelfReceiver {
    /// Starts on a free loopback port.
    pub fn start() -> Self {
        Self::start_on(0).expect("bind a loopback port")
    }

    /// Starts on a given loopback port (0 picks one). Used to bring a receiver
    /// back on the port a killed one had.
    pub fn start_on(port: u16) -> std::io::Result<Self> {
        let listener = bind_reusable(port)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let state = Inbox::new();
        let st = Arc::clone(&state.0);
        let accept = thread::spawn(move || accept_loop(listener, st));
        Ok(Self {
            addr,
            state,
            accept: Some(accept),
        })
    }

    /// The `tcp://127.0.0.1:PORT` endpoint string.
    pub fn endpoint(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops listening and closes every connection at once, as a crash would.
    pub fn kill(mut self) -> Received {
        self.stop_now();
        self.take()
    }

    fn stop_now(&mut self) {
        self.state.0.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for s in self
            .state
            .0
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl std::ops::Deref for GelfReceiver {
    type Target = Inbox;
    fn deref(&self) -> &Inbox {
        &self.state
    }
}

impl Drop for GelfReceiver {
    fn drop(&mut self) {
        self.stop_now();
    }
}

pub(crate) fn bind_reusable(port: u16) -> std::io::Result<TcpListener> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    sock.bind(&addr.into())?;
    sock.listen(128)?;
    Ok(sock.into())
}

fn accept_loop(listener: TcpListener, st: Arc<State>) {
    accept_with(listener, st, read_loop);
}

/// Accepts connections until stopped, handing each to `handle` on its own
/// thread (sockets with a 20 ms read timeout, kept for `kill`).
pub(crate) fn accept_with<F>(listener: TcpListener, st: Arc<State>, handle: F)
where
    F: Fn(TcpStream, Arc<State>) + Send + Sync + Clone + 'static,
{
    while !st.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
                if let Ok(clone) = stream.try_clone() {
                    st.streams
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(clone);
                }
                st.received
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .connections += 1;
                let st2 = Arc::clone(&st);
                let h = handle.clone();
                thread::spawn(move || h(stream, st2));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(2)),
            Err(_) => thread::sleep(Duration::from_millis(2)),
        }
    }
}

pub(crate) fn read_loop(mut stream: impl Read, st: Arc<State>) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut frame: Vec<u8> = Vec::new();
    while !st.stop.load(Ordering::SeqCst) {
        let n = match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        };
        let mut batch = Vec::new();
        for chunk in buf[..n].split_inclusive(|&b| b == 0) {
            let complete = chunk.last() == Some(&0);
            let body = if complete {
                &chunk[..chunk.len() - 1]
            } else {
                chunk
            };
            frame.extend_from_slice(body);
            if frame.len() >= MAX_FRAME {
                protocol_error(&st, format!("frame over {MAX_FRAME} bytes"));
                return;
            }
            if complete {
                if frame.len() < 2 {
                    protocol_error(&st, format!("frame of {} bytes", frame.len()));
                    return;
                }
                batch.push(graylog::check(&frame));
                frame.clear();
            }
        }
        record(&st, batch);
    }
}

/// Records checked messages and wakes the waiters.
pub(crate) fn record(st: &State, batch: Vec<Result<Accepted, graylog::Rejected>>) {
    if batch.is_empty() {
        return;
    }
    let mut r = st.received.lock().unwrap_or_else(|p| p.into_inner());
    for result in batch {
        match result {
            Ok(a) => {
                r.dropped_fields.extend(a.dropped.iter().cloned());
                r.accepted.push(a);
            }
            Err(e) => r.rejected.push(e.reason),
        }
    }
    drop(r);
    st.changed.notify_all();
}

pub(crate) fn protocol_error(st: &State, what: String) {
    st.received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .protocol_errors
        .push(what);
    st.changed.notify_all();
}

/// A string field of an accepted message.
pub fn field_str<'a>(m: &'a Accepted, name: &str) -> Option<&'a str> {
    m.fields.get(name).and_then(|v| v.as_str())
}

/// The `short_message` of an accepted message.
pub fn short_message(m: &Accepted) -> &str {
    m.standard
        .get("short_message")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}
