//! Endpoint strings: `tcp://host:port`.

use std::fmt;

use crate::BuildError;

/// Where GELF messages go, parsed from a string such as `tcp://graylog:12201`.
///
/// Host names are resolved by the background worker at every connection, so a
/// Graylog behind DNS that moves is followed. IPv6 literals go in brackets.
///
/// ```
/// use gelf_tracing::Endpoint;
/// let e: Endpoint = "tcp://graylog.internal:12201".parse()?;
/// assert_eq!(e.host(), "graylog.internal");
/// assert_eq!(e.port(), 12201);
/// let v6: Endpoint = "tcp://[::1]:12201".parse()?;
/// assert_eq!(v6.host(), "::1");
/// assert!("udp://x:1".parse::<Endpoint>().is_err());
/// # Ok::<(), gelf_tracing::BuildError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    /// The host name or IP address (without IPv6 brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "tcp://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "tcp://{}:{}", self.host, self.port)
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
                "a list of endpoints (failover) is not supported yet; give one",
            ));
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| err("expected scheme://host:port, e.g. tcp://graylog:12201"))?;
        if !scheme.eq_ignore_ascii_case("tcp") {
            return Err(err(&format!(
                "unsupported scheme {scheme:?}: this version ships GELF over tcp://"
            )));
        }
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, p) = v6
                .split_once("]:")
                .ok_or_else(|| err("IPv6 address must look like [::1]:12201"))?;
            (h, p)
        } else {
            rest.rsplit_once(':')
                .ok_or_else(|| err("missing port, e.g. tcp://graylog:12201"))?
        };
        if host.is_empty() {
            return Err(err("missing host"));
        }
        if host.contains(['/', '@', ' ']) {
            return Err(err("host contains '/', '@' or a space"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| err(&format!("port {port:?} is not a number from 1 to 65535")))?;
        if port == 0 {
            return Err(err("port 0 is not a valid destination"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let e: Endpoint = "tcp://127.0.0.1:12201".parse().unwrap();
        assert_eq!((e.host(), e.port()), ("127.0.0.1", 12201));
        assert_eq!(e.to_string(), "tcp://127.0.0.1:12201");
        let e: Endpoint = " TCP://[::1]:5/ ".parse().unwrap();
        assert_eq!(e.to_string(), "tcp://[::1]:5");
        for bad in [
            "",
            "graylog:12201",
            "tcp://graylog",
            "tcp://:1",
            "tcp://h:0",
            "tcp://h:99999",
            "tcp://a:1,tcp://b:2",
            "http://h:1/gelf",
        ] {
            let err = bad.parse::<Endpoint>().unwrap_err();
            assert!(
                err.to_string().contains("invalid GELF endpoint"),
                "{bad}: {err}"
            );
        }
    }
}
