//! GELF 1.1 encoding that Graylog keeps.
//!
//! Graylog's decoder silently drops much of what valid JSON allows, so this
//! module applies its rules while encoding:
//!
//! * field names are sanitised with [`sanitize_field_name`] (see there for the rule);
//! * booleans become `"true"`/`"false"`, blank strings become `"(empty)"`, null is never sent;
//! * integers stay JSON integers (beyond `i64` they become strings, since Graylog
//!   stores longs), floats stay numbers (NaN and infinities become strings);
//! * `short_message` is never blank and `full_message` carries multi-line or long
//!   messages and error chains;
//! * a message that would exceed the size cap is cut (first `full_message`,
//!   then the longest fields) and marked `_truncated`.
//!
//! The hot path encodes an event into a reused per-thread scratch area and
//! allocates only the output frame.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::redact::Redactor;

/// Placeholder sent for a string value that is empty or blank: Graylog drops such values.
pub(crate) const EMPTY_VALUE: &str = "(empty)";

/// Marker appended to text that was cut to fit a limit.
const ELLIPSIS: &str = "…";

/// Names Graylog drops or reserves after stripping the leading `_`.
const RESERVED: [&str; 6] = [
    "id",
    "source",
    "message",
    "timestamp",
    "host",
    "short_message",
];

/// Sanitises a field name so that Graylog keeps it.
///
/// Graylog keeps an additional field only when its name (after the one leading
/// `_` GELF adds) matches `^[A-Za-z0-9_.@-]+$`, is not one of `id`, `source`,
/// `message`, `timestamp`, `host`, `short_message`, and does not start with `_`
/// or `gl2_`. The rule applied, in order:
///
/// 1. leading underscores and surrounding whitespace are removed;
/// 2. every other character outside `[A-Za-z0-9_.@-]` becomes `_`;
/// 3. a result that now starts with `_` gets an `f` in front, an empty one becomes `field`;
/// 4. a reserved name gets a trailing `_` (`id` → `id_`, `message` → `message_`);
/// 5. a name starting `gl2_` is prefixed with `app_` (`gl2_x` → `app_gl2_x`).
///
/// The returned name does not include the leading `_` of the GELF wire format.
///
/// ```
/// use gelf_tracing::sanitize_field_name;
/// assert_eq!(sanitize_field_name("request_id"), "request_id");
/// assert_eq!(sanitize_field_name("user name"), "user_name");
/// assert_eq!(sanitize_field_name("_id"), "id_");
/// assert_eq!(sanitize_field_name("gl2_source"), "app_gl2_source");
/// assert_eq!(sanitize_field_name("ünïcode"), "f_n_code");
/// ```
pub fn sanitize_field_name(name: &str) -> Cow<'_, str> {
    if is_clean_name(name) {
        return Cow::Borrowed(name);
    }
    let trimmed = name.trim().trim_start_matches('_').trim();
    let mut out: String = trimmed
        .chars()
        .map(|c| if is_name_char(c) { c } else { '_' })
        .collect();
    // Replacing characters can create a new leading underscore ("ü" -> "_"):
    // after GELF's own `_` that would be "__", which Graylog drops.
    if out.starts_with('_') {
        out.insert_str(0, "f");
    }
    if out.is_empty() {
        out.push_str("field");
    }
    if RESERVED.contains(&out.as_str()) {
        out.push('_');
    } else if out.starts_with("gl2_") {
        out.insert_str(0, "app_");
    }
    Cow::Owned(out)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-')
}

/// True when `name` needs no change: the common case, checked without allocating.
fn is_clean_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0] != b'_'
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'@' | b'-'))
        && !RESERVED.contains(&name)
        && !name.starts_with("gl2_")
}

/// A field value owned by the layer (static fields and span fields).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OwnedValue {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Str(Box<str>),
}

/// A field whose name is already sanitised and whose value is already redacted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OwnedField {
    pub(crate) name: Box<str>,
    pub(crate) value: OwnedValue,
}

/// Where a field name lives while an event is encoded.
#[derive(Debug, Clone)]
enum NameRef {
    Static(&'static str),
    Text(Range<usize>),
}

/// Where a field value lives while an event is encoded.
#[derive(Debug, Clone)]
enum ValRef {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Text(Range<usize>),
}

#[derive(Debug, Clone)]
struct Entry {
    name: NameRef,
    value: ValRef,
}

/// Per-thread scratch space reused across events, so encoding allocates only
/// the output frame.
#[derive(Default)]
pub(crate) struct Scratch {
    text: String,
    entries: Vec<Entry>,
    message: Option<Range<usize>>,
    error_chain: Option<Range<usize>>,
    tmp: String,
}

impl Scratch {
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
        self.message = None;
        self.error_chain = None;
    }

    fn name(&self, n: &NameRef) -> &str {
        match n {
            NameRef::Static(s) => s,
            NameRef::Text(r) => &self.text[r.clone()],
        }
    }

    fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|e| {
            let n = self.name(&e.name);
            n.len() == name.len() && n == name
        })
    }

    fn push_text(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    /// Pushes a string value; blank strings become [`EMPTY_VALUE`].
    fn push_value_str(&mut self, s: &str, redactor: &Redactor) -> ValRef {
        if s.trim().is_empty() {
            return ValRef::Text(self.push_text(EMPTY_VALUE));
        }
        match redactor.redact_value(s) {
            Cow::Borrowed(s) => ValRef::Text(self.push_text(s)),
            Cow::Owned(s) => ValRef::Text(self.push_text(&s)),
        }
    }

    fn push_name(&mut self, name: &'static str) -> NameRef {
        match sanitize_field_name(name) {
            Cow::Borrowed(n) => NameRef::Static(n),
            Cow::Owned(n) => NameRef::Text(self.push_text(&n)),
        }
    }

    /// Adds an owned field unless a field of that name is already present.
    pub(crate) fn add_owned_if_absent(&mut self, f: &OwnedField) {
        if self.has(&f.name) {
            return;
        }
        let name = NameRef::Text(self.push_text(&f.name));
        let value = match &f.value {
            OwnedValue::I64(v) => ValRef::I64(*v),
            OwnedValue::U64(v) => ValRef::U64(*v),
            OwnedValue::F64(v) => ValRef::F64(*v),
            OwnedValue::Bool(v) => ValRef::Bool(*v),
            OwnedValue::Str(s) => ValRef::Text(self.push_text(s)),
        };
        self.entries.push(Entry { name, value });
    }

    /// Adds a metadata string field (`_target`, `_file`, …) unless present.
    pub(crate) fn add_meta_str(&mut self, name: &'static str, value: &str) {
        if value.is_empty() || self.has(name) {
            return;
        }
        let value = ValRef::Text(self.push_text(value));
        self.entries.push(Entry {
            name: NameRef::Static(name),
            value,
        });
    }

    /// Adds a metadata integer field unless present.
    pub(crate) fn add_meta_u64(&mut self, name: &'static str, value: u64) {
        if !self.has(name) {
            self.entries.push(Entry {
                name: NameRef::Static(name),
                value: ValRef::U64(value),
            });
        }
    }

    /// Starts a metadata string built in place (used for `_span`); finish with
    /// [`Scratch::finish_meta`].
    pub(crate) fn begin_meta(&mut self) -> usize {
        self.text.len()
    }

    pub(crate) fn text_mut(&mut self) -> &mut String {
        &mut self.text
    }

    pub(crate) fn finish_meta(&mut self, name: &'static str, start: usize) {
        if self.text.len() == start || self.has(name) {
            self.text.truncate(start);
            return;
        }
        self.entries.push(Entry {
            name: NameRef::Static(name),
            value: ValRef::Text(start..self.text.len()),
        });
    }

    /// Converts the collected fields into owned span fields, overriding earlier
    /// values of the same name in `into`.
    pub(crate) fn drain_into_owned(&mut self, into: &mut Vec<OwnedField>) {
        for e in &self.entries {
            let name = self.name(&e.name);
            let value = match &e.value {
                ValRef::I64(v) => OwnedValue::I64(*v),
                ValRef::U64(v) => OwnedValue::U64(*v),
                ValRef::F64(v) => OwnedValue::F64(*v),
                ValRef::Bool(v) => OwnedValue::Bool(*v),
                ValRef::Text(r) => OwnedValue::Str(self.text[r.clone()].into()),
            };
            match into.iter_mut().find(|f| &*f.name == name) {
                Some(f) => f.value = value,
                None => into.push(OwnedField {
                    name: name.into(),
                    value,
                }),
            }
        }
        self.clear();
    }
}

/// Records tracing field values into a [`Scratch`].
///
/// For events the `message` field is kept apart (it becomes `short_message`);
/// for spans it is an ordinary field (renamed `message_` by the name rule).
pub(crate) struct FieldVisitor<'a> {
    pub(crate) scratch: &'a mut Scratch,
    pub(crate) redactor: &'a Redactor,
    pub(crate) is_event: bool,
}

impl FieldVisitor<'_> {
    /// Records a value under the field's sanitised name; a secret name gets
    /// the redaction marker instead. A later field with the same sanitised
    /// name replaces the earlier one, so no name is sent twice.
    fn push(&mut self, field: &tracing_core::Field, value: ValRef) {
        let value = if self.redactor.is_secret_name(field.name()) {
            ValRef::Text(self.scratch.push_text(crate::redact::REDACTED))
        } else {
            value
        };
        let name = self.scratch.push_name(field.name());
        let scratch = &mut *self.scratch;
        let existing = scratch
            .entries
            .iter()
            .position(|e| scratch.name(&e.name) == scratch.name(&name));
        match existing {
            Some(pos) => scratch.entries[pos].value = value,
            None => scratch.entries.push(Entry { name, value }),
        }
    }

    fn push_str(&mut self, field: &tracing_core::Field, s: &str) {
        if self.is_event && field.name() == "message" {
            let r = match self.redactor.redact_value(s) {
                Cow::Borrowed(s) => self.scratch.push_text(s),
                Cow::Owned(s) => self.scratch.push_text(&s),
            };
            self.scratch.message = Some(r);
            return;
        }
        // Secrets never reach the value rules or the scratch text; `push`
        // puts the redaction marker in place of this placeholder.
        let v = if self.redactor.is_secret_name(field.name()) {
            ValRef::I64(0)
        } else {
            self.scratch.push_value_str(s, self.redactor)
        };
        self.push(field, v);
    }

    /// True when a Debug value can be formatted straight into the scratch text.
    fn fits_fast(&self, field: &tracing_core::Field) -> bool {
        !(self.is_event && field.name() == "message") && !self.redactor.has_value_rules()
    }
}

impl tracing_core::field::Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &tracing_core::Field, value: f64) {
        self.push(field, ValRef::F64(value));
    }

    fn record_i64(&mut self, field: &tracing_core::Field, value: i64) {
        self.push(field, ValRef::I64(value));
    }

    fn record_u64(&mut self, field: &tracing_core::Field, value: u64) {
        self.push(field, ValRef::U64(value));
    }

    fn record_i128(&mut self, field: &tracing_core::Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.push(field, ValRef::I64(v)),
            Err(_) => self.push_str(field, &value.to_string()),
        }
    }

    fn record_u128(&mut self, field: &tracing_core::Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.push(field, ValRef::U64(v)),
            Err(_) => self.push_str(field, &value.to_string()),
        }
    }

    fn record_bool(&mut self, field: &tracing_core::Field, value: bool) {
        self.push(field, ValRef::Bool(value));
    }

    fn record_str(&mut self, field: &tracing_core::Field, value: &str) {
        self.push_str(field, value);
    }

    fn record_error(
        &mut self,
        field: &tracing_core::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        let mut tmp = std::mem::take(&mut self.scratch.tmp);
        tmp.clear();
        let _ = write!(tmp, "{value}");
        self.push_str(field, &tmp);
        // The whole chain goes to full_message.
        tmp.clear();
        let _ = write!(tmp, "{}: {value}", field.name());
        let mut source = value.source();
        while let Some(s) = source {
            let _ = write!(tmp, "\ncaused by: {s}");
            source = s.source();
        }
        let chain = match self.redactor.redact_value(&tmp) {
            Cow::Borrowed(s) => self.scratch.push_text(s),
            Cow::Owned(s) => self.scratch.push_text(&s),
        };
        self.scratch.error_chain = Some(match self.scratch.error_chain.take() {
            // Several error fields: keep them all, one after the other.
            Some(prev) => {
                let joined = format!(
                    "{}\n{}",
                    &self.scratch.text[prev],
                    &self.scratch.text[chain.clone()]
                );
                self.scratch.push_text(&joined)
            }
            None => chain,
        });
        self.scratch.tmp = tmp;
    }

    fn record_debug(&mut self, field: &tracing_core::Field, value: &dyn std::fmt::Debug) {
        if self.fits_fast(field) {
            // Format straight into the scratch text: no temporary string.
            let start = self.scratch.text.len();
            let _ = write!(self.scratch.text, "{value:?}");
            let v = if self.scratch.text[start..].trim().is_empty() {
                self.scratch.text.truncate(start);
                ValRef::Text(self.scratch.push_text(EMPTY_VALUE))
            } else {
                ValRef::Text(start..self.scratch.text.len())
            };
            self.push(field, v);
            return;
        }
        let mut tmp = std::mem::take(&mut self.scratch.tmp);
        tmp.clear();
        let _ = write!(tmp, "{value:?}");
        self.push_str(field, &tmp);
        self.scratch.tmp = tmp;
    }
}

/// Settings the encoder needs, fixed at build time.
#[derive(Debug, Clone)]
pub(crate) struct EncodeConfig {
    /// The `host` field, already escaped-safe (never blank).
    pub(crate) host: String,
    /// Longest `short_message` in characters before it is cut (the whole text goes to `full_message`).
    pub(crate) short_message_max_chars: usize,
    /// Largest frame in bytes, the NUL delimiter not included.
    pub(crate) max_message_bytes: usize,
}

/// What the encoder learnt about one frame.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EncodeOutcome {
    pub(crate) truncated: bool,
}

/// Encodes the event collected in `scratch` as one GELF JSON document into `out`.
///
/// `fallback_message` is used when the event has no (or a blank) message.
pub(crate) fn encode_event(
    cfg: &EncodeConfig,
    scratch: &mut Scratch,
    level: u8,
    timestamp: SystemTime,
    fallback_message: &str,
    out: &mut Vec<u8>,
) -> EncodeOutcome {
    let msg_range = match scratch.message.clone() {
        Some(r) if !scratch.text[r.clone()].trim().is_empty() => trimmed_range(&scratch.text, r),
        _ => scratch.push_text(fallback_message),
    };
    let msg = &scratch.text[msg_range.clone()];
    let (short, cut) = short_message(msg, cfg.short_message_max_chars);
    let short_offset = short.as_ptr() as usize - scratch.text.as_ptr() as usize;
    let short_len = short.len();
    let has_full = cut || short_len != msg.len() || scratch.error_chain.is_some();
    let short_range = if cut {
        let mut s = short.trim_end().to_owned();
        s.push_str(ELLIPSIS);
        scratch.push_text(&s)
    } else {
        short_offset..short_offset + short_len
    };
    let full_range = if has_full {
        let mut full = scratch.text[msg_range].to_owned();
        if let Some(chain) = scratch.error_chain.clone() {
            full.push_str("\n\n");
            full.push_str(&scratch.text[chain]);
        }
        Some(scratch.push_text(&full))
    } else {
        None
    };

    let ts = timestamp.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut doc = Doc {
        short: short_range,
        full: full_range,
        level,
        secs: ts.as_secs(),
        micros: ts.subsec_micros(),
        truncated: false,
    };
    let start = out.len();
    write_doc(cfg, scratch, &doc, out);
    if out.len() - start <= cfg.max_message_bytes {
        return EncodeOutcome { truncated: false };
    }
    doc.truncated = true;
    shrink_to_fit(cfg, scratch, &mut doc, out, start);
    EncodeOutcome { truncated: true }
}

/// The sub-range of `r` in `text` without surrounding whitespace.
fn trimmed_range(text: &str, r: Range<usize>) -> Range<usize> {
    let s = &text[r.clone()];
    let start = r.start + (s.len() - s.trim_start().len());
    start..start + s.trim().len()
}

/// The first non-blank line of `msg`, cut to at most `max_chars` characters
/// (the caller adds the ellipsis), and whether it was cut.
fn short_message(msg: &str, max_chars: usize) -> (&str, bool) {
    let first = msg
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(msg);
    match first.char_indices().nth(max_chars) {
        None => (first, false),
        Some((i, _)) => (&first[..i], true),
    }
}

struct Doc {
    short: Range<usize>,
    full: Option<Range<usize>>,
    level: u8,
    secs: u64,
    micros: u32,
    truncated: bool,
}

fn write_doc(cfg: &EncodeConfig, scratch: &Scratch, doc: &Doc, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"version\":\"1.1\",\"host\":");
    write_json_str(out, &cfg.host);
    out.extend_from_slice(b",\"short_message\":");
    write_json_str(out, &scratch.text[doc.short.clone()]);
    if let Some(full) = &doc.full {
        out.extend_from_slice(b",\"full_message\":");
        write_json_str(out, &scratch.text[full.clone()]);
    }
    out.extend_from_slice(b",\"timestamp\":");
    let mut ib = itoa::Buffer::new();
    out.extend_from_slice(ib.format(doc.secs).as_bytes());
    out.push(b'.');
    let micros = ib.format(doc.micros);
    for _ in micros.len()..6 {
        out.push(b'0');
    }
    out.extend_from_slice(micros.as_bytes());
    out.extend_from_slice(b",\"level\":");
    out.extend_from_slice(ib.format(doc.level).as_bytes());
    for e in &scratch.entries {
        out.extend_from_slice(b",\"_");
        out.extend_from_slice(scratch.name(&e.name).as_bytes());
        out.extend_from_slice(b"\":");
        match &e.value {
            ValRef::I64(v) => out.extend_from_slice(ib.format(*v).as_bytes()),
            ValRef::U64(v) => {
                if *v > i64::MAX as u64 {
                    // Graylog stores integers as signed 64-bit longs.
                    out.push(b'"');
                    out.extend_from_slice(ib.format(*v).as_bytes());
                    out.push(b'"');
                } else {
                    out.extend_from_slice(ib.format(*v).as_bytes());
                }
            }
            ValRef::F64(v) => write_f64(out, *v),
            ValRef::Bool(true) => out.extend_from_slice(b"\"true\""),
            ValRef::Bool(false) => out.extend_from_slice(b"\"false\""),
            ValRef::Text(r) => write_json_str(out, &scratch.text[r.clone()]),
        }
    }
    if doc.truncated {
        out.extend_from_slice(b",\"_truncated\":\"true\"");
    }
    out.push(b'}');
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let mut b = ryu::Buffer::new();
        out.extend_from_slice(b.format_finite(v).as_bytes());
    } else if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v > 0.0 {
        out.extend_from_slice(b"\"inf\"");
    } else {
        out.extend_from_slice(b"\"-inf\"");
    }
}

/// Re-encodes `doc` until it fits the size cap: first `full_message` is cut,
/// then the longest text fields, then (only for absurd field counts) fields
/// are dropped from the end and counted in `_truncated_fields`.
fn shrink_to_fit(
    cfg: &EncodeConfig,
    scratch: &mut Scratch,
    doc: &mut Doc,
    out: &mut Vec<u8>,
    start: usize,
) {
    // Text shorter than this is not worth cutting further.
    const MIN_CUTTABLE: usize = 64;
    for _ in 0..256 {
        let len = out.len() - start;
        if len <= cfg.max_message_bytes {
            return;
        }
        // Escaping can make text longer on the wire than in memory: cut a
        // little more than the excess so this converges in a few rounds.
        let excess = len - cfg.max_message_bytes;
        let target_cut = excess + excess / 4 + 16;
        let longest = longest_text(scratch).filter(|(_, r)| r.len() > MIN_CUTTABLE);
        if let Some(full) = doc.full.clone() {
            doc.full = (full.len() > target_cut + MIN_CUTTABLE)
                .then(|| cut_text(scratch, full.clone(), full.len() - target_cut));
        } else if let Some((idx, r)) = longest {
            let keep = r.len().saturating_sub(target_cut).max(16);
            scratch.entries[idx].value = ValRef::Text(cut_text(scratch, r, keep));
        } else if doc.short.len() > MIN_CUTTABLE {
            let keep = doc.short.len().saturating_sub(target_cut).max(32);
            doc.short = cut_text(scratch, doc.short.clone(), keep);
        } else if !scratch.entries.is_empty() {
            // Only an absurd number of fields gets here: drop a quarter of them.
            let keep = scratch.entries.len() - (scratch.entries.len() / 4).max(1);
            scratch.entries.truncate(keep);
        } else {
            return;
        }
        out.truncate(start);
        write_doc(cfg, scratch, doc, out);
    }
}

/// The longest text field value, by index and range.
fn longest_text(scratch: &Scratch) -> Option<(usize, Range<usize>)> {
    scratch
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.value {
            ValRef::Text(r) => Some((i, r.clone())),
            _ => None,
        })
        .max_by_key(|(_, r)| r.len())
}

/// Copies the first `keep` bytes (rounded down to a char boundary) of `r` plus
/// an ellipsis to the end of the scratch text.
fn cut_text(scratch: &mut Scratch, r: Range<usize>, keep: usize) -> Range<usize> {
    let s = &scratch.text[r];
    let mut end = keep.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = s[..end].trim_end().to_owned();
    if cut.is_empty() {
        cut.push_str(EMPTY_VALUE);
    }
    cut.push_str(ELLIPSIS);
    scratch.push_text(&cut)
}

/// Writes `s` as a JSON string literal.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Encodes the notice the worker sends after events were dropped.
pub(crate) fn encode_drop_notice(
    cfg: &EncodeConfig,
    statics: &[OwnedField],
    dropped_since: u64,
    dropped_total: u64,
    out: &mut Vec<u8>,
) {
    let mut scratch = Scratch::default();
    let msg = format!("gelf-tracing dropped {dropped_since} events (queue full or shutting down)");
    scratch.message = Some(scratch.push_text(&msg));
    scratch.entries.push(Entry {
        name: NameRef::Static("gelf_dropped"),
        value: ValRef::U64(dropped_since),
    });
    scratch.entries.push(Entry {
        name: NameRef::Static("gelf_dropped_total"),
        value: ValRef::U64(dropped_total),
    });
    scratch.add_meta_str("target", "gelf_tracing");
    for f in statics {
        scratch.add_owned_if_absent(f);
    }
    encode_event(cfg, &mut scratch, 4, SystemTime::now(), &msg, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: usize) -> EncodeConfig {
        EncodeConfig {
            host: "node-1".into(),
            short_message_max_chars: 40,
            max_message_bytes: max,
        }
    }

    fn encode(scratch: &mut Scratch, max: usize) -> serde_json::Value {
        let mut out = Vec::new();
        encode_event(
            &cfg(max),
            scratch,
            6,
            SystemTime::now(),
            "fallback",
            &mut out,
        );
        assert!(
            out.len() <= max,
            "frame of {} bytes over cap {max}",
            out.len()
        );
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn sanitises_names() {
        assert_eq!(sanitize_field_name("a.b@c-d_e"), "a.b@c-d_e");
        assert_eq!(sanitize_field_name("__x"), "x");
        assert_eq!(sanitize_field_name("  "), "field");
        assert_eq!(sanitize_field_name("host"), "host_");
        assert_eq!(sanitize_field_name("short_message"), "short_message_");
        assert_eq!(sanitize_field_name("a b/c"), "a_b_c");
        assert_eq!(sanitize_field_name("éa"), "f_a");
    }

    #[test]
    fn escapes_json() {
        let mut out = Vec::new();
        write_json_str(&mut out, "a\"b\\c\n\u{0}\u{1f}é");
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0000\\u001fé\"");
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{0}\u{1f}é");
    }

    #[test]
    fn multiline_message_goes_to_full_message() {
        let mut s = Scratch::default();
        s.message = Some(s.push_text("  \nfirst line\nsecond line"));
        let v = encode(&mut s, 10_000);
        assert_eq!(v["short_message"], "first line");
        assert_eq!(v["full_message"], "first line\nsecond line");
    }

    #[test]
    fn blank_message_uses_fallback() {
        let mut s = Scratch::default();
        s.message = Some(s.push_text(" \t "));
        let v = encode(&mut s, 10_000);
        assert_eq!(v["short_message"], "fallback");
        assert!(v.get("full_message").is_none());
    }

    #[test]
    fn long_message_is_cut_with_full_copy() {
        let mut s = Scratch::default();
        let long = "x".repeat(100);
        s.message = Some(s.push_text(&long));
        let v = encode(&mut s, 10_000);
        assert_eq!(v["short_message"].as_str().unwrap().chars().count(), 41);
        assert_eq!(v["full_message"], long.as_str());
    }

    #[test]
    fn types_are_preserved() {
        let mut s = Scratch::default();
        s.message = Some(s.push_text("m"));
        for (name, value) in [
            ("i", OwnedValue::I64(-3)),
            ("u", OwnedValue::U64(7)),
            ("big", OwnedValue::U64(u64::MAX)),
            ("f", OwnedValue::F64(1.5)),
            ("nan", OwnedValue::F64(f64::NAN)),
            ("inf", OwnedValue::F64(f64::NEG_INFINITY)),
            ("b", OwnedValue::Bool(true)),
        ] {
            s.add_owned_if_absent(&OwnedField {
                name: name.into(),
                value,
            });
        }
        let v = encode(&mut s, 10_000);
        assert_eq!(v["_i"], -3);
        assert_eq!(v["_u"], 7);
        assert_eq!(v["_big"], u64::MAX.to_string());
        assert_eq!(v["_f"], 1.5);
        assert_eq!(v["_nan"], "NaN");
        assert_eq!(v["_inf"], "-inf");
        assert_eq!(v["_b"], "true");
        assert_eq!(v["level"], 6);
        assert_eq!(v["version"], "1.1");
        let ts = v["timestamp"].as_f64().unwrap();
        assert!(ts > 1.6e9);
    }

    #[test]
    fn oversize_is_truncated_and_marked() {
        let mut s = Scratch::default();
        s.message = Some(s.push_text(&"line\n".repeat(2000)));
        s.add_owned_if_absent(&OwnedField {
            name: "blob".into(),
            value: OwnedValue::Str("\u{1}".repeat(5000).into()),
        });
        let v = encode(&mut s, 2048);
        assert_eq!(v["_truncated"], "true");
        assert_eq!(v["short_message"], "line");
        assert!(v["_blob"].as_str().unwrap().ends_with(ELLIPSIS));
    }
}
