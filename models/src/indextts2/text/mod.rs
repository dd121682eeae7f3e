//! The IndexTTS2 text front end: text → normalised text → SentencePiece
//! tokens → segments of token ids for the GPT, as the reference's
//! `indextts/utils/front.py` (`TextNormalizer`, `TextTokenizer`) and
//! `infer_v2.py` do it.
//!
//! - [`TextNormalizer`] ports the reference's rule-based normaliser exactly:
//!   the language choice (`use_chinese`, with its e-mail and pinyin-tone
//!   patterns), the English contraction rule (`what's` → `what is`), the
//!   glossary, the protection of tech terms (`GPT-5-nano`), pinyin with tones
//!   (`xuan4`) and Chinese names (`克里斯托弗·诺兰`) around the verbaliser, and
//!   the punctuation maps. The verbaliser itself (numbers and abbreviations
//!   spelled out) is NeMo's WFST grammars in the reference; here it is the
//!   [`Verbalizer`] trait, implemented by [`RuleVerbalizer`] for the common
//!   cases (see its documentation for exactly what it covers and what NeMo
//!   does that it does not).
//! - [`tokenize_by_cjk_char`] is the reference's pre-tokeniser (upper case,
//!   one CJK character per word).
//! - [`SentencePiece`] reads and runs the `bpe.model`.
//! - [`TextTokenizer`] chains them (`TextTokenizer.encode`, including its
//!   special case for one-character text) and segments the tokens
//!   ([`split_segments_by_token`], the reference's `split_segments`).
//!
//! Known differences from the reference, all outside what a sane input
//! meets: the reference replaces pinyin and names in the order of a Python
//! `set` (hash-seed dependent); here the longer ones go first, then the
//! earlier ones, which is the order that only matters when one found pinyin or
//! name is a substring of another. Glossary replacements are literal (the
//! reference passes them to `re.sub` as templates, so a backslash in one would
//! be interpreted). Only `zh` and `en` are supported as languages (not the
//! reference's `es`).
//!
//! ```no_run
//! use models::indextts2::text::{TextNormalizer, TextTokenizer, SentencePiece};
//!
//! let sp = SentencePiece::open("checkpoints/bpe.model")?;
//! let tokenizer = TextTokenizer::new(sp, Some(TextNormalizer::default()));
//! for segment in tokenizer.segment_ids("Hello world. 你好，世界！", 120, 0)? {
//!     println!("{segment:?}");
//! }
//! # Ok::<(), models::indextts2::Error>(())
//! ```

pub mod sentencepiece;
pub mod verbalizer;

use std::sync::LazyLock;

use regex::Regex;

pub use sentencepiece::SentencePiece;
pub use verbalizer::{RuleVerbalizer, Verbalizer};

use super::Error;

/// The language the normaliser treats a text as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    /// Chinese (the reference's `zh`): also text without Latin letters.
    Zh,
    /// English (`en`).
    En,
}

/// A glossary entry: how a term is read, for both languages or per language
/// (a language without a reading keeps the term as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlossaryEntry {
    /// The same reading in both languages.
    Same(String),
    /// A reading per language.
    PerLanguage {
        /// The reading in English text.
        en: Option<String>,
        /// The reading in Chinese text.
        zh: Option<String>,
    },
}

/// Python's `str.isspace`: Unicode whitespace plus U+001C..U+001F.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants checked by the unit tests.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("constant regex")
}

/// Python's `re.IGNORECASE` also folds `İ` and `ı` onto `i`; Rust's regex
/// folds `ſ` and the Kelvin sign like Python but not those two.
const PINYIN: &str = r"(?i)^(?:((?:[bpmfdtnlgkhjqxzcsryw]|[zcs]h)?(?:[aeiİıouüv]|[ae][iİı]|u[aiİıo]|ao|ou|[iİı][aue]|[uüv]e|[uvü]ang?|ua[iİı]|[aeiİıuv]n|[aeiİıo]ng|[iİı]a[no]|[iİı][ao]ng)|ng|er)([1-5]))";

static PINYIN_AT: LazyLock<Regex> = LazyLock::new(|| re(PINYIN));
static CONTRACTION: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)(what|where|who|wh[iİı]ch|how|t?here|[iİı]t|s?he|that|th[iİı]s)'s"));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9]+@[a-zA-Z0-9]+\.[a-zA-Z]+\n?\z"));
static TECH_TERM: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+"));
static NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"[\x{4e00}-\x{9fff}]+(?:[-·—][\x{4e00}-\x{9fff}]+){1,2}"));
static TECH_RESTORE: LazyLock<Regex> = LazyLock::new(|| re(r"[\s\x1c-\x1f]*<H>[\s\x1c-\x1f]*"));
static JQX_U: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)([jqx])[uü](n|e|an)*(\d)"));

/// `[a-z]` under Python's `re.IGNORECASE`.
fn is_ignorecase_ascii_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, 'İ' | 'ı' | 'ſ' | '\u{212a}')
}

/// The reference's `PINYIN_TONE_PATTERN` found the way `re.findall` does:
/// scanning left to right, not after a Latin letter (its look-behind).
fn find_pinyin(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut prev: Option<char> = None;
    let mut pos = 0;
    while pos < text.len() {
        let allowed = !prev.is_some_and(is_ignorecase_ascii_letter);
        if allowed {
            if let Some(m) = PINYIN_AT.find(&text[pos..]) {
                let end = pos + m.end();
                out.push(&text[pos..end]);
                prev = text[..end].chars().next_back();
                pos = end;
                continue;
            }
        }
        let Some(c) = text[pos..].chars().next() else {
            break;
        };
        prev = Some(c);
        pos += c.len_utf8();
    }
    out
}

/// Distinct strings, longest first, then in order of appearance.
fn distinct_longest_first<'a>(found: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for s in found {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// The placeholder letter of the `i`-th item (`chr(ord("a") + i)`).
fn placeholder_letter(i: usize) -> char {
    u32::try_from(i)
        .ok()
        .and_then(|i| char::from_u32(u32::from(b'a') + i))
        .unwrap_or('?')
}

/// Replaces, left to right, the first key (in list order) that matches at
/// each position: Python's `re.sub` over an alternation of escaped keys.
fn replace_first_of(text: &str, map: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while let Some(c) = rest.chars().next() {
        for (key, value) in map {
            if rest.starts_with(key) {
                out.push_str(value);
                rest = &rest[key.len()..];
                continue 'outer;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The reference's `char_rep_map`, in its order.
const CHAR_REP_MAP: [(&str, &str); 35] = [
    ("：", ","),
    ("；", ","),
    (";", ","),
    ("，", ","),
    ("。", "."),
    ("！", "!"),
    ("？", "?"),
    ("\n", " "),
    ("·", "-"),
    ("、", ","),
    ("...", "…"),
    (",,,", "…"),
    ("，，，", "…"),
    ("……", "…"),
    ("“", "'"),
    ("”", "'"),
    ("\"", "'"),
    ("‘", "'"),
    ("’", "'"),
    ("（", "'"),
    ("）", "'"),
    ("(", "'"),
    (")", "'"),
    ("《", "'"),
    ("》", "'"),
    ("【", "'"),
    ("】", "'"),
    ("[", "'"),
    ("]", "'"),
    ("—", "-"),
    ("～", "-"),
    ("~", "-"),
    ("「", "'"),
    ("」", "'"),
    (":", ","),
];

/// The reference's `TextNormalizer`: language choice, the rule-based steps
/// around the verbaliser, and the punctuation maps.
///
/// ```
/// use models::indextts2::text::{Language, TextNormalizer};
///
/// let n = TextNormalizer::default();
/// assert_eq!(n.language("Hello"), Language::En);
/// assert_eq!(n.language("你好 hello"), Language::Zh);
/// assert_eq!(n.normalize("What's this? 3 cats."), "What is this? three cats.");
/// assert_eq!(n.normalize("他说：“你好”"), "他说,'你好'");
/// ```
pub struct TextNormalizer {
    preferred: Option<Language>,
    glossary: Vec<(String, GlossaryEntry)>,
    enable_glossary: bool,
    verbalizer: Box<dyn Verbalizer + Send + Sync>,
}

impl std::fmt::Debug for TextNormalizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextNormalizer")
            .field("preferred", &self.preferred)
            .field("glossary", &self.glossary)
            .field("enable_glossary", &self.enable_glossary)
            .finish_non_exhaustive()
    }
}

impl Default for TextNormalizer {
    /// As `infer_v2` builds it: automatic language, glossary enabled (and
    /// empty), the built-in [`RuleVerbalizer`].
    fn default() -> Self {
        Self::new(Box::new(RuleVerbalizer))
    }
}

impl TextNormalizer {
    /// A normaliser with the given verbaliser (the reference's NeMo step).
    pub fn new(verbalizer: Box<dyn Verbalizer + Send + Sync>) -> Self {
        Self {
            preferred: None,
            glossary: Vec::new(),
            enable_glossary: true,
            verbalizer,
        }
    }

    /// Forces a language (the reference's `preferred_language`).
    pub fn with_language(mut self, language: Option<Language>) -> Self {
        self.preferred = language;
        self
    }

    /// Turns the glossary on or off (`enable_glossary`, on by default).
    pub fn with_glossary_enabled(mut self, enabled: bool) -> Self {
        self.enable_glossary = enabled;
        self
    }

    /// Adds glossary terms (`load_glossary`: a term already present gets the
    /// new reading, in its old place).
    pub fn load_glossary(&mut self, terms: impl IntoIterator<Item = (String, GlossaryEntry)>) {
        for (term, entry) in terms {
            match self.glossary.iter_mut().find(|(t, _)| *t == term) {
                Some(slot) => slot.1 = entry,
                None => self.glossary.push((term, entry)),
            }
        }
    }

    /// Replaces the glossary with the one in a `glossary.yaml`
    /// (`load_glossary_from_yaml`); see [`parse_glossary_yaml`] for the
    /// accepted YAML.
    pub fn load_glossary_yaml(&mut self, path: impl AsRef<std::path::Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.glossary = parse_glossary_yaml(&text).map_err(|reason| Error::Format {
            path: path.display().to_string(),
            reason,
        })?;
        Ok(())
    }

    /// The reference's `use_chinese`: Chinese characters, or no Latin
    /// letter, or a bare e-mail address, or a pinyin syllable with a tone
    /// number.
    pub fn use_chinese(text: &str) -> bool {
        let has_chinese = text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        let has_alpha = text.chars().any(|c| c.is_ascii_alphabetic());
        has_chinese || !has_alpha || EMAIL.is_match(text) || !find_pinyin(text).is_empty()
    }

    /// The language `normalize` treats `text` as.
    pub fn language(&self, text: &str) -> Language {
        self.preferred.unwrap_or(if Self::use_chinese(text) {
            Language::Zh
        } else {
            Language::En
        })
    }

    fn apply_glossary(&self, text: &str, lang: Language) -> String {
        if !self.enable_glossary || self.glossary.is_empty() {
            return text.to_string();
        }
        let mut terms: Vec<&(String, GlossaryEntry)> = self.glossary.iter().collect();
        terms.sort_by_key(|(t, _)| std::cmp::Reverse(t.chars().count()));
        let mut out = text.to_string();
        for (term, entry) in terms {
            let reading = match entry {
                GlossaryEntry::Same(r) => r.as_str(),
                GlossaryEntry::PerLanguage { en, zh } => match lang {
                    Language::En => en.as_deref().unwrap_or(term),
                    Language::Zh => zh.as_deref().unwrap_or(term),
                },
            };
            if let Ok(pattern) = Regex::new(&format!("(?i){}", regex::escape(term))) {
                out = pattern
                    .replace_all(&out, regex::NoExpand(reading))
                    .into_owned();
            }
        }
        out
    }

    /// `text` with the reference's rule-based steps and the verbaliser
    /// applied (`TextNormalizer.normalize`).
    pub fn normalize(&self, text: &str) -> String {
        let lang = self.language(text);
        let text = CONTRACTION.replace_all(text, "${1} is");
        let text = self.apply_glossary(&text, lang);
        match lang {
            Language::Zh => {
                let trimmed = text.trim_end_matches(is_py_space);
                let (replaced, tech) = save_tech_terms(trimmed);
                let (replaced, pinyin) = save_pinyin(&replaced);
                let (replaced, names) = save_names(&replaced);
                let mut result = self.verbalizer.verbalize(Language::Zh, &replaced);
                for (i, name) in names.iter().enumerate() {
                    let key = format!("<n_{}>", placeholder_letter(i));
                    result = result.replace(&key, name);
                }
                for (i, p) in pinyin.iter().enumerate() {
                    let key = format!("<pinyin_{}>", placeholder_letter(i));
                    result = result.replace(&key, &correct_pinyin(p));
                }
                if !tech.is_empty() {
                    result = TECH_RESTORE.replace_all(&result, "-").into_owned();
                }
                let mut zh_map = vec![("$", ".")];
                zh_map.extend_from_slice(&CHAR_REP_MAP);
                replace_first_of(&result, &zh_map)
            }
            Language::En => {
                let (replaced, tech) = save_tech_terms(&text);
                let mut result = self.verbalizer.verbalize(Language::En, &replaced);
                if !tech.is_empty() {
                    result = TECH_RESTORE.replace_all(&result, "-").into_owned();
                }
                replace_first_of(&result, &CHAR_REP_MAP)
            }
        }
    }
}

/// `save_tech_terms`: the hyphens of `GPT-5-nano`-like terms become `<H>`.
fn save_tech_terms(text: &str) -> (String, Vec<String>) {
    let terms = distinct_longest_first(TECH_TERM.find_iter(text).map(|m| m.as_str()));
    let mut out = text.to_string();
    for term in &terms {
        out = out.replace(term, &term.replace('-', "<H>"));
    }
    (out, terms.into_iter().map(str::to_string).collect())
}

/// `save_pinyin_tones`: pinyin with a tone number become `<pinyin_a>`, ...
fn save_pinyin(text: &str) -> (String, Vec<String>) {
    let found = distinct_longest_first(find_pinyin(text));
    let mut out = text.to_string();
    for (i, p) in found.iter().enumerate() {
        out = out.replace(p, &format!("<pinyin_{}>", placeholder_letter(i)));
    }
    (out, found.into_iter().map(str::to_string).collect())
}

/// `save_names`: Chinese names with `·`, `-` or `—` become `<n_a>`, ...
fn save_names(text: &str) -> (String, Vec<String>) {
    let found = distinct_longest_first(NAME.find_iter(text).map(|m| m.as_str()));
    let mut out = text.to_string();
    for (i, n) in found.iter().enumerate() {
        out = out.replace(n, &format!("<n_{}>", placeholder_letter(i)));
    }
    (out, found.into_iter().map(str::to_string).collect())
}

/// `correct_pinyin`: `ju4` → `JV4`, `que4` → `QVE4` (only after j, q, x;
/// other pinyin are kept as they are).
fn correct_pinyin(pinyin: &str) -> String {
    if !pinyin.starts_with(['j', 'q', 'x', 'J', 'Q', 'X']) {
        return pinyin.to_string();
    }
    JQX_U.replace_all(pinyin, "${1}v${2}${3}").to_uppercase()
}

/// Parses the reference's `glossary.yaml`: one term per line,
/// `term: reading` (both languages) or `term:` followed by indented
/// `en: reading` / `zh: reading` lines. Values may be quoted; `#` starts a
/// comment after whitespace. Other YAML is rejected.
pub fn parse_glossary_yaml(text: &str) -> Result<Vec<(String, GlossaryEntry)>, String> {
    fn scalar(raw: &str) -> String {
        let raw = match raw.find(" #") {
            Some(i) => &raw[..i],
            None => raw,
        }
        .trim();
        for q in ['"', '\''] {
            if raw.len() >= 2 && raw.starts_with(q) && raw.ends_with(q) {
                return raw[1..raw.len() - 1].to_string();
            }
        }
        raw.to_string()
    }
    fn split_key(line: &str) -> Option<(String, &str)> {
        let line = line.trim();
        let (key, value) = if let Some(q) = line.strip_prefix('"') {
            let end = q.find('"')?;
            (
                q[..end].to_string(),
                q[end + 1..].trim_start().strip_prefix(':')?,
            )
        } else {
            let i = line
                .find(": ")
                .or_else(|| line.strip_suffix(':').map(|l| l.len()))?;
            (line[..i].trim().to_string(), &line[i + 1..])
        };
        Some((key, value))
    }
    let mut out: Vec<(String, GlossaryEntry)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = || format!("glossary line {}: cannot read {line:?}", n + 1);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        let (key, value) = split_key(line).ok_or_else(bad)?;
        let value = scalar(value);
        if indented {
            let Some((_, GlossaryEntry::PerLanguage { en, zh })) = out.last_mut() else {
                return Err(bad());
            };
            match key.as_str() {
                "en" => *en = Some(value),
                "zh" => *zh = Some(value),
                _ => return Err(bad()),
            }
        } else if value.is_empty() {
            out.push((key, GlossaryEntry::PerLanguage { en: None, zh: None }));
        } else {
            out.push((key, GlossaryEntry::Same(value)));
        }
    }
    Ok(out)
}

/// Whether `c` is in the reference's CJK ranges (`tokenize_by_CJK_char`).
pub fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{11ff}'
        | '\u{2e80}'..='\u{a4cf}'
        | '\u{a840}'..='\u{d7af}'
        | '\u{f900}'..='\u{faff}'
        | '\u{fe30}'..='\u{fe4f}'
        | '\u{ff65}'..='\u{ffdc}'
        | '\u{20000}'..='\u{2ffff}')
}

/// The reference's `tokenize_by_CJK_char`: every CJK character becomes a
/// word of its own, the rest is upper-cased, words are joined by one space
/// (the spaces inside non-CJK runs are kept).
///
/// ```
/// use models::indextts2::text::tokenize_by_cjk_char;
/// assert_eq!(tokenize_by_cjk_char("你好世界是 hello world 的中文"),
///            "你 好 世 界 是 HELLO WORLD 的 中 文");
/// ```
pub fn tokenize_by_cjk_char(line: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut run = String::new();
    let flush = |run: &mut String, words: &mut Vec<String>| {
        let w = py_strip(run);
        if !w.is_empty() {
            words.push(w.to_uppercase());
        }
        run.clear();
    };
    for c in py_strip(line).chars() {
        if is_cjk(c) {
            flush(&mut run, &mut words);
            // U+3000 (ideographic space) is in the ranges but strips away.
            if !is_py_space(c) {
                words.push(c.to_uppercase().collect());
            }
        } else {
            run.push(c);
        }
    }
    flush(&mut run, &mut words);
    words.join(" ")
}

/// The stop tokens `infer_v2` splits segments at
/// (`TextTokenizer.punctuation_marks_tokens`).
pub const PUNCTUATION_MARK_TOKENS: [&str; 6] = [".", "!", "?", "▁.", "▁?", "▁..."];

/// The reference's `split_segments_by_token`: cuts tokens into segments at
/// `split_tokens` (keeping a following quote), at commas and dashes when a
/// segment holds one, by length beyond `max_tokens`, then merges neighbours
/// that fit together (past the first `quick_streaming_tokens` tokens, or
/// within half the limit).
///
/// Fails with [`Error::Config`] when `max_tokens` is 0 (the reference
/// raises then too).
///
/// ```
/// use models::indextts2::text::{split_segments_by_token, PUNCTUATION_MARK_TOKENS};
///
/// let tokens: Vec<String> = ["▁A", "▁B", ".", "▁C", "▁D", "!"].map(String::from).to_vec();
/// let segments = split_segments_by_token(&tokens, &PUNCTUATION_MARK_TOKENS, 4, 0)?;
/// assert_eq!(segments, [["▁A", "▁B", "."], ["▁C", "▁D", "!"]]);
/// # Ok::<(), models::indextts2::Error>(())
/// ```
pub fn split_segments_by_token(
    tokens: &[String],
    split_tokens: &[&str],
    max_tokens: usize,
    quick_streaming_tokens: usize,
) -> Result<Vec<Vec<String>>, Error> {
    if max_tokens == 0 {
        return Err(Error::Config(
            "max_text_tokens_per_segment must be at least 1".into(),
        ));
    }
    Ok(split_rec(
        tokens,
        split_tokens,
        max_tokens,
        quick_streaming_tokens,
    ))
}

fn split_rec(
    tokens: &[String],
    split_tokens: &[&str],
    max: usize,
    quick: usize,
) -> Vec<Vec<String>> {
    if tokens.is_empty() {
        return Vec::new();
    }
    let splits_at = |t: &str| split_tokens.contains(&t);
    let is_comma = |t: &String| t == "," || t == "▁,";
    let mut segments: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_len = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        current.push(token.clone());
        current_len += 1;
        let sub = if !(splits_at(",") || splits_at("▁,")) && current.iter().any(is_comma) {
            split_rec(&current, &[",", "▁,"], max, quick)
        } else if !splits_at("-") && current.iter().any(|t| t == "-") {
            split_rec(&current, &["-"], max, quick)
        } else if current_len <= max {
            if splits_at(token) && current_len > 2 {
                // A quote right after the stop stays with this segment (and,
                // as in the reference, also starts the next one).
                if let Some(next) = tokens.get(i + 1) {
                    if next == "'" || next == "▁'" {
                        current.push(next.clone());
                    }
                }
                segments.push(std::mem::take(&mut current));
                current_len = 0;
            }
            continue;
        } else {
            current.chunks(max).map(<[String]>::to_vec).collect()
        };
        segments.extend(sub);
        current.clear();
        current_len = 0;
    }
    if current_len > 0 {
        segments.push(current);
    }
    let mut merged: Vec<Vec<String>> = Vec::new();
    let mut total = 0usize;
    for segment in segments {
        total += segment.len();
        if segment.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some(last)
                if (last.len() + segment.len() <= max && total > quick)
                    || 2 * (last.len() + segment.len()) <= max =>
            {
                last.extend(segment)
            }
            _ => merged.push(segment),
        }
    }
    merged
}

/// The reference's `TextTokenizer`: normaliser, CJK pre-tokeniser and
/// SentencePiece, and the segmentation `infer_v2` applies.
#[derive(Debug)]
pub struct TextTokenizer {
    sp: SentencePiece,
    normalizer: Option<TextNormalizer>,
}

impl TextTokenizer {
    /// A tokenizer over a SentencePiece model, with or without normaliser
    /// (`infer_v2` uses one).
    pub fn new(sp: SentencePiece, normalizer: Option<TextNormalizer>) -> Self {
        Self { sp, normalizer }
    }

    /// As `infer_v2` builds it: the checkpoint's `bpe.model` with the
    /// default [`TextNormalizer`].
    pub fn load(bpe_model: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        Ok(Self::new(
            SentencePiece::open(bpe_model)?,
            Some(TextNormalizer::default()),
        ))
    }

    /// The SentencePiece model.
    pub fn sentencepiece(&self) -> &SentencePiece {
        &self.sp
    }

    /// The normaliser, if any.
    pub fn normalizer(&self) -> Option<&TextNormalizer> {
        self.normalizer.as_ref()
    }

    /// The text SentencePiece sees: normalised and CJK pre-tokenised, or the
    /// text itself when it is one character once stripped (the reference's
    /// shortcut), or nothing for empty text.
    pub fn prepare(&self, text: &str) -> Option<String> {
        if text.is_empty() {
            return None;
        }
        if py_strip(text).chars().count() == 1 {
            return Some(text.to_string());
        }
        let normalized = match &self.normalizer {
            Some(n) => n.normalize(text),
            None => text.to_string(),
        };
        Some(tokenize_by_cjk_char(&normalized))
    }

    /// The (piece, id) pairs of `text` (`TextTokenizer.encode`).
    pub fn encode(&self, text: &str) -> Vec<(String, u32)> {
        self.prepare(text)
            .map(|t| self.sp.encode(&t))
            .unwrap_or_default()
    }

    /// The pieces of `text` (`TextTokenizer.tokenize`).
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        self.encode(text).into_iter().map(|(p, _)| p).collect()
    }

    /// The ids of `text` (`TextTokenizer.encode(text)`).
    pub fn encode_ids(&self, text: &str) -> Vec<u32> {
        self.encode(text).into_iter().map(|(_, id)| id).collect()
    }

    /// `convert_tokens_to_ids`: each piece's id (unknown pieces get the
    /// unknown id).
    pub fn convert_tokens_to_ids(&self, tokens: &[String]) -> Vec<u32> {
        tokens.iter().map(|t| self.sp.piece_to_id(t)).collect()
    }

    /// `split_segments`: [`split_segments_by_token`] at
    /// [`PUNCTUATION_MARK_TOKENS`].
    pub fn split_segments(
        &self,
        tokens: &[String],
        max_text_tokens_per_segment: usize,
        quick_streaming_tokens: usize,
    ) -> Result<Vec<Vec<String>>, Error> {
        split_segments_by_token(
            tokens,
            &PUNCTUATION_MARK_TOKENS,
            max_text_tokens_per_segment,
            quick_streaming_tokens,
        )
    }

    /// What `infer_v2` feeds the GPT: `text` tokenised, segmented and
    /// converted to ids, one vector per segment.
    pub fn segment_ids(
        &self,
        text: &str,
        max_text_tokens_per_segment: usize,
        quick_streaming_tokens: usize,
    ) -> Result<Vec<Vec<u32>>, Error> {
        let tokens = self.tokenize(text);
        Ok(self
            .split_segments(&tokens, max_text_tokens_per_segment, quick_streaming_tokens)?
            .iter()
            .map(|s| self.convert_tokens_to_ids(s))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinyin_follows_the_reference_pattern() {
        assert_eq!(
            find_pinyin("xuan4 ze2 beta1 voice2 shang5"),
            ["xuan4", "ze2", "shang5"]
        );
        assert_eq!(find_pinyin("ZHONG1guo2 aZHONG1"), ["ZHONG1", "guo2"]);
        assert!(TextNormalizer::use_chinese("ni3 hao3"));
        assert!(!TextNormalizer::use_chinese("beta1 test"));
        assert!(TextNormalizer::use_chinese("abc@def.com"));
        assert!(!TextNormalizer::use_chinese("mail abc@def.com"));
        assert_eq!(correct_pinyin("jue2"), "JVE2");
        assert_eq!(correct_pinyin("xuan4"), "XVAN4");
        assert_eq!(correct_pinyin("zhong1"), "zhong1");
    }

    #[test]
    fn char_map_is_leftmost_first_in_key_order() {
        assert_eq!(
            replace_first_of("a，，，b……c...d,,,e", &CHAR_REP_MAP),
            "a,,,b…c…d…e"
        );
    }

    #[test]
    fn glossary_yaml_subset() {
        let g = parse_glossary_yaml(
            "# terms\nM.2:\n  en: M dot two\n  zh: M 二\nNVMe: N-V-M-E  # same\n\"C++\": 'C plus plus'\n",
        )
        .unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(
            g[0],
            (
                "M.2".into(),
                GlossaryEntry::PerLanguage {
                    en: Some("M dot two".into()),
                    zh: Some("M 二".into())
                }
            )
        );
        assert_eq!(g[1], ("NVMe".into(), GlossaryEntry::Same("N-V-M-E".into())));
        assert_eq!(
            g[2],
            ("C++".into(), GlossaryEntry::Same("C plus plus".into()))
        );
        assert!(parse_glossary_yaml("  en: orphan\n").is_err());
    }

    #[test]
    fn zero_limit_is_a_config_error() {
        let tokens = vec!["A".to_string()];
        assert!(matches!(
            split_segments_by_token(&tokens, &PUNCTUATION_MARK_TOKENS, 0, 0),
            Err(Error::Config(_))
        ));
    }
}
