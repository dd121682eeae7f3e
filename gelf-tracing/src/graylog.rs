//! What Graylog's GELF input would do with a payload: reject it, or keep it
//! minus the fields it drops silently.
//!
//! The rules follow Graylog's GELF codec (graylog2-server 7.x). They are what
//! this crate's encoder is tested against, and are public so that a test
//! receiver (or an operator checking an installation) can apply them too.
//!
//! ```
//! use gelf_tracing::graylog;
//!
//! let ok = graylog::check(br#"{"version":"1.1","host":"h","short_message":"hi","timestamp":1.5,"level":6,"_n":1}"#)?;
//! assert!(ok.dropped.is_empty());
//! assert_eq!(ok.fields["n"], 1);
//!
//! let lossy = graylog::check(br#"{"version":"1.1","host":"h","short_message":"hi","_flag":true,"_a b":"x"}"#)?;
//! assert_eq!(lossy.dropped.len(), 2);
//!
//! assert!(graylog::check(br#"{"host":" ","short_message":"hi"}"#).is_err());
//! # Ok::<(), graylog::Rejected>(())
//! ```

use serde_json::{Map, Value};

use crate::encode::RESERVED;

/// Graylog refuses the whole message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Graylog would reject this message: {reason}")]
pub struct Rejected {
    /// Why.
    pub reason: String,
}

/// A message Graylog accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The standard fields as sent (`host`, `short_message`, …).
    pub standard: Map<String, Value>,
    /// The additional fields Graylog keeps, under their stored names (no leading `_`).
    pub fields: Map<String, Value>,
    /// Fields Graylog drops silently, each as `name: reason`.
    pub dropped: Vec<String>,
    /// True when `timestamp` is missing or invalid, so Graylog would use its
    /// receive time instead of the event's.
    pub timestamp_replaced: bool,
}

const STANDARD: [&str; 9] = [
    "version",
    "host",
    "short_message",
    "full_message",
    "timestamp",
    "level",
    "facility",
    "line",
    "file",
];

fn reject(reason: impl Into<String>) -> Rejected {
    Rejected {
        reason: reason.into(),
    }
}

/// Checks one uncompressed GELF payload (a TCP frame without its NUL, or an
/// HTTP body) against Graylog's rules.
pub fn check(payload: &[u8]) -> Result<Accepted, Rejected> {
    if payload.len() < 2 {
        return Err(reject(format!(
            "payload of {} bytes (under 2)",
            payload.len()
        )));
    }
    match payload[0] {
        0x1f | 0x78 | 0x1e => {
            return Err(reject(
                "compressed or chunked payload: not valid on a TCP input",
            ))
        }
        _ => {}
    }
    let doc: Value =
        serde_json::from_slice(payload).map_err(|e| reject(format!("not JSON: {e}")))?;
    let Value::Object(obj) = doc else {
        return Err(reject("not a JSON object"));
    };
    match obj.get("host") {
        Some(Value::String(h)) if !h.trim().is_empty() => {}
        Some(Value::String(_)) => return Err(reject("blank host")),
        _ => return Err(reject("host missing or not a string")),
    }
    let message_ok = matches!(obj.get("message"), Some(Value::String(m)) if !m.trim().is_empty());
    match obj.get("short_message") {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(Value::String(_)) | None if message_ok => {}
        Some(Value::String(_)) => return Err(reject("blank short_message")),
        _ => return Err(reject("short_message missing or not a string")),
    }
    let timestamp_replaced = !matches!(obj.get("timestamp"), Some(Value::Number(n)) if n.as_f64().is_some_and(|t| t > 0.0));

    let mut standard = Map::new();
    let mut fields = Map::new();
    let mut dropped = Vec::new();
    for (key, value) in obj {
        let Some(stripped) = key.strip_prefix('_') else {
            if STANDARD.contains(&key.as_str()) {
                standard.insert(key, value);
            } else {
                dropped.push(format!("{key}: not a standard field and no leading _"));
            }
            continue;
        };
        let name = stripped.trim();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'));
        let why = if !valid {
            Some("name outside [A-Za-z0-9_.@-]")
        } else if RESERVED.contains(&name) {
            Some("reserved name")
        } else if name.starts_with('_') {
            Some("name starts with __")
        } else if name.starts_with("gl2_") {
            Some("gl2_ prefix is internal")
        } else {
            match &value {
                Value::Bool(_) => Some("boolean values are dropped"),
                Value::Null => Some("null values are dropped"),
                Value::String(s) if s.trim().is_empty() => Some("empty string values are dropped"),
                _ => None,
            }
        };
        match why {
            Some(reason) => dropped.push(format!("{key}: {reason}")),
            None => {
                let stored = match value {
                    Value::String(s) => Value::String(s.trim().to_owned()),
                    v @ Value::Number(_) => v,
                    other => Value::String(other.to_string()),
                };
                fields.insert(name.to_owned(), stored);
            }
        }
    }
    Ok(Accepted {
        standard,
        fields,
        dropped,
        timestamp_replaced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(check(b"{").is_err());
        assert!(check(b"x").is_err());
        assert!(check(&[0x1f, 0x8b, 0]).is_err());
        assert!(check(br#"{"host":"h","short_message":""}"#).is_err());
        assert!(check(br#"{"host":"h","short_message":"","message":"m"}"#).is_ok());
        let a = check(br#"{"host":"h","short_message":"s","_id":"1","__x":"1","_gl2_x":"1","_ok":" v ","_o":{"a":1},"_n":null,"_e":"  ","foo":1}"#).unwrap();
        assert_eq!(a.dropped.len(), 6, "{:?}", a.dropped);
        assert_eq!(a.fields["ok"], "v");
        assert_eq!(a.fields["o"], r#"{"a":1}"#);
        assert!(a.timestamp_replaced);
    }
}
