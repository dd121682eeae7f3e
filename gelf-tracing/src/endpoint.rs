//! Endpoint strings: `tcp://`, `tls://`, `udp://`, `http://…/gelf`,
//! `https://…/gelf`, and comma-separated lists of them for failover.

use std::fmt;

use crate::BuildError;

/// The transport an [`Endpoint`] uses.
///
/// ```
/// use gelf_tracing::{Endpoint, Scheme};
/// let e: Endpoint = "udp://graylog:12201".parse()?;
/// assert_eq!(e.scheme(), Scheme::Udp);
/// # Ok::<(), gelf_tracing::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// NUL-delimited frames over TCP (Graylog's GELF TCP input).
    Tcp,
    /// NUL-delimited frames over TLS (a GELF TCP input with TLS enabled).
    Tls,
    /// Chunked, optionally compressed datagrams (Graylog's GELF UDP input).
    Udp,
    /// One POST per message (Graylog's GELF HTTP input).
    Http,
    /// One POST per message over TLS.
    Https,
}

impl Scheme {
    /// The scheme as written in an endpoint string.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Tls => "tls",
            Scheme::Udp => "udp",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// Whether the connection is encrypted with TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Tls | Scheme::Https)
    }

    /// Whether messages are POSTed over HTTP.
    pub fn is_http(self) -> bool {
        matches!(self, Scheme::Http | Scheme::Https)
    }
}

/// Where GELF messages go, parsed from a string such as `tcp://graylog:12201`,
/// `tls://graylog:12201`, `udp://graylog:12201` or `https://graylog/gelf`.
///
/// Host names are resolved by the background worker at every connection, so a
/// Graylog behind DNS that moves is followed. IPv6 literals go in brackets.
/// HTTP endpoints default to port 80/443 and path `/gelf`.
///
/// ```
/// use gelf_tracing::{Endpoint, Scheme};
/// let e: Endpoint = "tcp://graylog.internal:12201".parse()?;
/// assert_eq!(e.host(), "graylog.internal");
/// assert_eq!(e.port(), 12201);
/// let v6: Endpoint = "tcp://[::1]:12201".parse()?;
/// assert_eq!(v6.host(), "::1");
/// let h: Endpoint = "https://logs.example.com/gelf".parse()?;
/// assert_eq!((h.scheme(), h.port(), h.path()), (Scheme::Https, 443, "/gelf"));
/// assert!("ftp://x:1".parse::<Endpoint>().is_err());
/// # Ok::<(), gelf_tracing::BuildError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    scheme: Scheme,
    host: String,
    port: u16,
    path: String,
}

impl Endpoint {
    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host name or IP address (without IPv6 brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request path for HTTP endpoints (`/gelf` unless given); empty otherwise.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Parses a comma-separated list: the first is preferred, the others are
    /// tried in order when it is down.
    ///
    /// ```
    /// let list = gelf_tracing::Endpoint::parse_list("tcp://a:12201, tcp://b:12201")?;
    /// assert_eq!(list.len(), 2);
    /// assert!(gelf_tracing::Endpoint::parse_list("tcp://a:1,,tcp://b:2").is_err());
    /// # Ok::<(), gelf_tracing::BuildError>(())
    /// ```
    pub fn parse_list(input: &str) -> Result<Vec<Endpoint>, BuildError> {
        let mut out = Vec::new();
        for part in input.split(',') {
            if part.trim().is_empty() {
                return Err(BuildError::Endpoint {
                    input: input.to_owned(),
                    reason: "empty entry in the endpoint list".into(),
                });
            }
            let e: Endpoint = part.parse()?;
            if out.contains(&e) {
                return Err(BuildError::Endpoint {
                    input: input.to_owned(),
                    reason: format!("{e} is listed twice"),
                });
            }
            out.push(e);
        }
        Ok(out)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.as_str();
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = BuildError;

    fn from_str(input: &str) -> Result<Self, BuildError> {
        let err = |reason: &str| BuildError::Endpoint {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let s = input.trim();
        if s.contains(',') {
            return Err(err(
                "one endpoint expected here; use Endpoint::parse_list for a failover list",
            ));
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| err("expected scheme://host:port, e.g. tcp://graylog:12201"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Scheme::Tcp,
            "tls" => Scheme::Tls,
            "udp" => Scheme::Udp,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                return Err(err(&format!(
                    "unsupported scheme {other:?}: use tcp, tls, udp, http or https"
                )))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let path = if scheme.is_http() {
            let p = if path.is_empty() || path == "/" {
                "/gelf"
            } else {
                path
            };
            if !p.bytes().all(|b| b.is_ascii_graphic()) || p.contains(['?', '#']) {
                return Err(err(
                    "the HTTP path must be plain printable ASCII without query or fragment",
                ));
            }
            p.to_owned()
        } else {
            if !path.trim_end_matches('/').is_empty() {
                return Err(err(&format!(
                    "a {} endpoint takes no path",
                    scheme.as_str()
                )));
            }
            String::new()
        };
        let default_port = match scheme {
            Scheme::Http => Some(80),
            Scheme::Https => Some(443),
            _ => None,
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            match v6.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, p)) => match p.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None => return Err(err("IPv6 address must look like [::1]:12201")),
                },
                None => return Err(err("IPv6 address must look like [::1]:12201")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(err("missing host"));
        }
        if host.contains(['/', '@', ' ', '[', ']']) {
            return Err(err("host contains '/', '@', a bracket or a space"));
        }
        let port = match (port, default_port) {
            (Some(p), _) => p
                .parse::<u16>()
                .map_err(|_| err(&format!("port {p:?} is not a number from 1 to 65535")))?,
            (None, Some(d)) => d,
            (None, None) => {
                return Err(err(&format!(
                    "missing port, e.g. {}://graylog:12201",
                    scheme.as_str()
                )))
            }
        };
        if port == 0 {
            return Err(err("port 0 is not a valid destination"));
        }
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        let e: Endpoint = "tcp://127.0.0.1:12201".parse().unwrap();
        assert_eq!((e.host(), e.port()), ("127.0.0.1", 12201));
        assert_eq!(e.to_string(), "tcp://127.0.0.1:12201");
        let e: Endpoint = " TCP://[::1]:5/ ".parse().unwrap();
        assert_eq!(e.to_string(), "tcp://[::1]:5");
        for (s, scheme, shown) in [
            ("tls://g:12201", Scheme::Tls, "tls://g:12201"),
            ("udp://g:12201", Scheme::Udp, "udp://g:12201"),
            ("http://g:12201/gelf", Scheme::Http, "http://g:12201/gelf"),
            ("http://g:12201", Scheme::Http, "http://g:12201/gelf"),
            ("https://g", Scheme::Https, "https://g:443/gelf"),
            (
                "https://[::1]/in/gelf",
                Scheme::Https,
                "https://[::1]:443/in/gelf",
            ),
        ] {
            let e: Endpoint = s.parse().unwrap();
            assert_eq!(e.scheme(), scheme, "{s}");
            assert_eq!(e.to_string(), shown, "{s}");
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        for (bad, why) in [
            ("", "expected scheme"),
            ("graylog:12201", "expected scheme"),
            ("tcp://graylog", "missing port"),
            ("udp://graylog", "missing port"),
            ("tcp://:1", "missing host"),
            ("tcp://h:0", "port 0"),
            ("tcp://h:99999", "not a number"),
            ("tcp://a:1,tcp://b:2", "parse_list"),
            ("ftp://h:1", "unsupported scheme"),
            ("tcp://h:1/gelf", "takes no path"),
            ("http://h:1/gelf?x=1", "query"),
            ("tcp://[::1", "IPv6"),
        ] {
            let err = bad.parse::<Endpoint>().unwrap_err().to_string();
            assert!(err.contains("invalid GELF endpoint"), "{bad}: {err}");
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn lists_keep_order_and_reject_blanks_and_repeats() {
        let l = Endpoint::parse_list("udp://a:1, tcp://b:2 ,https://c/gelf").unwrap();
        let shown: Vec<String> = l.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown, ["udp://a:1", "tcp://b:2", "https://c:443/gelf"]);
        assert!(Endpoint::parse_list("tcp://a:1,").is_err());
        let e = Endpoint::parse_list("tcp://a:1,tcp://a:1").unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
