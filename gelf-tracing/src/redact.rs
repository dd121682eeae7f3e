//! Redaction of secrets before anything leaves the process.
//!
//! Two kinds of rules, both applied on the caller's thread while the event is
//! encoded, so a secret never reaches the queue, the socket or a spool:
//!
//! * **field names**: a field whose name contains one of the configured words
//!   (case-insensitive) has its value replaced by `[REDACTED]`. On by default
//!   with [`DEFAULT_SECRET_NAMES`]; names declared not secret (exact,
//!   case-insensitive: a count such as `mel_tokens`) are exempt;
//! * **value patterns**: regular expressions whose matches are replaced by
//!   `[REDACTED]` in string values, `Debug` values, messages and error chains.
//!   None by default.

use std::borrow::Cow;

use aho_corasick::AhoCorasick;
use regex::Regex;

use crate::BuildError;

/// The text that replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Field-name fragments redacted by default (matched case-insensitively
/// anywhere in the name, so `db_password`, `ApiKey` and `x-auth-token` match).
pub const DEFAULT_SECRET_NAMES: [&str; 10] = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
];

/// The compiled redaction rules.
#[derive(Debug, Clone)]
pub(crate) struct Redactor {
    names: Option<AhoCorasick>,
    /// Exempt names, lower case.
    allowed: Vec<String>,
    values: Vec<Regex>,
}

impl Redactor {
    /// Compiles the rules. `names` are name fragments, `values` regular expressions.
    #[cfg(test)]
    pub(crate) fn new(names: &[String], values: &[String]) -> Result<Self, BuildError> {
        Self::with_allowed(names, &[], values)
    }

    /// [`Self::new`] with names exempt from the name rules (`allowed`,
    /// exact and case-insensitive).
    pub(crate) fn with_allowed(
        names: &[String],
        allowed: &[String],
        values: &[String],
    ) -> Result<Self, BuildError> {
        let names = if names.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(names)
                    .map_err(|e| BuildError::Redaction(e.to_string()))?,
            )
        };
        let values = values
            .iter()
            .map(|v| {
                Regex::new(v)
                    .map_err(|e| BuildError::Redaction(format!("value pattern {v:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            names,
            allowed: allowed.iter().map(|a| a.to_ascii_lowercase()).collect(),
            values,
        })
    }

    /// True when values of a field with this name must be redacted.
    pub(crate) fn is_secret_name(&self, name: &str) -> bool {
        self.names.as_ref().is_some_and(|ac| ac.is_match(name))
            && !self.allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    /// True when value patterns are configured.
    pub(crate) fn has_value_rules(&self) -> bool {
        !self.values.is_empty()
    }

    /// Applies the value patterns to `s`.
    pub(crate) fn redact_value<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(s);
        for re in &self.values {
            if let Cow::Owned(r) = re.replace_all(&out, REDACTED) {
                out = Cow::Owned(r);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        DEFAULT_SECRET_NAMES.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_match_case_insensitively_anywhere() {
        let r = Redactor::new(&defaults(), &[]).unwrap();
        for n in [
            "password",
            "DB_PASSWORD",
            "x_api_key",
            "ApiKey",
            "auth_token",
            "Set-Cookie",
        ] {
            assert!(r.is_secret_name(n), "{n}");
        }
        for n in ["request_id", "node_id", "duration_ms", "char_count"] {
            assert!(!r.is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn names_declared_not_secret_are_exempt_exactly() {
        let r = Redactor::with_allowed(&defaults(), &["mel_tokens".into()], &[]).unwrap();
        assert!(!r.is_secret_name("mel_tokens"));
        assert!(!r.is_secret_name("MEL_TOKENS"));
        assert!(r.is_secret_name("mel_tokens_secret"));
        assert!(r.is_secret_name("auth_token"));
    }

    #[test]
    fn value_patterns_apply_everywhere_they_match() {
        let r = Redactor::new(&[], &[r"Bearer [A-Za-z0-9._-]+".into(), r"\d{16}".into()]).unwrap();
        assert_eq!(
            r.redact_value("auth Bearer abc.def and card 1234567812345678"),
            "auth [REDACTED] and card [REDACTED]"
        );
        assert!(matches!(r.redact_value("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn bad_pattern_is_a_build_error() {
        let e = Redactor::new(&[], &["(".into()]).unwrap_err();
        assert!(e.to_string().contains("value pattern"), "{e}");
    }
}
