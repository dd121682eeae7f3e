//! The scripts a text is written in, and its runs of each: how the node
//! tells which voice can speak a text, and how a Chinese text with English
//! words in it is cut into the parts each voice speaks.
//!
//! Letters decide: Han characters are [`Script::Han`], Latin letters
//! [`Script::Latin`], letters of other scripts [`Script::Other`] (named,
//! e.g. Cyrillic). Digits, punctuation, symbols and spaces belong to no
//! script; in [`runs`] they join the run they sit in. A number glued to
//! Latin letters (`H200`, `v2`, `RTX4090`) is part of that Latin word; any
//! other number follows the text around it.
//!
//! ```
//! use models::text::script::{runs, scripts, Script};
//!
//! assert_eq!(scripts("服务器CPU使用率"), vec![Script::Han, Script::Latin]);
//! let r: Vec<(Script, &str)> = runs("GPU 显存 3.2 GB", Script::Han).iter().map(|r| (r.script, r.text)).collect();
//! assert_eq!(r, [(Script::Latin, "GPU "), (Script::Han, "显存 3.2 "), (Script::Latin, "GB")]);
//! ```

use serde::Serialize;

/// A writing system, as far as voices are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Script {
    /// Chinese characters (CJK unified ideographs and their extensions).
    Han,
    /// Latin letters (with diacritics).
    Latin,
    /// Letters of another script (Cyrillic, Greek, Arabic, kana, …).
    Other(OtherScript),
}

/// Scripts no voice of ours speaks, named for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OtherScript {
    Cyrillic,
    Greek,
    Arabic,
    Hebrew,
    Kana,
    Hangul,
    Thai,
    Devanagari,
    /// Letters of a script not listed.
    Unknown,
}

impl Script {
    /// `han`, `latin`, `cyrillic`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Script::Han => "han",
            Script::Latin => "latin",
            Script::Other(o) => match o {
                OtherScript::Cyrillic => "cyrillic",
                OtherScript::Greek => "greek",
                OtherScript::Arabic => "arabic",
                OtherScript::Hebrew => "hebrew",
                OtherScript::Kana => "kana",
                OtherScript::Hangul => "hangul",
                OtherScript::Thai => "thai",
                OtherScript::Devanagari => "devanagari",
                OtherScript::Unknown => "other",
            },
        }
    }

    /// The script's name for people: `Chinese characters`, `Latin`, …
    pub fn name(self) -> &'static str {
        match self {
            Script::Han => "Chinese characters",
            Script::Latin => "Latin letters",
            Script::Other(o) => match o {
                OtherScript::Cyrillic => "Cyrillic letters",
                OtherScript::Greek => "Greek letters",
                OtherScript::Arabic => "Arabic letters",
                OtherScript::Hebrew => "Hebrew letters",
                OtherScript::Kana => "Japanese kana",
                OtherScript::Hangul => "Korean hangul",
                OtherScript::Thai => "Thai letters",
                OtherScript::Devanagari => "Devanagari letters",
                OtherScript::Unknown => "letters of another script",
            },
        }
    }
}

impl std::fmt::Display for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The script of `c`, or `None` for a digit, punctuation, a symbol or a
/// space.
pub fn script_of(c: char) -> Option<Script> {
    let u = u32::from(c);
    if super::pinyin::is_hans(c) || matches!(u, 0x2e80..=0x2fdf | 0x3005 | 0x3021..=0x3029) {
        return Some(Script::Han);
    }
    if c.is_ascii_alphabetic() {
        return Some(Script::Latin);
    }
    if c.is_ascii() || !c.is_alphabetic() {
        return None;
    }
    let other = |o| Some(Script::Other(o));
    match u {
        0x00c0..=0x024f | 0x1e00..=0x1eff | 0xff21..=0xff3a | 0xff41..=0xff5a => {
            Some(Script::Latin)
        }
        0x0370..=0x03ff | 0x1f00..=0x1fff => other(OtherScript::Greek),
        0x0400..=0x052f => other(OtherScript::Cyrillic),
        0x0590..=0x05ff => other(OtherScript::Hebrew),
        0x0600..=0x06ff | 0x0750..=0x077f => other(OtherScript::Arabic),
        0x0900..=0x097f => other(OtherScript::Devanagari),
        0x0e00..=0x0e7f => other(OtherScript::Thai),
        0x3040..=0x30ff | 0x31f0..=0x31ff | 0xff66..=0xff9f => other(OtherScript::Kana),
        0x1100..=0x11ff | 0x3130..=0x318f | 0xac00..=0xd7af => other(OtherScript::Hangul),
        _ => other(OtherScript::Unknown),
    }
}

/// The scripts of `text`'s letters, most letters first (ties in
/// [`Script`]'s order).
pub fn scripts(text: &str) -> Vec<Script> {
    let mut counts: Vec<(Script, usize)> = Vec::new();
    for s in text.chars().filter_map(script_of) {
        match counts.iter_mut().find(|(x, _)| *x == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((s, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts.into_iter().map(|(s, _)| s).collect()
}

/// English words that make a Latin run a sentence rather than a term
/// borrowed into another language.
const FUNCTION_WORDS: [&str; 40] = [
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "of", "to", "in", "on", "at",
    "for", "with", "and", "or", "but", "not", "this", "that", "it", "i", "you", "he", "she", "we",
    "they", "my", "your", "his", "her", "our", "their", "from", "by", "as", "do", "does",
];

/// The script of `text` as a whole, the one its main voice must speak:
/// Han characters count one each, Latin words one each (two for an English
/// function word such as `the` or `is`, which make the Latin a sentence
/// rather than a borrowed term), other scripts' words one each; the most
/// wins, Han on a tie. So `服务器CPU使用率`, `GPU 显存 3.2 GB` and
/// `Kubernetes 节点` are Han, `The 北京 office` is Latin. `None` for a text
/// without letters.
pub fn main_script(text: &str) -> Option<Script> {
    let mut counts: Vec<(Script, usize)> = Vec::new();
    let mut add = |s: Script, n: usize| match counts.iter_mut().find(|(x, _)| *x == s) {
        Some((_, c)) => *c += n,
        None => counts.push((s, n)),
    };
    let mut word = String::new();
    let mut word_script: Option<Script> = None;
    let flush = |word: &mut String, ws: &mut Option<Script>, add: &mut dyn FnMut(Script, usize)| {
        if let Some(s) = ws.take() {
            let weight =
                if s == Script::Latin && FUNCTION_WORDS.contains(&word.to_lowercase().as_str()) {
                    2
                } else {
                    1
                };
            add(s, weight);
        }
        word.clear();
    };
    for c in text.chars() {
        match script_of(c) {
            Some(Script::Han) => {
                flush(&mut word, &mut word_script, &mut add);
                add(Script::Han, 1);
            }
            Some(s) => {
                if word_script != Some(s) {
                    flush(&mut word, &mut word_script, &mut add);
                    word_script = Some(s);
                }
                word.push(c);
            }
            None => flush(&mut word, &mut word_script, &mut add),
        }
    }
    flush(&mut word, &mut word_script, &mut add);
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts.first().map(|(s, _)| *s)
}

/// A part of a text in one script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run<'a> {
    /// The script of its letters.
    pub script: Script,
    /// The text, with the digits, punctuation and spaces that belong to it.
    pub text: &'a str,
    /// Byte offset in the whole text.
    pub at: usize,
}

/// `text` cut where its letters change script. Digits, punctuation,
/// symbols and spaces stay with the run before them (so a number is read in
/// the language around it: `显存3.2GB` is 显存3.2 then GB), except that a
/// number right after Latin letters (`H200`) is part of that word; a text
/// that starts without letters gives them to its first run. A text without
/// letters is one run of `fallback`.
pub fn runs(text: &str, fallback: Script) -> Vec<Run<'_>> {
    // The script each character belongs to, before filling the gaps.
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut owner: Vec<Option<Script>> = chars.iter().map(|(_, c)| script_of(*c)).collect();
    // Digits (and a decimal point or dash between them).
    let n = chars.len();
    let is_num = |c: char| c.is_ascii_digit();
    let mut i = 0;
    while i < n {
        if is_num(chars[i].1) {
            let start = i;
            while i < n
                && (is_num(chars[i].1)
                    || (matches!(chars[i].1, '.' | '-') && i + 1 < n && is_num(chars[i + 1].1)))
            {
                i += 1;
            }
            // Right after Latin letters (`H200`, `v2`) the digits are part
            // of the word; before them (`3.2GB`, `4K`) they are read in the
            // language around them, and the letters are a word of their own.
            let before = start.checked_sub(1).and_then(|b| owner[b]);
            if before == Some(Script::Latin) {
                for o in &mut owner[start..i] {
                    *o = Some(Script::Latin);
                }
            }
        } else {
            i += 1;
        }
    }
    // Everything else joins the run before it (or the first run).
    let first = owner.iter().flatten().next().copied().unwrap_or(fallback);
    let mut current = first;
    let mut out: Vec<Run<'_>> = Vec::new();
    for (k, (at, _)) in chars.iter().enumerate() {
        if let Some(s) = owner[k] {
            current = s;
        }
        match out.last_mut() {
            Some(r) if r.script == current => {}
            _ => out.push(Run {
                script: current,
                text: "",
                at: *at,
            }),
        }
    }
    // Fill in the texts from the starts.
    let ends: Vec<usize> = out
        .iter()
        .skip(1)
        .map(|r| r.at)
        .chain([text.len()])
        .collect();
    for (r, end) in out.iter_mut().zip(ends) {
        r.text = &text[r.at..end];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str) -> Vec<(Script, &str)> {
        runs(text, Script::Latin)
            .iter()
            .map(|r| (r.script, r.text))
            .collect()
    }

    #[test]
    fn letters_decide_the_script() {
        assert_eq!(script_of('中'), Some(Script::Han));
        assert_eq!(script_of('é'), Some(Script::Latin));
        assert_eq!(script_of('Ｇ'), Some(Script::Latin));
        assert_eq!(script_of('я'), Some(Script::Other(OtherScript::Cyrillic)));
        assert_eq!(script_of('か'), Some(Script::Other(OtherScript::Kana)));
        for c in ['3', '，', ' ', '%', '。', '€'] {
            assert_eq!(script_of(c), None, "{c}");
        }
        assert_eq!(scripts("Hello 世界, hi"), vec![Script::Latin, Script::Han]);
        assert_eq!(main_script("服务器CPU使用率"), Some(Script::Han));
        assert_eq!(main_script("GPU 显存 3.2 GB"), Some(Script::Han));
        assert_eq!(main_script("Kubernetes 节点"), Some(Script::Han));
        assert_eq!(main_script("The 北京 office"), Some(Script::Latin));
        assert_eq!(main_script("Hello there."), Some(Script::Latin));
        assert_eq!(
            main_script("Привет, мир"),
            Some(Script::Other(OtherScript::Cyrillic))
        );
        assert_eq!(main_script("123，。"), None);
    }

    #[test]
    fn runs_keep_numbers_with_their_words() {
        assert_eq!(
            cut("服务器CPU使用率达到95%。"),
            [
                (Script::Han, "服务器"),
                (Script::Latin, "CPU"),
                (Script::Han, "使用率达到95%。")
            ]
        );
        assert_eq!(
            cut("Kubernetes 节点"),
            [(Script::Latin, "Kubernetes "), (Script::Han, "节点")]
        );
        assert_eq!(
            cut("用H200跑，"),
            [
                (Script::Han, "用"),
                (Script::Latin, "H200"),
                (Script::Han, "跑，")
            ]
        );
        assert_eq!(
            cut("显存3.2GB了"),
            [
                (Script::Han, "显存3.2"),
                (Script::Latin, "GB"),
                (Script::Han, "了")
            ]
        );
        assert_eq!(cut("“你好”"), [(Script::Han, "“你好”")]);
        assert_eq!(cut("2024"), [(Script::Latin, "2024")]);
        assert_eq!(cut(""), Vec::<(Script, &str)>::new());
    }
}
