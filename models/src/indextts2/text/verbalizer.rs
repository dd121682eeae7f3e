//! The verbaliser: the step of the reference's normaliser that spells out
//! numbers and symbols. The reference calls NeMo's text-normalisation WFST
//! grammars (`nemo_text_processing` 1.1.0, `input_case="cased"`, English and
//! Chinese); [`RuleVerbalizer`] reproduces the common cases by rule.
//!
//! What [`RuleVerbalizer`] covers, and reproduces exactly on the recorded
//! corpus (`models/tests/indextts2_text.rs`):
//! - both languages: whitespace runs collapsed to one space, ends trimmed;
//! - English: integers (`0`; 1–3 digits as cardinals with British "and":
//!   `101` → "one hundred and one"; comma-grouped thousands, millions, ...:
//!   `1,250` → "one thousand two hundred and fifty"; 5 or more digits, or a
//!   leading zero, digit by digit: `05` → "zero five"), decimals (`3.14` →
//!   "three point one four"), negatives (`-5` → "minus five"), ordinals up to
//!   999 (`21st` → "twenty first"), percentages (`50%` → "fifty percent"),
//!   dollar amounts (`$3.50` → "three dollars fifty cents"), and spaces before
//!   `.,!?;:` removed (`Hello !` → "Hello!");
//! - Chinese: integers below 10¹² read with 十/百/千/万/亿, 零 and 两 as NeMo
//!   does (`12000` → 一万两千, `100010` → 十万零一十), leading zeros digit by
//!   digit (`09` → 零九), decimals (`3.14` → 三点一四), negatives (`-5` →
//!   负五), percentages (`50%` → 百分之五十, `100%` → 百分之百).
//!
//! What NeMo does that this does not (and [`RuleVerbalizer::supports`] then
//! answers `false`): English four-digit numbers (years: `1990` → "nineteen
//! ninety", `2005` → "two thousand five"), dates and month names, times
//! (`3:30`), telephone numbers, fractions (`1/2`), measures and units
//! (`10km`, `5 kg`), currencies other than `$`, numbers glued to letters
//! (`4B`, `x2`), roman numerals (`World War II`), the abbreviations and
//! symbols of NeMo's whitelists (`Dr.` → "doctor", `e.g.`, `=`, `+`, `~`, `#`,
//! `@`, Greek letters, ...), e-mail addresses and URLs; Chinese years (`2000年`
//! → 二零零零年), dates, times, fractions, `15号` → 十五日, money (`$5` →
//! 五美元), units (`5kg` → 五千克), comma-grouped numbers, numbers next to
//! Latin letters (`iPhone15`) or followed by other than punctuation and a
//! list of common classifiers, and NeMo's Chinese quirks (`5-3` → 五负三,
//! `0.5分` → 零.五分). NeMo's English whitelist also rewrites about 1,700
//! rare words and abbreviations without a dot (`cm`, `aka`, ...); only the
//! dotted abbreviations and the weekday, `No` and `TV` entries are recognised
//! here, so a text using one of the others is wrongly claimed as supported.

use super::{is_py_space, Language};

/// The reference's number verbaliser (NeMo's `Normalizer.normalize`), for
/// one language.
pub trait Verbalizer {
    /// `text` with numbers and symbols spelled out.
    fn verbalize(&self, language: Language, text: &str) -> String;
}

/// The rule-based verbaliser described in the [module](self) documentation.
///
/// ```
/// use models::indextts2::text::{Language, RuleVerbalizer, Verbalizer};
///
/// let v = RuleVerbalizer;
/// assert_eq!(v.verbalize(Language::En, "It costs $3.50 , not 1,250."),
///            "It costs three dollars fifty cents, not one thousand two hundred and fifty.");
/// assert_eq!(v.verbalize(Language::Zh, "共12000人，湿度50%"), "共一万两千人，湿度百分之五十");
/// assert!(RuleVerbalizer::supports(Language::En, "I have 3 cats."));
/// assert!(!RuleVerbalizer::supports(Language::En, "In 1990."));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleVerbalizer;

impl Verbalizer for RuleVerbalizer {
    fn verbalize(&self, language: Language, text: &str) -> String {
        match language {
            Language::En => en_verbalize(text),
            Language::Zh => zh_verbalize(text),
        }
    }
}

impl RuleVerbalizer {
    /// Whether `text` holds only what this verbaliser reproduces (see the
    /// [module](self) documentation); when `false`, NeMo may read the text
    /// differently.
    pub fn supports(language: Language, text: &str) -> bool {
        match language {
            Language::En => en_supports(text),
            Language::Zh => zh_supports(text),
        }
    }
}

// ---------------------------------------------------------------- English

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [&str; 5] = ["", "thousand", "million", "billion", "trillion"];

fn en_below_100(n: u64) -> String {
    if n < 20 {
        ONES[n as usize].to_string()
    } else if n.is_multiple_of(10) {
        TENS[(n / 10) as usize].to_string()
    } else {
        format!("{} {}", TENS[(n / 10) as usize], ONES[(n % 10) as usize])
    }
}

fn en_below_1000(n: u64, and: bool) -> String {
    let (h, r) = (n / 100, n % 100);
    match (h, r) {
        (0, _) => en_below_100(r),
        (_, 0) => format!("{} hundred", ONES[h as usize]),
        _ if and => format!("{} hundred and {}", ONES[h as usize], en_below_100(r)),
        _ => format!("{} hundred {}", ONES[h as usize], en_below_100(r)),
    }
}

/// A cardinal below 10¹⁵ with NeMo's "and"s.
fn en_cardinal(n: u64, and: bool) -> Option<String> {
    if n == 0 {
        return Some("zero".into());
    }
    let mut groups = Vec::new();
    let mut m = n;
    while m > 0 {
        groups.push(m % 1000);
        m /= 1000;
    }
    if groups.len() > SCALES.len() {
        return None;
    }
    let mut words: Vec<String> = Vec::new();
    for (i, &g) in groups.iter().enumerate().rev() {
        if g == 0 {
            continue;
        }
        let mut part = en_below_1000(g, and);
        if i == 0 && and && g < 100 && !words.is_empty() {
            part = format!("and {part}");
        }
        if i > 0 {
            part = format!("{part} {}", SCALES[i]);
        }
        words.push(part);
    }
    Some(words.join(" "))
}

fn en_digits(s: &str) -> String {
    s.bytes()
        .map(|b| ONES[(b - b'0') as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// An unsigned integer as NeMo reads it, or `None` for the forms it reads
/// otherwise (four digits: years).
fn en_integer(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    if s.contains(',') {
        let mut parts = s.split(',');
        let head = parts.next()?;
        let ok_head = (1..=3).contains(&head.len())
            && !head.starts_with('0')
            && head.bytes().all(|b| b.is_ascii_digit());
        let tail: Vec<&str> = parts.collect();
        let ok_tail = tail
            .iter()
            .all(|p| p.len() == 3 && p.bytes().all(|b| b.is_ascii_digit()));
        if !ok_head || !ok_tail {
            return None;
        }
        return en_cardinal(s.replace(',', "").parse().ok()?, true);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s == "0" {
        return Some("zero".into());
    }
    if s.starts_with('0') || s.len() >= 5 {
        return Some(en_digits(s));
    }
    if s.len() == 4 {
        return None;
    }
    en_cardinal(s.parse().ok()?, true)
}

/// An integer part that may carry a sign, decimals or a percent: `0` or
/// a cardinal (no leading zero, no four-digit year).
fn en_plain_integer(s: &str) -> Option<String> {
    if s != "0" && s.starts_with('0') {
        return None;
    }
    if !s.contains(',') && s.len() >= 5 {
        return None;
    }
    en_integer(s)
}

fn en_ordinal_word(word: &str) -> String {
    match word {
        "one" => "first".into(),
        "two" => "second".into(),
        "three" => "third".into(),
        "five" => "fifth".into(),
        "eight" => "eighth".into(),
        "nine" => "ninth".into(),
        "twelve" => "twelfth".into(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    }
}

fn en_number(core: &str) -> Option<String> {
    if let Some(rest) = core.strip_prefix('$') {
        let (d, c) = match rest.split_once('.') {
            Some((d, c)) => (d, Some(c)),
            None => (rest, None),
        };
        let dollars: u64 = d.replace(',', "").parse().ok()?;
        let dollar_words = en_plain_integer(d)?;
        let cents: u64 = match c {
            None => 0,
            Some(c) if (1..=2).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) => {
                c.parse::<u64>().ok()? * if c.len() == 1 { 10 } else { 1 }
            }
            Some(_) => return None,
        };
        let mut parts = Vec::new();
        if dollars > 0 {
            let unit = if dollars == 1 { "dollar" } else { "dollars" };
            parts.push(format!("{dollar_words} {unit}"));
        }
        if cents > 0 {
            let unit = if cents == 1 { "cent" } else { "cents" };
            parts.push(format!("{} {unit}", en_cardinal(cents, true)?));
        }
        return (!parts.is_empty()).then(|| parts.join(" "));
    }
    let (negative, body) = match core.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, core),
    };
    let (body, percent) = match body.strip_suffix('%') {
        Some(b) => (b, true),
        None => (body, false),
    };
    let mut out = if let Some((int, frac)) = body.split_once('.') {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        format!("{} point {}", en_plain_integer(int)?, en_digits(frac))
    } else if !negative && !percent {
        if let Some(n) = ["st", "nd", "rd", "th"]
            .iter()
            .find_map(|suffix| body.strip_suffix(suffix).map(|n| (n, *suffix)))
        {
            let (digits, suffix) = n;
            if digits.is_empty() || digits.len() > 3 || digits.starts_with('0') {
                return None;
            }
            let value: u64 = digits.parse().ok()?;
            let expected = match (value % 100, value % 10) {
                (11..=13, _) => "th",
                (_, 1) => "st",
                (_, 2) => "nd",
                (_, 3) => "rd",
                _ => "th",
            };
            if suffix != expected {
                return None;
            }
            let cardinal = en_cardinal(value, false)?;
            let (head, last) = match cardinal.rsplit_once(' ') {
                Some((h, l)) => (format!("{h} "), l.to_string()),
                None => (String::new(), cardinal),
            };
            return Some(format!("{head}{}", en_ordinal_word(&last)));
        }
        en_integer(body)?
    } else {
        en_plain_integer(body)?
    };
    if percent {
        out.push_str(" percent");
    }
    if negative {
        out = format!("minus {out}");
    }
    Some(out)
}

const LEAD: &[char] = &['"', '\'', '(', '['];
const TRAIL: &[char] = &['.', ',', '!', '?', ';', ':', '"', '\'', ')', ']'];
const STOPS: &[char] = &['.', ',', '!', '?', ';', ':'];

/// A whitespace-separated token cut into leading punctuation, core and
/// trailing punctuation.
fn en_split(token: &str) -> (&str, &str, &str) {
    let core_start = token.len() - token.trim_start_matches(LEAD).len();
    let rest = &token[core_start..];
    let core = rest.trim_end_matches(TRAIL);
    (&token[..core_start], core, &rest[core.len()..])
}

fn en_verbalize(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for token in text.split(is_py_space).filter(|t| !t.is_empty()) {
        if !out.is_empty() && token.chars().all(|c| STOPS.contains(&c)) {
            if let Some(last) = out.last_mut() {
                last.push_str(token);
            }
            continue;
        }
        let (lead, core, trail) = en_split(token);
        let core = if core.bytes().any(|b| b.is_ascii_digit()) {
            en_number(core).unwrap_or_else(|| core.to_string())
        } else {
            core.to_string()
        };
        out.push(format!("{lead}{core}{trail}"));
    }
    out.join(" ")
}

/// NeMo's English whitelist entries this recognises: the dotted
/// abbreviations, weekdays, `No`, `TV`, `AC`, `VOL`.
const EN_WHITELIST: &[&str] = &[
    "Aka.", "Apt.", "Bldg.", "Capt.", "Co.", "Col.", "Dr.", "Drs.", "Esq.", "Ft.", "Gen.", "Gov.",
    "Hon.", "IMDb.", "Io.", "Jr.", "Lt.", "Ltd.", "Maj.", "Mr.", "Mrs.", "Ms.", "Mt.", "Rev.",
    "Sgt.", "aka.", "apt.", "bldg.", "dept.", "est.", "etc.", "io.", "jr.", "prof.", "vol.", "vs.",
    "Mr", "Mrs", "Ms", "AC", "Mon", "Tu", "Wed", "Th", "Thur", "Thurs", "Fri", "Sat", "Sun", "No.",
    "No", "NO", "NO.", "VOL", "VOL.", "TV", "vs", "vol", "dept", "ltd",
];

/// Words NeMo reads as units or dates next to a number.
const EN_NUMBER_NEIGHBOURS: &[&str] = &[
    "kg",
    "g",
    "mg",
    "km",
    "m",
    "cm",
    "mm",
    "ml",
    "l",
    "lb",
    "lbs",
    "oz",
    "ft",
    "in",
    "mi",
    "mph",
    "s",
    "h",
    "min",
    "hr",
    "hrs",
    "sec",
    "ms",
    "GB",
    "MB",
    "KB",
    "TB",
    "Hz",
    "kHz",
    "MHz",
    "GHz",
    "W",
    "kW",
    "V",
    "A",
    "mA",
    "C",
    "F",
    "K",
    "am",
    "pm",
    "AM",
    "PM",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Sept",
    "Oct",
    "Nov",
    "Dec",
];

fn en_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || is_py_space(c)
        || ".,!?;:'\"-()[]$%<>".contains(c)
        || (('\u{c0}'..='\u{24f}').contains(&c) && c.is_alphabetic())
        || ('\u{1f300}'..='\u{1faff}').contains(&c)
        || ('\u{2010}'..='\u{2027}').contains(&c)
}

fn is_roman(word: &str) -> bool {
    word.len() >= 2 && word.chars().all(|c| "IVXLCDM".contains(c))
}

fn en_supports(text: &str) -> bool {
    if !text.chars().all(en_char_ok) {
        return false;
    }
    let tokens: Vec<&str> = text.split(is_py_space).filter(|t| !t.is_empty()).collect();
    let cores: Vec<&str> = tokens.iter().map(|t| en_split(t).1).collect();
    for (i, token) in tokens.iter().enumerate() {
        let (lead, core, trail) = en_split(token);
        if core.is_empty() {
            // Punctuation only: a lone dash, quotes, stops.
            if lead.contains(['$', '%', '<', '>']) || trail.contains(['$', '%']) {
                return false;
            }
            continue;
        }
        let dotted = format!("{core}.");
        if EN_WHITELIST.contains(&core)
            || (trail.starts_with('.') && EN_WHITELIST.contains(&dotted.as_str()))
        {
            return false;
        }
        if core.bytes().any(|b| b.is_ascii_digit()) {
            if en_number(core).is_none() || core.contains(['<', '>']) {
                return false;
            }
            let near = |j: Option<usize>| {
                j.and_then(|j| cores.get(j))
                    .is_some_and(|w| EN_NUMBER_NEIGHBOURS.contains(w))
            };
            if near(i.checked_sub(1)) || near(i.checked_add(1)) {
                return false;
            }
            continue;
        }
        if core.contains(['$', '%']) || is_roman(core) {
            return false;
        }
        let word_ok = core
            .split("<H>")
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_alphabetic() || "'-".contains(c)));
        if !word_ok {
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------- Chinese

use crate::text::zh_numbers::{self, Liang, DIGITS as ZH_DIGITS};

/// A cardinal below 10¹² as NeMo's Chinese grammar reads it (the shared
/// grammar of [`zh_numbers`] with NeMo's 两).
fn zh_cardinal(n: u64) -> Option<String> {
    if n >= 1_000_000_000_000 {
        return None;
    }
    zh_numbers::cardinal(&n.to_string(), Liang::Nemo)
}

/// Digits as NeMo reads an integer: leading zeros one by one, then the
/// cardinal.
fn zh_integer(s: &str) -> Option<String> {
    let rest = s.trim_start_matches('0');
    if rest.is_empty() {
        return (s == "0").then(|| "零".to_string());
    }
    let zeros = "零".repeat(s.len() - rest.len());
    Some(zeros + &zh_cardinal(rest.parse().ok()?)?)
}

/// A number at the start of `s`: `-?\d+(\.\d+)?%?`, as (byte length,
/// negative, integer part, decimals, percent).
struct ZhNumber<'a> {
    len: usize,
    negative: bool,
    int: &'a str,
    frac: Option<&'a str>,
    percent: bool,
}

fn zh_number_at(s: &str, sign_allowed: bool) -> Option<ZhNumber<'_>> {
    let b = s.as_bytes();
    let mut i = 0;
    let negative = sign_allowed && b.first() == Some(&b'-');
    if negative {
        i = 1;
    }
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == int_start {
        return None;
    }
    let int = &s[int_start..i];
    let mut frac = None;
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        frac = Some(&s[start..i]);
    }
    let percent = b.get(i) == Some(&b'%');
    if percent {
        i += 1;
    }
    Some(ZhNumber {
        len: i,
        negative,
        int,
        frac,
        percent,
    })
}

fn zh_read(n: &ZhNumber<'_>) -> Option<String> {
    let mut out = String::new();
    if n.negative {
        out.push('负');
    }
    if n.percent {
        out.push_str("百分之");
    }
    if n.percent && n.int == "100" && n.frac.is_none() {
        out.push('百');
        return Some(out);
    }
    out.push_str(&zh_integer(n.int)?);
    if let Some(frac) = n.frac {
        out.push('点');
        out.extend(frac.bytes().map(|d| ZH_DIGITS[(d - b'0') as usize]));
    }
    Some(out)
}

fn is_ideograph(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// Whether a `-` right after `prev` starts a negative number.
fn zh_sign_allowed(prev: Option<char>) -> bool {
    match prev {
        None => true,
        Some(c) => !c.is_ascii_alphanumeric() && !matches!(c, '.' | '-' | '_'),
    }
}

fn zh_collapse_spaces(text: &str) -> String {
    text.split(is_py_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn zh_verbalize(text: &str) -> String {
    let text = zh_collapse_spaces(text);
    let mut out = String::with_capacity(text.len() * 2);
    let mut pos = 0;
    let mut prev: Option<char> = None;
    while let Some(c) = text[pos..].chars().next() {
        let starts_number = c.is_ascii_digit() || (c == '-' && zh_sign_allowed(prev));
        if starts_number && !prev.is_some_and(|p| p.is_ascii_digit()) {
            if let Some(n) = zh_number_at(&text[pos..], zh_sign_allowed(prev)) {
                if let Some(read) = zh_read(&n) {
                    out.push_str(&read);
                    prev = text[..pos + n.len].chars().next_back();
                    pos += n.len;
                    continue;
                }
            }
        }
        out.push(c);
        prev = Some(c);
        pos += c.len_utf8();
    }
    out
}

/// CJK and full-width punctuation NeMo leaves alone.
fn zh_is_punct(c: char) -> bool {
    "，。！？、；：“”‘’（）《》【】「」『』…—～·,.!?;'\"()[]".contains(c)
}

/// Characters after which an integer is read as a plain cardinal.
const ZH_CLASSIFIERS: &str = "个人页名岁次位本只条天万亿倍件张种家台辆度世多余月日";

fn zh_char_ok(c: char) -> bool {
    let fullwidth_alnum = ('\u{ff10}'..='\u{ff19}').contains(&c)
        || ('\u{ff21}'..='\u{ff3a}').contains(&c)
        || ('\u{ff41}'..='\u{ff5a}').contains(&c);
    (!fullwidth_alnum && !"$/:@#&*+=^|\\%~¥€£°℃".contains(c) && !c.is_control()) || is_py_space(c)
}

fn zh_supports(text: &str) -> bool {
    let text = zh_collapse_spaces(text);
    let mut pos = 0;
    let mut prev: Option<char> = None;
    while let Some(c) = text[pos..].chars().next() {
        let sign = c == '-' && zh_sign_allowed(prev);
        if c.is_ascii_digit() || (sign && text[pos + 1..].starts_with(|d: char| d.is_ascii_digit()))
        {
            let prev_ok = match prev {
                None => true,
                Some(p) => is_py_space(p) || is_ideograph(p) || zh_is_punct(p) || "<>".contains(p),
            };
            let Some(n) = zh_number_at(&text[pos..], sign) else {
                return false;
            };
            let after = &text[pos + n.len..];
            let next = after.chars().next();
            let next_is_stop = match next {
                None => true,
                Some(d) => {
                    is_py_space(d)
                        || "<".contains(d)
                        || (zh_is_punct(d)
                            && !(d.is_ascii()
                                && after[1..].starts_with(|e: char| e.is_ascii_digit())))
                }
            };
            let next_ok = next_is_stop
                || match (next, n.frac.is_some(), n.percent) {
                    (Some(d), _, true) => d == '的',
                    (Some(_), true, _) if n.negative => false,
                    (Some(d), true, _) => "万亿元".contains(d),
                    (Some(d), false, false) => ZH_CLASSIFIERS.contains(d),
                    (None, _, _) => true,
                };
            let int_ok = if n.frac.is_some() || n.negative || n.percent {
                n.int == "0" || !n.int.starts_with('0')
            } else {
                !n.int.trim_start_matches('0').is_empty() || n.int == "0"
            };
            let hundred_ok = !(n.percent && n.int == "100" && n.frac.is_some());
            if !(prev_ok && next_ok && int_ok && hundred_ok && zh_read(&n).is_some()) {
                return false;
            }
            prev = text[..pos + n.len].chars().next_back();
            pos += n.len;
            continue;
        }
        if !zh_char_ok(c) {
            return false;
        }
        prev = Some(c);
        pos += c.len_utf8();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_cardinals() {
        let cases = [
            (0, "zero"),
            (13, "thirteen"),
            (40, "forty"),
            (101, "one hundred and one"),
            (1001, "one thousand and one"),
            (2_500_000, "two million five hundred thousand"),
        ];
        for (n, words) in cases {
            assert_eq!(en_cardinal(n, true).as_deref(), Some(words), "{n}");
        }
        assert_eq!(en_number("111th").as_deref(), Some("one hundred eleventh"));
        assert_eq!(en_number("12nd"), None);
        assert_eq!(en_number("1990"), None);
    }

    #[test]
    fn chinese_cardinals() {
        let cases = [
            (10, "十"),
            (110, "一百一十"),
            (2000, "两千"),
            (22222, "两万两千二百二十二"),
            (100010, "十万零一十"),
            (300000002, "三亿零二"),
            (2000000000, "二十亿"),
        ];
        for (n, words) in cases {
            assert_eq!(zh_cardinal(n).as_deref(), Some(words), "{n}");
        }
    }
}
