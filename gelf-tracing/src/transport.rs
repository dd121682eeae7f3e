//! The TCP transport: NUL-delimited GELF frames over a plain TCP connection,
//! as Graylog's GELF TCP input and Logstash's `gelf` input expect.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::{Endpoint, TransportError};

/// Connection settings for the TCP transport.
#[derive(Debug, Clone)]
pub(crate) struct TcpTransport {
    pub(crate) endpoint: Endpoint,
    pub(crate) connect_timeout: Duration,
    pub(crate) write_timeout: Duration,
}

/// An open connection.
pub(crate) struct TcpConnection {
    stream: TcpStream,
}

/// A batch write that failed after `written` bytes reached the socket.
pub(crate) struct PartialWrite {
    pub(crate) written: usize,
    pub(crate) error: io::Error,
}

impl TcpTransport {
    /// Resolves the endpoint (every time: DNS may have moved) and connects to
    /// the first address that accepts.
    pub(crate) fn connect(&self) -> Result<TcpConnection, TransportError> {
        let ep = &self.endpoint;
        let addrs: Vec<SocketAddr> = (ep.host(), ep.port())
            .to_socket_addrs()
            .map_err(|source| TransportError::Resolve {
                endpoint: ep.to_string(),
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => {
                    // Small events should leave at once; batching is done by the worker.
                    let _ = stream.set_nodelay(true);
                    stream
                        .set_write_timeout(Some(self.write_timeout))
                        .map_err(|source| TransportError::Connect {
                            endpoint: ep.to_string(),
                            source,
                        })?;
                    let _ = socket2::SockRef::from(&stream).set_keepalive(true);
                    return Ok(TcpConnection { stream });
                }
                Err(e) => last = e,
            }
        }
        Err(TransportError::Connect {
            endpoint: ep.to_string(),
            source: last,
        })
    }
}

impl TcpConnection {
    /// Writes a batch of NUL-terminated frames. On failure reports how many
    /// bytes reached the socket, so the caller can tell whole frames sent from
    /// the rest.
    pub(crate) fn write_batch(&mut self, buf: &[u8]) -> Result<(), PartialWrite> {
        let mut written = 0;
        while written < buf.len() {
            match self.stream.write(&buf[written..]) {
                Ok(0) => {
                    return Err(PartialWrite {
                        written,
                        error: io::ErrorKind::WriteZero.into(),
                    })
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(PartialWrite { written, error }),
            }
        }
        Ok(())
    }

    /// True when the peer has closed the connection. A GELF server never sends
    /// anything, so a readable socket means end of stream or an error. Checked
    /// before every batch, so events are not written into a connection the
    /// server already dropped (they would be lost unnoticed).
    #[cfg(unix)]
    pub(crate) fn peer_closed(&self) -> bool {
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(&self.stream)
            .recv_with_flags(&mut probe, libc::MSG_PEEK | libc::MSG_DONTWAIT)
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
    pub(crate) fn peer_closed(&self) -> bool {
        false
    }
}
