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
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fields;
use crate::redact::Redactor;
use crate::stats::DropCause;

/// Placeholder sent for a string value that is empty or blank: Graylog drops such values.
pub(crate) const EMPTY_VALUE: &str = "(empty)";

/// Marker appended to text that was cut to fit a limit.
const ELLIPSIS: &str = "…";

/// Names Graylog drops or reserves after stripping the leading `_`.
pub(crate) const RESERVED: [&str; 6] = [
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
        out.insert(0, 'f');
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

/// Returns the sanitised form of a field name as a `&'static str`.
///
/// Field names in `tracing` are `&'static str` from the program's code, so
/// the set of distinct names is bounded; the sanitised copy of a name that
/// needs changing is made once and kept for the life of the process.
pub(crate) fn static_field_name(name: &str) -> &'static str {
    static INTERNED: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let clean = sanitize_field_name(name);
    let map = INTERNED.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = map.get(clean.as_ref()) {
        return s;
    }
    let leaked: &'static str = Box::leak(clean.clone().into_owned().into_boxed_str());
    map.insert(clean.into_owned(), leaked);
    leaked
}

/// A cheap hash of a field name, compared before the names themselves.
pub(crate) fn name_hash(name: &str) -> u64 {
    // FNV-1a: names are short, so a simple byte loop is fastest.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What the encoder needs to know about one field of a callsite, worked out
/// once per callsite (see [`CallsiteCache`]) instead of once per event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldInfo {
    name: &'static str,
    hash: u64,
    secret: bool,
}

impl FieldInfo {
    fn new(raw: &str, redactor: &Redactor) -> Self {
        let name = static_field_name(raw);
        Self {
            name,
            hash: name_hash(name),
            secret: redactor.is_secret_name(raw),
        }
    }
}

/// Per-thread cache of [`FieldInfo`]s by layer and callsite metadata.
#[derive(Default)]
pub(crate) struct CallsiteCache {
    map: HashMap<(usize, usize), Rc<[FieldInfo]>, BuildHasherDefault<PtrHasher>>,
}

impl CallsiteCache {
    /// The field infos of `meta` for the layer `layer_id`.
    pub(crate) fn get(
        &mut self,
        layer_id: usize,
        meta: &'static tracing_core::Metadata<'static>,
        redactor: &Redactor,
    ) -> Rc<[FieldInfo]> {
        let key = (layer_id, meta as *const _ as usize);
        Rc::clone(self.map.entry(key).or_insert_with(|| {
            meta.fields()
                .iter()
                .map(|f| FieldInfo::new(f.name(), redactor))
                .collect()
        }))
    }
}

/// A hasher for pointer-sized keys: one multiply per word.
#[derive(Default)]
pub(crate) struct PtrHasher(u64);

impl Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
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
    pub(crate) name: &'static str,
    pub(crate) hash: u64,
    pub(crate) value: OwnedValue,
}

impl OwnedField {
    /// A field from a raw name (sanitised here) and a ready value.
    pub(crate) fn new(raw_name: &str, value: OwnedValue) -> Self {
        let name = static_field_name(raw_name);
        Self {
            name,
            hash: name_hash(name),
            value,
        }
    }
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
    name: &'static str,
    hash: u64,
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
    pub(crate) callsites: CallsiteCache,
    last_size: usize,
}

impl Scratch {
    /// A capacity for the next frame: the last frame's size plus a margin,
    /// so the output buffer is allocated once.
    pub(crate) fn size_hint(&self) -> usize {
        (self.last_size + 128).clamp(512, 64 * 1024)
    }

    pub(crate) fn note_size(&mut self, size: usize) {
        self.last_size = size;
    }

    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
        self.message = None;
        self.error_chain = None;
    }

    fn position(&self, name: &str, hash: u64) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.hash == hash && e.name == name)
    }

    fn push_text(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    fn push_redacted_text(&mut self, s: &str, redactor: &Redactor) -> Range<usize> {
        match redactor.redact_value(s) {
            Cow::Borrowed(s) => self.push_text(s),
            Cow::Owned(s) => self.push_text(&s),
        }
    }

    /// Pushes a string value; blank strings become [`EMPTY_VALUE`].
    fn push_value_str(&mut self, s: &str, redactor: &Redactor) -> ValRef {
        if s.trim().is_empty() {
            return ValRef::Text(self.push_text(EMPTY_VALUE));
        }
        ValRef::Text(self.push_redacted_text(s, redactor))
    }

    /// Sets a field, replacing an earlier value of the same name.
    fn set(&mut self, name: &'static str, hash: u64, value: ValRef) {
        match self.position(name, hash) {
            Some(i) => self.entries[i].value = value,
            None => self.entries.push(Entry { name, hash, value }),
        }
    }

    /// The text value of a field collected so far (`error_code`, say).
    pub(crate) fn text_value(&self, name: &str) -> Option<&str> {
        let i = self.position(name, name_hash(name))?;
        match &self.entries[i].value {
            ValRef::Text(r) => Some(&self.text[r.clone()]),
            _ => None,
        }
    }

    /// The event's message as recorded (empty when it has none).
    pub(crate) fn message_text(&self) -> &str {
        self.message.clone().map_or("", |r| &self.text[r])
    }

    /// Adds an owned field unless a field of that name is already present.
    pub(crate) fn add_owned_if_absent(&mut self, f: &OwnedField) {
        if self.position(f.name, f.hash).is_some() {
            return;
        }
        let value = match &f.value {
            OwnedValue::I64(v) => ValRef::I64(*v),
            OwnedValue::U64(v) => ValRef::U64(*v),
            OwnedValue::F64(v) => ValRef::F64(*v),
            OwnedValue::Bool(v) => ValRef::Bool(*v),
            OwnedValue::Str(s) => ValRef::Text(self.push_text(s)),
        };
        self.entries.push(Entry {
            name: f.name,
            hash: f.hash,
            value,
        });
    }

    /// Adds a metadata string field (`_target`, `_file`, …) unless present.
    pub(crate) fn add_meta_str(&mut self, name: &'static str, value: &str) {
        let hash = name_hash(name);
        if value.is_empty() || self.position(name, hash).is_some() {
            return;
        }
        let value = ValRef::Text(self.push_text(value));
        self.entries.push(Entry { name, hash, value });
    }

    /// Adds a metadata integer field unless present.
    pub(crate) fn add_meta_u64(&mut self, name: &'static str, value: u64) {
        let hash = name_hash(name);
        if self.position(name, hash).is_none() {
            self.entries.push(Entry {
                name,
                hash,
                value: ValRef::U64(value),
            });
        }
    }

    /// Moves the collected fields into owned span fields, overriding earlier
    /// values of the same name in `into`, and clears the collected fields.
    pub(crate) fn drain_into_owned(&mut self, into: &mut Vec<OwnedField>) {
        for e in &self.entries {
            let value = match &e.value {
                ValRef::I64(v) => OwnedValue::I64(*v),
                ValRef::U64(v) => OwnedValue::U64(*v),
                ValRef::F64(v) => OwnedValue::F64(*v),
                ValRef::Bool(v) => OwnedValue::Bool(*v),
                ValRef::Text(r) => OwnedValue::Str(self.text[r.clone()].into()),
            };
            match into
                .iter_mut()
                .find(|f| f.hash == e.hash && f.name == e.name)
            {
                Some(f) => f.value = value,
                None => into.push(OwnedField {
                    name: e.name,
                    hash: e.hash,
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
    pub(crate) infos: &'a [FieldInfo],
    pub(crate) redactor: &'a Redactor,
    pub(crate) is_event: bool,
}

impl FieldVisitor<'_> {
    fn info(&self, field: &tracing_core::Field) -> FieldInfo {
        match self.infos.get(field.index()) {
            Some(i) => *i,
            // A field from another callsite (not expected from tracing): work it out now.
            None => FieldInfo::new(field.name(), self.redactor),
        }
    }

    fn is_message(&self, field: &tracing_core::Field) -> bool {
        self.is_event && field.name() == "message"
    }

    /// Records a value under the field's sanitised name; a secret gets the
    /// redaction marker instead.
    fn push(&mut self, field: &tracing_core::Field, value: ValRef) {
        let info = self.info(field);
        let value = if info.secret {
            ValRef::Text(self.scratch.push_text(crate::redact::REDACTED))
        } else {
            value
        };
        self.scratch.set(info.name, info.hash, value);
    }

    fn push_str(&mut self, field: &tracing_core::Field, s: &str) {
        if self.is_message(field) {
            let r = self.scratch.push_redacted_text(s, self.redactor);
            self.scratch.message = Some(r);
            return;
        }
        let info = self.info(field);
        if info.secret {
            // Secrets never reach the value rules or the scratch text.
            let v = ValRef::Text(self.scratch.push_text(crate::redact::REDACTED));
            self.scratch.set(info.name, info.hash, v);
            return;
        }
        let v = self.scratch.push_value_str(s, self.redactor);
        self.scratch.set(info.name, info.hash, v);
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
        // The whole chain goes to full_message, after any earlier error field's.
        tmp.clear();
        if let Some(prev) = self.scratch.error_chain.take() {
            tmp.push_str(&self.scratch.text[prev]);
            tmp.push('\n');
        }
        let _ = write!(tmp, "{}: {value}", field.name());
        let mut source = value.source();
        while let Some(s) = source {
            let _ = write!(tmp, "\ncaused by: {s}");
            source = s.source();
        }
        let chain = self.scratch.push_redacted_text(&tmp, self.redactor);
        self.scratch.error_chain = Some(chain);
        self.scratch.tmp = tmp;
    }

    fn record_debug(&mut self, field: &tracing_core::Field, value: &dyn std::fmt::Debug) {
        if !self.is_message(field) && !self.redactor.has_value_rules() {
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
        out.extend_from_slice(e.name.as_bytes());
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
        out.extend_from_slice(b",\"_");
        out.extend_from_slice(fields::TRUNCATED.as_bytes());
        out.extend_from_slice(b"\":\"true\"");
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
        // Every byte of text takes at least one byte on the wire (escaping
        // only adds), so cutting the excess plus room for the ellipsis fits
        // in one round; further rounds only handle fields that were too short.
        let excess = len - cfg.max_message_bytes;
        let target_cut = excess + 16;
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

/// True when any of the 8 bytes in `w` is `"`, `\` or a control character
/// (the bytes JSON strings must escape). Exact, word at a time.
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(LO * 0x20) & !w & HI;
    let q = w ^ (LO * u64::from(b'"'));
    let quote = q.wrapping_sub(LO) & !q & HI;
    let bs = w ^ (LO * u64::from(b'\\'));
    let backslash = bs.wrapping_sub(LO) & !bs & HI;
    (below_space | quote | backslash) != 0
}

/// Writes `s` as a JSON string literal.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !word_needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Encodes the notice the worker sends after events were dropped.
/// The in-band notice sent after drops: how many since the last notice, by
/// cause (`gelf_dropped_<cause>`, `gelf_drop_causes`), and in all.
pub(crate) fn encode_drop_notice(
    cfg: &EncodeConfig,
    statics: &[OwnedField],
    by_cause: &[(DropCause, u64)],
    dropped_total: u64,
    out: &mut Vec<u8>,
) {
    let mut scratch = Scratch::default();
    let dropped_since: u64 = by_cause.iter().map(|(_, n)| n).sum();
    let causes = by_cause
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| format!("{}: {n}", c.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let msg = format!("gelf-tracing dropped {dropped_since} events ({causes})");
    scratch.message = Some(scratch.push_text(&msg));
    scratch.add_meta_u64(fields::GELF_DROPPED, dropped_since);
    scratch.add_meta_u64(fields::GELF_DROPPED_TOTAL, dropped_total);
    let mut names = Vec::new();
    for (cause, n) in by_cause.iter().filter(|(_, n)| *n > 0) {
        names.push(cause.name());
        scratch.add_meta_u64(cause.field_name(), *n);
    }
    scratch.add_meta_str(fields::GELF_DROP_CAUSES, &names.join(","));
    scratch.add_meta_str(fields::TARGET, "gelf_tracing");
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
    fn escapes_in_every_position_of_a_word() {
        for pos in 0..20 {
            for special in ['"', '\\', '\n', '\u{0}', '\u{1f}', 'é'] {
                let mut text: String = "abcdefghijklmnopqrst".into();
                text.replace_range(pos..pos + 1, &special.to_string());
                let mut out = Vec::new();
                write_json_str(&mut out, &text);
                let back: String = serde_json::from_slice(&out).unwrap();
                assert_eq!(back, text);
            }
        }
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
            s.add_owned_if_absent(&OwnedField::new(name, value));
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
        s.add_owned_if_absent(&OwnedField::new(
            "blob",
            OwnedValue::Str("\u{1}".repeat(5000).into()),
        ));
        let v = encode(&mut s, 2048);
        assert_eq!(v["_truncated"], "true");
        assert_eq!(v["short_message"], "line");
        assert!(v["_blob"].as_str().unwrap().ends_with(ELLIPSIS));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = OwnedValue> {
            prop_oneof![
                any::<i64>().prop_map(OwnedValue::I64),
                any::<u64>().prop_map(OwnedValue::U64),
                any::<f64>().prop_map(OwnedValue::F64),
                any::<bool>().prop_map(OwnedValue::Bool),
                ".{0,300}".prop_map(|s| OwnedValue::Str(s.into())),
                "[ \t\n]{0,3}".prop_map(|s| OwnedValue::Str(s.into())),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever the names, values and message, Graylog accepts the
            /// frame and drops no field, and the frame respects the cap.
            #[test]
            fn graylog_keeps_every_frame(
                message in "(?s).{0,3000}",
                fields in proptest::collection::vec((".{0,24}", value()), 0..24),
                max in 1024usize..16_384,
            ) {
                let mut s = Scratch::default();
                s.message = Some(s.push_text(&message));
                let mut names = Vec::new();
                for (name, value) in &fields {
                    let value = match value {
                        OwnedValue::Str(v) if v.trim().is_empty() => OwnedValue::Str(EMPTY_VALUE.into()),
                        v => v.clone(),
                    };
                    let f = OwnedField::new(name, value);
                    if !names.contains(&f.name) {
                        names.push(f.name);
                    }
                    s.add_owned_if_absent(&f);
                }
                let mut out = Vec::new();
                let outcome = encode_event(&cfg(max), &mut s, 6, SystemTime::now(), "fallback", &mut out);
                prop_assert!(out.len() <= max);
                prop_assert!(!out.contains(&0u8), "a NUL would split the TCP frame");
                let accepted = crate::graylog::check(&out);
                prop_assert!(accepted.is_ok(), "{:?}", accepted);
                let accepted = accepted.unwrap();
                prop_assert!(accepted.dropped.is_empty(), "{:?}", accepted.dropped);
                prop_assert!(!accepted.timestamp_replaced);
                if !outcome.truncated {
                    prop_assert_eq!(accepted.fields.len(), names.len());
                }
            }
        }
    }
}
