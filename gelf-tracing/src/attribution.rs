//! Error attribution at the source: ERROR and WARN events are classified by
//! their `error_code` (or, failing that, by keywords in their message) before
//! they leave the process, so they arrive in Graylog already carrying
//! `_component`, `_error_category`, `_severity`, `_root_cause` and `_solution`.
//!
//! Rules come from TOML:
//!
//! ```toml
//! [[rule]]
//! code = "CUDA_OOM"                 # exact match on the event's error_code
//! component = "gpu"
//! category = "resource"
//! severity = "critical"             # critical, major or minor
//! root_cause = "The GPU ran out of memory for this input."
//! solution = "Shorten the text, lower TTS_WORKERS, or use a GPU with more memory."
//!
//! [[rule]]
//! code_prefix = "MODEL_"            # any error_code starting with MODEL_
//! component = "model_inference"
//! category = "model"
//! severity = "major"
//!
//! [[rule]]
//! keywords = ["out of memory"]      # fallback: case-insensitive words in the message
//! component = "gpu"
//! category = "resource"
//! severity = "critical"
//! ```
//!
//! Precedence: an exact `code` beats a `code_prefix` (the longest prefix
//! wins), which beats `keywords` (the first rule in the file wins). Fields the
//! event already has are never overridden. An ERROR or WARN event whose
//! `error_code` no rule knows gets `_error_category = "unknown"` and is counted
//! per code ([`GelfGuard::unknown_error_codes`](crate::GelfGuard::unknown_error_codes)),
//! so new codes are noticed. INFO, DEBUG and TRACE events are not looked at.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use aho_corasick::AhoCorasick;
use serde::Deserialize;

use crate::encode::{OwnedField, OwnedValue};
use crate::fields;

/// Distinct unknown codes counted before further ones are counted together.
const MAX_UNKNOWN_CODES: usize = 256;

/// The key under which codes beyond the first 256 distinct unknown codes are counted.
pub const OTHER_UNKNOWN: &str = "(other)";

/// A rule file that could not be used; the message names the line.
///
/// ```
/// let text = "[[rule]]\ncode = \"X\"\ncomponent = \"api\"\ncategory = \"input\"\nseverity = \"huge\"\n";
/// let err = gelf_tracing::AttributionRules::from_toml(text).unwrap_err();
/// assert_eq!(err.line, Some(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}attribution rules: {message}", .line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct AttributionError {
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Severity of an attributed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// Needs someone now.
    Critical,
    /// Needs attention soon.
    Major,
    /// Worth a look.
    Minor,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Major => "major",
            Self::Minor => "minor",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<toml::Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    code: Option<String>,
    code_prefix: Option<String>,
    keywords: Option<Vec<String>>,
    component: String,
    category: String,
    severity: Severity,
    root_cause: Option<String>,
    solution: Option<String>,
}

/// The fields a matching rule adds.
#[derive(Debug, Clone)]
struct Attribution {
    fields: Vec<OwnedField>,
}

/// Compiled attribution rules. Build them with [`AttributionRules::from_toml`]
/// or [`AttributionRules::from_file`] and hand them to
/// [`GelfLayerBuilder::attribution`](crate::GelfLayerBuilder::attribution).
///
/// ```
/// use gelf_tracing::AttributionRules;
/// let rules = AttributionRules::from_toml(r#"
///     [[rule]]
///     code = "QUEUE_FULL"
///     component = "queue"
///     category = "capacity"
///     severity = "major"
///     solution = "Add nodes or raise TTS_QUEUE_SIZE."
/// "#)?;
/// assert_eq!(rules.len(), 1);
/// # Ok::<(), gelf_tracing::AttributionError>(())
/// ```
#[derive(Debug)]
pub struct AttributionRules {
    exact: HashMap<String, Attribution>,
    /// Longest prefix first.
    prefixes: Vec<(String, Attribution)>,
    keywords: Option<(AhoCorasick, Vec<usize>)>,
    keyword_rules: Vec<Attribution>,
    unknown: OwnedField,
    count: usize,
    unknown_codes: Mutex<BTreeMap<String, u64>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl AttributionRules {
    /// Parses and checks a TOML rule file's text.
    pub fn from_toml(text: &str) -> Result<Self, AttributionError> {
        let file: RuleFile = toml::from_str(text).map_err(|e| AttributionError {
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_owned(),
        })?;
        let mut rules = Self {
            exact: HashMap::new(),
            prefixes: Vec::new(),
            keywords: None,
            keyword_rules: Vec::new(),
            unknown: OwnedField::new(
                fields::ERROR_CATEGORY,
                OwnedValue::Str(fields::UNKNOWN_CATEGORY.into()),
            ),
            count: 0,
            unknown_codes: Mutex::new(BTreeMap::new()),
        };
        let mut keyword_patterns = Vec::new();
        let mut keyword_owner = Vec::new();
        for spanned in file.rule {
            let line = line_of(text, spanned.span().start);
            let err = |message: String| AttributionError {
                line: Some(line),
                message,
            };
            let r = spanned.into_inner();
            let matchers = usize::from(r.code.is_some())
                + usize::from(r.code_prefix.is_some())
                + usize::from(r.keywords.is_some());
            if matchers != 1 {
                return Err(err(
                    "a rule needs exactly one of code, code_prefix or keywords".into(),
                ));
            }
            for (name, v) in [("component", &r.component), ("category", &r.category)] {
                if v.trim().is_empty() {
                    return Err(err(format!("{name} is empty")));
                }
            }
            let mut fields = vec![
                OwnedField::new(
                    fields::COMPONENT,
                    OwnedValue::Str(r.component.trim().into()),
                ),
                OwnedField::new(
                    fields::ERROR_CATEGORY,
                    OwnedValue::Str(r.category.trim().into()),
                ),
                OwnedField::new(
                    fields::SEVERITY,
                    OwnedValue::Str(r.severity.as_str().into()),
                ),
            ];
            for (name, v) in [
                (fields::ROOT_CAUSE, &r.root_cause),
                (fields::SOLUTION, &r.solution),
            ] {
                if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                    fields.push(OwnedField::new(name, OwnedValue::Str(v.into())));
                }
            }
            let a = Attribution { fields };
            if let Some(code) = r.code {
                if rules.exact.insert(code.clone(), a).is_some() {
                    return Err(err(format!("code {code:?} has a rule already")));
                }
            } else if let Some(prefix) = r.code_prefix {
                if prefix.is_empty() {
                    return Err(err("code_prefix is empty".into()));
                }
                rules.prefixes.push((prefix, a));
            } else if let Some(words) = r.keywords {
                if words.is_empty() || words.iter().any(|w| w.trim().is_empty()) {
                    return Err(err("keywords must be a list of non-empty words".into()));
                }
                let owner = rules.keyword_rules.len();
                rules.keyword_rules.push(a);
                for w in words {
                    keyword_patterns.push(w.trim().to_owned());
                    keyword_owner.push(owner);
                }
            }
            rules.count += 1;
        }
        rules.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        if !keyword_patterns.is_empty() {
            let ac = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(&keyword_patterns)
                .map_err(|e| AttributionError {
                    line: None,
                    message: e.to_string(),
                })?;
            rules.keywords = Some((ac, keyword_owner));
        }
        Ok(rules)
    }

    /// Reads and parses a TOML rule file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, AttributionError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| AttributionError {
            line: None,
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::from_toml(&text).map_err(|e| AttributionError {
            line: e.line,
            message: format!("{}: {}", path.display(), e.message),
        })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The fields to add for an event with this `error_code` and message,
    /// counting codes no rule knows. `None` when nothing applies.
    pub(crate) fn attribute(&self, code: Option<&str>, message: &str) -> Option<&[OwnedField]> {
        if let Some(code) = code {
            if let Some(a) = self.exact.get(code) {
                return Some(&a.fields);
            }
            if let Some((_, a)) = self
                .prefixes
                .iter()
                .find(|(p, _)| code.starts_with(p.as_str()))
            {
                return Some(&a.fields);
            }
        }
        if let Some((ac, owners)) = &self.keywords {
            // The earliest rule among all keywords found, not the earliest match in the text.
            let best = ac
                .find_overlapping_iter(message)
                .map(|m| owners[m.pattern().as_usize()])
                .min();
            if let Some(i) = best {
                return Some(&self.keyword_rules[i].fields);
            }
        }
        let code = code?;
        if let Ok(mut m) = self.unknown_codes.lock() {
            let key = if m.len() < MAX_UNKNOWN_CODES || m.contains_key(code) {
                code
            } else {
                OTHER_UNKNOWN
            };
            *m.entry(key.to_owned()).or_default() += 1;
        }
        Some(std::slice::from_ref(&self.unknown))
    }

    /// Events seen per `error_code` that no rule knows.
    pub(crate) fn unknown_codes(&self) -> BTreeMap<String, u64> {
        self.unknown_codes
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
[[rule]]
code = "CUDA_OOM"
component = "gpu"
category = "resource"
severity = "critical"
root_cause = "GPU memory exhausted"
solution = "Lower the load"

[[rule]]
code_prefix = "CUDA_"
component = "gpu"
category = "driver"
severity = "major"

[[rule]]
code_prefix = "CUDA_LAUNCH_"
component = "gpu"
category = "kernel"
severity = "major"

[[rule]]
keywords = ["out of memory", "OOM"]
component = "memory"
category = "resource"
severity = "critical"

[[rule]]
keywords = ["timed out"]
component = "network"
category = "timeout"
severity = "minor"
"#;

    fn get<'a>(f: Option<&'a [OwnedField]>, name: &str) -> Option<&'a str> {
        f?.iter()
            .find(|x| x.name == name)
            .and_then(|x| match &x.value {
                OwnedValue::Str(s) => Some(&**s),
                _ => None,
            })
    }

    #[test]
    fn exact_beats_prefix_beats_keyword() {
        let r = AttributionRules::from_toml(RULES).unwrap();
        assert_eq!(r.len(), 5);
        let exact = r.attribute(Some("CUDA_OOM"), "out of memory, timed out");
        assert_eq!(get(exact, "error_category"), Some("resource"));
        assert_eq!(get(exact, "root_cause"), Some("GPU memory exhausted"));
        assert_eq!(get(exact, "severity"), Some("critical"));
        assert_eq!(
            get(r.attribute(Some("CUDA_DRIVER"), "x"), "error_category"),
            Some("driver")
        );
        // The longest prefix wins.
        assert_eq!(
            get(
                r.attribute(Some("CUDA_LAUNCH_FAILED"), "x"),
                "error_category"
            ),
            Some("kernel")
        );
        // No code: keywords, case-insensitive; the first rule in the file wins.
        assert_eq!(
            get(
                r.attribute(None, "request timed out: CUDA oom"),
                "component"
            ),
            Some("memory")
        );
        assert_eq!(
            get(r.attribute(None, "it Timed Out"), "component"),
            Some("network")
        );
        assert!(r.attribute(None, "all good").is_none());
    }

    #[test]
    fn unknown_codes_are_marked_and_counted() {
        let r = AttributionRules::from_toml(RULES).unwrap();
        for _ in 0..3 {
            assert_eq!(
                get(r.attribute(Some("NEW_CODE"), "bang"), "error_category"),
                Some("unknown")
            );
        }
        // A keyword still explains an unknown code's message.
        assert_eq!(
            get(r.attribute(Some("OTHER"), "out of memory"), "component"),
            Some("memory")
        );
        assert_eq!(r.unknown_codes().get("NEW_CODE"), Some(&3));
        assert!(!r.unknown_codes().contains_key("OTHER"));
        for i in 0..MAX_UNKNOWN_CODES + 10 {
            r.attribute(Some(&format!("C{i}")), "");
        }
        let m = r.unknown_codes();
        assert_eq!(m.len(), MAX_UNKNOWN_CODES + 1, "bounded");
        assert!(m[OTHER_UNKNOWN] >= 10);
    }

    #[test]
    fn toml_errors_name_the_line() {
        let cases = [
            ("[[rule]]\ncode = \"A\"\ncomponent = \"x\"\ncategory = \"y\"\nseverity = \"huge\"\n", 5),
            ("[[rule]]\ncomponent = \"x\"\ncategory = \"y\"\nseverity = \"minor\"\n", 1),
            ("\n\n[[rule]]\ncode = \"A\"\ncode_prefix = \"B\"\ncomponent = \"x\"\ncategory = \"y\"\nseverity = \"minor\"\n", 3),
            ("[[rule]]\ncode = \"A\"\ncomponent = \"x\"\ncategory = \"y\"\nseverity = \"minor\"\ncolour = 1\n", 6),
            ("[[rule]]\ncode = \"A\"\ncomponent = \"x\"\ncategory = \"y\"\nseverity = \"minor\"\n\n[[rule]]\ncode = \"A\"\ncomponent = \"x\"\ncategory = \"y\"\nseverity = \"minor\"\n", 7),
            ("[[rule]\n", 1),
            ("\n\n\n[[rule]]\ncode = \"A\"\ncomponent = 3\n", 6),
        ];
        for (text, line) in cases {
            let e = AttributionRules::from_toml(text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
        }
    }
}
