//! Mandarin pinyin as pypinyin gives it (0.55: `Pinyin` with the default
//! converter, `NeutralToneWith5Mixin`, style `TONE3`, `errors="ignore"`,
//! no heteronyms), from pypinyin's own dictionaries (`pinyin_dict.json`,
//! `phrases_dict.json`, MIT, shipped in its wheel):
//!
//! 1. the text is cut into runs of Han characters and runs of others (the
//!    others have no pinyin and are left out);
//! 2. each Han run is segmented by forward maximum matching over the phrase
//!    dictionary (pypinyin's `mmseg` with `no_non_phrases`: the longest
//!    prefix that is a phrase, else one character);
//! 3. a phrase takes its readings from the phrase dictionary, which is how
//!    polyphones are read by context (银行 háng, 行走 xíng); any other
//!    character its first reading in the character dictionary;
//! 4. each reading is written with its tone as a digit at the end (`TONE3`:
//!    `zhōng` → `zhong1`, `lǚ` → `lv3`), `5` for the neutral tone (`de5`).
//!
//! ```no_run
//! use models::text::pinyin::Pinyin;
//!
//! let p = Pinyin::load("cache_hub/fastspeech2/zh_CN-baker".as_ref())?;
//! let read: Vec<String> = p.tone3("银行行长").into_iter().map(|s| s.pinyin).collect();
//! assert_eq!(read, ["yin2", "hang2", "hang2", "zhang3"]);
//! # Ok::<(), models::Error>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::Error;

/// The character dictionary's file name.
pub const PINYIN_DICT: &str = "pinyin_dict.json";
/// The phrase dictionary's file name.
pub const PHRASES_DICT: &str = "phrases_dict.json";

/// One Han character's reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syllable {
    /// Byte offset of the character in the text.
    pub at: usize,
    /// The character.
    pub ch: char,
    /// Its reading in `TONE3`, e.g. `hang2`.
    pub pinyin: String,
}

/// pypinyin's dictionaries, ready to read text.
#[derive(Clone)]
pub struct Pinyin {
    /// Each character's first reading (tone marks).
    chars: HashMap<char, String>,
    /// Each phrase's readings, one per character (tone marks).
    phrases: HashMap<String, Vec<String>>,
    /// Every prefix of a phrase.
    prefixes: HashSet<String>,
}

impl std::fmt::Debug for Pinyin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinyin")
            .field("chars", &self.chars.len())
            .field("phrases", &self.phrases.len())
            .finish()
    }
}

/// Whether `c` is a character pypinyin looks up (its `RE_HANS`).
pub fn is_hans(c: char) -> bool {
    matches!(u32::from(c),
        0x3007
        | 0xe815..=0xe864
        | 0xfa18
        | 0x3400..=0x4dbf
        | 0x4e00..=0x9fff
        | 0xf900..=0xfaff
        | 0x20000..=0x2a6df
        | 0x2a703..=0x2b73f
        | 0x2b740..=0x2b81d
        | 0x2b825..=0x2bf6e
        | 0x2c029..=0x2ce93
        | 0x2d016
        | 0x2d11b..=0x2ebd9
        | 0x2f80a..=0x2fa1f
        | 0x30000..=0x3134a
        | 0x31350..=0x32389)
}

/// A tone-marked vowel (or syllabic consonant) and its `TONE2` spelling.
const MARKED: [(char, &str); 31] = [
    ('ā', "a1"),
    ('á', "a2"),
    ('ǎ', "a3"),
    ('à', "a4"),
    ('ē', "e1"),
    ('é', "e2"),
    ('ě', "e3"),
    ('è', "e4"),
    ('ō', "o1"),
    ('ó', "o2"),
    ('ǒ', "o3"),
    ('ò', "o4"),
    ('ī', "i1"),
    ('í', "i2"),
    ('ǐ', "i3"),
    ('ì', "i4"),
    ('ū', "u1"),
    ('ú', "u2"),
    ('ǔ', "u3"),
    ('ù', "u4"),
    ('ü', "v"),
    ('ǖ', "v1"),
    ('ǘ', "v2"),
    ('ǚ', "v3"),
    ('ǜ', "v4"),
    ('ń', "n2"),
    ('ň', "n3"),
    ('ǹ', "n4"),
    ('ḿ', "m2"),
    ('ế', "ê2"),
    ('ề', "ê4"),
];

/// Marks written as a letter and a combining accent.
const COMBINED: [(&str, &str); 4] = [
    ("m\u{304}", "m1"),
    ("m\u{300}", "m4"),
    ("ê\u{304}", "ê1"),
    ("ê\u{30c}", "ê3"),
];

/// A tone-marked reading in `TONE3` with the neutral tone as 5:
/// `zhōng` → `zhong1`, `lǚ` → `lv3`, `de` → `de5`.
pub fn tone3(marked: &str) -> String {
    let mut s = String::with_capacity(marked.len() + 1);
    for c in marked.chars() {
        match MARKED.iter().find(|(m, _)| *m == c) {
            Some((_, to)) => s.push_str(to),
            None => s.push(c),
        }
    }
    for (from, to) in COMBINED {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    // `^([a-zêü]+)([1-5])([a-zêü]*)$` → \1\3\2: the tone digit to the end.
    let letter = |c: char| c.is_ascii_lowercase() || c == 'ê' || c == 'ü';
    if let Some(pos) = s.find(|c: char| ('1'..='5').contains(&c)) {
        let (head, rest) = s.split_at(pos);
        let (digit, tail) = rest.split_at(1);
        if !head.is_empty() && head.chars().all(letter) && tail.chars().all(letter) {
            s = format!("{head}{tail}{digit}");
        }
    }
    if !s.is_empty() && !s.chars().any(|c| c.is_ascii_digit()) {
        s.push('5');
    }
    s
}

impl Pinyin {
    /// Reads `pinyin_dict.json` and `phrases_dict.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| Error::Io {
                path: path.display().to_string(),
                source: e,
            })
        };
        Self::from_json(&read(PINYIN_DICT)?, &read(PHRASES_DICT)?)
    }

    /// The dictionaries from their JSON: `{"<code point>": "yī,yí"}` and
    /// `{"<phrase>": [["yín"], ["háng"]]}`.
    pub fn from_json(pinyin_dict: &str, phrases_dict: &str) -> Result<Self, Error> {
        let bad = |what: &str, e: String| Error::Config(format!("{what}: {e}"));
        let chars_raw: HashMap<String, String> =
            serde_json::from_str(pinyin_dict).map_err(|e| bad(PINYIN_DICT, e.to_string()))?;
        let mut chars = HashMap::with_capacity(chars_raw.len());
        for (k, v) in chars_raw {
            let code: u32 = k
                .parse()
                .map_err(|_| bad(PINYIN_DICT, format!("key {k:?} is not a code point")))?;
            let Some(c) = char::from_u32(code) else {
                return Err(bad(PINYIN_DICT, format!("{code} is not a character")));
            };
            let first = v.split(',').next().unwrap_or_default().to_owned();
            chars.insert(c, first);
        }
        let phrases_raw: HashMap<String, Vec<Vec<String>>> =
            serde_json::from_str(phrases_dict).map_err(|e| bad(PHRASES_DICT, e.to_string()))?;
        let mut phrases = HashMap::with_capacity(phrases_raw.len());
        let mut prefixes = HashSet::with_capacity(phrases_raw.len() * 2);
        for (k, v) in phrases_raw {
            if v.len() != k.chars().count() {
                return Err(bad(
                    PHRASES_DICT,
                    format!(
                        "{k:?} has {} readings for {} characters",
                        v.len(),
                        k.chars().count()
                    ),
                ));
            }
            for (i, _) in k.char_indices().skip(1) {
                prefixes.insert(k[..i].to_owned());
            }
            prefixes.insert(k.clone());
            let first: Vec<String> = v
                .into_iter()
                .map(|r| r.into_iter().next().unwrap_or_default())
                .collect();
            phrases.insert(k, first);
        }
        Ok(Self {
            chars,
            phrases,
            prefixes,
        })
    }

    /// Whether the dictionary knows a reading of `c`.
    pub fn knows(&self, c: char) -> bool {
        self.chars.contains_key(&c)
    }

    /// pypinyin's segmentation of a run of Han characters: the words, as
    /// byte ranges of `run`.
    fn cut(&self, run: &str) -> Vec<std::ops::Range<usize>> {
        let mut words = Vec::new();
        let mut start = 0;
        while start < run.len() {
            let remain = &run[start..];
            let ends: Vec<usize> = remain
                .char_indices()
                .skip(1)
                .map(|(i, _)| i)
                .chain([remain.len()])
                .collect();
            let mut last_valid = 0;
            let mut broke = false;
            for &end in &ends {
                let word = &remain[..end];
                if self.prefixes.contains(word) {
                    if self.phrases.contains_key(word) {
                        last_valid = end;
                    }
                } else {
                    broke = true;
                    break;
                }
            }
            if last_valid > 0 {
                words.push(start..start + last_valid);
                start += last_valid;
            } else if broke {
                let first = ends[0];
                words.push(start..start + first);
                start += first;
            } else {
                // The whole rest is a prefix but no phrase: one character
                // at a time.
                let mut at = start;
                for &end in &ends {
                    words.push(at..start + end);
                    at = start + end;
                }
                start = run.len();
            }
        }
        words
    }

    /// The `TONE3` reading of every Han character of `text` that has one,
    /// in order (characters without a reading, and everything that is not
    /// Han, are left out, as `errors="ignore"` does).
    pub fn tone3(&self, text: &str) -> Vec<Syllable> {
        let mut out = Vec::new();
        let mut chars = text.char_indices().peekable();
        while let Some(&(start, c)) = chars.peek() {
            if !is_hans(c) {
                chars.next();
                continue;
            }
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if !is_hans(c) {
                    break;
                }
                end = i + c.len_utf8();
                chars.next();
            }
            let run = &text[start..end];
            for word in self.cut(run) {
                let w = &run[word.clone()];
                let phrase = self.phrases.get(w);
                for (k, (i, ch)) in w.char_indices().enumerate() {
                    let marked = match phrase {
                        Some(p) => p.get(k).map(String::as_str),
                        None => self.chars.get(&ch).map(String::as_str),
                    };
                    if let Some(m) = marked.filter(|m| !m.is_empty()) {
                        out.push(Syllable {
                            at: start + word.start + i,
                            ch,
                            pinyin: tone3(m),
                        });
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dicts() -> Pinyin {
        let chars = serde_json::json!({
            (u32::from('银')).to_string(): "yín",
            (u32::from('行')).to_string(): "xíng,háng",
            (u32::from('长')).to_string(): "cháng,zhǎng",
            (u32::from('的')).to_string(): "de,dí,dì",
            (u32::from('绿')).to_string(): "lǜ,lù",
            (u32::from('嗯')).to_string(): "ń,ň",
        });
        let phrases = serde_json::json!({
            "银行": [["yín"], ["háng"]],
            "行长": [["háng"], ["zhǎng"]],
            "银行行长": [["yín"], ["háng"], ["háng"], ["zhǎng"]],
        });
        Pinyin::from_json(&chars.to_string(), &phrases.to_string()).unwrap()
    }

    #[test]
    fn tones_move_to_the_end_and_the_neutral_tone_is_5() {
        assert_eq!(tone3("zhōng"), "zhong1");
        assert_eq!(tone3("lǚ"), "lv3");
        assert_eq!(tone3("lü"), "lv5");
        assert_eq!(tone3("de"), "de5");
        assert_eq!(tone3("ń"), "n2");
        assert_eq!(tone3("m\u{304}"), "m1");
        assert_eq!(tone3("ê\u{30c}"), "ê3");
        assert_eq!(tone3("ér"), "er2");
    }

    #[test]
    fn phrases_give_the_readings_of_polyphones() {
        let p = dicts();
        let read = |t: &str| -> Vec<String> { p.tone3(t).into_iter().map(|s| s.pinyin).collect() };
        assert_eq!(read("银行行长"), ["yin2", "hang2", "hang2", "zhang3"]);
        // Maximum matching: 银行 | 长 (no phrase 行长 across the cut).
        assert_eq!(read("银行长"), ["yin2", "hang2", "chang2"]);
        assert_eq!(read("行长的"), ["hang2", "zhang3", "de5"]);
        // Characters without a reading, and Latin text, are left out.
        assert_eq!(read("行CPU绿?嗯"), ["xing2", "lv4", "n2"]);
        let s = p.tone3("a行");
        assert_eq!((s[0].at, s[0].ch), (1, '行'));
    }

    #[test]
    fn bad_dictionaries_are_refused() {
        assert!(Pinyin::from_json("{\"x\": \"a\"}", "{}").is_err());
        assert!(Pinyin::from_json("{}", "{\"银行\": [[\"yín\"]]}").is_err());
        assert!(Pinyin::from_json("[", "{}").is_err());
    }
}
