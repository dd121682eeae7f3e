//! The text front end, as Piper's: espeak-ng IPA phonemes per clause, Unicode
//! NFD, language-switch flags removed, clause punctuation kept, sentences
//! split where espeak ends them, and ids `^ _ p1 _ p2 _ … pn _ $`.
//!
//! Piper links a fork of espeak-ng that reports each clause's terminator; the
//! stock library (Debian's 1.51, used here) does not, so the terminator is read
//! from the text espeak consumed for the clause.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::sync::Mutex;

use unicode_normalization::UnicodeNormalization;

use crate::Error;

const BOS: char = '^';
const EOS: char = '$';
const PAD: char = '_';

// espeak-ng's C API (espeak_ng.h, speak_lib.h): the calls the front end needs.
// Initialisation goes through the espeak_ng_* calls, which return a status
// where the older espeak_Initialize calls exit() when the data is missing.
#[link(name = "espeak-ng")]
extern "C" {
    fn espeak_ng_InitializePath(path: *const c_char);
    fn espeak_ng_Initialize(context: *mut *mut c_void) -> u32;
    fn espeak_ng_ClearErrorContext(context: *mut *mut c_void);
    fn espeak_ng_GetStatusCodeMessage(status: u32, buffer: *mut c_char, length: usize);
    fn espeak_ng_InitializeOutput(mode: u32, buffer_length: c_int, device: *const c_char) -> u32;
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_TextToPhonemes(
        textptr: *mut *const c_void,
        textmode: c_int,
        phonememode: c_int,
    ) -> *const c_char;
}

/// `ENOUTPUT_MODE_SYNCHRONOUS`: no audio device, no background thread.
const ENOUTPUT_MODE_SYNCHRONOUS: u32 = 1;
/// `ENS_OK`.
const ENS_OK: u32 = 0;
/// `espeakCHARS_UTF8`.
const CHARS_UTF8: c_int = 1;
/// IPA phoneme names.
const PHONEMES_IPA: c_int = 0x02;

/// espeak-ng keeps global state: one caller at a time, and the voice last set.
static ESPEAK: Mutex<Option<String>> = Mutex::new(None);

/// Loads espeak-ng's data (from `ESPEAK_DATA_PATH` when set, else the
/// library's default) for synchronous use. Called once, under [`ESPEAK`].
fn initialize_espeak() -> Result<(), Error> {
    let failed = |what: &str, status: u32| {
        let mut buf = [0 as c_char; 256];
        // SAFETY: the buffer is writable for its whole length, which is passed.
        unsafe { espeak_ng_GetStatusCodeMessage(status, buf.as_mut_ptr(), buf.len()) };
        // SAFETY: espeak-ng writes a NUL-terminated message within the length given.
        let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        Error::Phonemizer(format!(
            "espeak-ng {what} failed: {msg} (is espeak-ng-data installed, or ESPEAK_DATA_PATH right? run scripts/install-deps.sh)"
        ))
    };
    let mut context: *mut c_void = std::ptr::null_mut();
    // SAFETY: a null path selects ESPEAK_DATA_PATH or the default; `context`
    // is a valid out-pointer, cleared (freed) right after the call.
    let status = unsafe {
        espeak_ng_InitializePath(std::ptr::null());
        let status = espeak_ng_Initialize(&mut context);
        espeak_ng_ClearErrorContext(&mut context);
        status
    };
    if status != ENS_OK {
        return Err(failed("initialisation", status));
    }
    // SAFETY: synchronous mode opens no device; a null device name is allowed.
    let status =
        unsafe { espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, 0, std::ptr::null()) };
    if status != ENS_OK {
        return Err(failed("output setup", status));
    }
    Ok(())
}

/// Phonemes of one sentence.
pub type Sentence = Vec<char>;

/// Text to phoneme ids for one voice.
#[derive(Debug, Clone)]
pub struct Phonemizer {
    voice: String,
    id_map: HashMap<char, Vec<i64>>,
}

/// The ids of one sentence and what could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceIds {
    /// `^ _ p1 _ … pn _ $`.
    pub ids: Vec<i64>,
    /// Phonemes without an id in the voice's map (skipped).
    pub unknown: usize,
}

impl Phonemizer {
    /// A front end for espeak voice `voice` (e.g. `en-us`) and the voice's
    /// `phoneme_id_map`.
    ///
    /// ```no_run
    /// use std::collections::HashMap;
    /// let map: HashMap<String, Vec<i64>> = [("^", 1), ("_", 0), ("$", 2), ("h", 20)]
    ///     .into_iter().map(|(k, v)| (k.to_string(), vec![v])).collect();
    /// let p = models::Phonemizer::new("en-us", &map)?;
    /// let sentences = p.phonemize("Hello there.")?;
    /// let ids = p.to_ids(&sentences[0]);
    /// assert_eq!(ids.ids[0], 1);
    /// # Ok::<(), models::Error>(())
    /// ```
    pub fn new(voice: &str, phoneme_id_map: &HashMap<String, Vec<i64>>) -> Result<Self, Error> {
        let mut id_map = HashMap::new();
        for (k, v) in phoneme_id_map {
            let mut chars = k.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                id_map.insert(c, v.clone());
            }
        }
        for needed in [BOS, EOS, PAD] {
            if !id_map.contains_key(&needed) {
                return Err(Error::Config(format!(
                    "phoneme_id_map has no entry for {needed:?}"
                )));
            }
        }
        Ok(Self {
            voice: voice.to_owned(),
            id_map,
        })
    }

    /// IPA phonemes of `text`, one list per sentence.
    pub fn phonemize(&self, text: &str) -> Result<Vec<Sentence>, Error> {
        let mut guard = ESPEAK
            .lock()
            .map_err(|_| Error::Phonemizer("espeak-ng lock poisoned".into()))?;
        if guard.is_none() {
            initialize_espeak()?;
            *guard = Some(String::new());
        }
        if guard.as_deref() != Some(self.voice.as_str()) {
            let name = CString::new(self.voice.as_str())
                .map_err(|_| Error::Phonemizer("voice name contains NUL".into()))?;
            // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
            let rc = unsafe { espeak_SetVoiceByName(name.as_ptr()) };
            if rc != 0 {
                return Err(Error::Phonemizer(format!(
                    "espeak-ng has no voice {:?} (code {rc})",
                    self.voice
                )));
            }
            *guard = Some(self.voice.clone());
        }

        let mut sentences: Vec<Sentence> = Vec::new();
        let mut current: Option<Sentence> = None;
        // espeak reads NUL-terminated text; a NUL inside would end it early.
        let clean: String = text
            .chars()
            .map(|c| if c == '\0' { ' ' } else { c })
            .collect();
        let Ok(c_text) = CString::new(clean) else {
            return Ok(sentences);
        };
        let start = c_text.as_ptr();
        let len = c_text.as_bytes().len();
        let mut ptr: *const c_void = start.cast();
        while !ptr.is_null() {
            let before = ptr as usize - start as usize;
            // SAFETY: `ptr` points into `c_text` (NUL-terminated, alive for the
            // loop); espeak advances it past one clause or sets it to null at
            // the end. The returned buffer is espeak's, valid until the next call,
            // and is copied at once.
            let phonemes = unsafe {
                let out = espeak_TextToPhonemes(&mut ptr, CHARS_UTF8, PHONEMES_IPA);
                if out.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(out).to_string_lossy().into_owned()
                }
            };
            let after = if ptr.is_null() {
                len
            } else {
                (ptr as usize - start as usize).min(len)
            };
            let consumed = String::from_utf8_lossy(&c_text.as_bytes()[before.min(after)..after]);
            // espeak reads one character of the next clause ahead; leave it out.
            let clause_text = if ptr.is_null() {
                &consumed[..]
            } else {
                consumed
                    .char_indices()
                    .last()
                    .map_or("", |(i, _)| &consumed[..i])
            };
            let terminator = clause_terminator(clause_text);
            let sentence = current.get_or_insert_with(Vec::new);
            push_clause(sentence, &phonemes);
            if let Some(p) = terminator {
                sentence.push(p);
                if matches!(p, ',' | ':' | ';') {
                    sentence.push(' ');
                }
            }
            if matches!(terminator, Some('.' | '?' | '!')) {
                if let Some(s) = current.take() {
                    sentences.push(s);
                }
            }
            if after >= len {
                break;
            }
        }
        if let Some(s) = current.take().filter(|s| !s.is_empty()) {
            sentences.push(s);
        }
        sentences.retain(|s| s.iter().any(|c| !c.is_whitespace()));
        Ok(sentences)
    }

    /// Ids of one sentence: `^ _ p1 _ … pn _ $`, unknown phonemes skipped and counted.
    pub fn to_ids(&self, sentence: &[char]) -> SentenceIds {
        let mut ids = Vec::with_capacity(sentence.len() * 2 + 3);
        let pad = &self.id_map[&PAD];
        ids.extend_from_slice(&self.id_map[&BOS]);
        ids.extend_from_slice(pad);
        let mut unknown = 0;
        for c in sentence {
            match self.id_map.get(c) {
                Some(v) => {
                    ids.extend_from_slice(v);
                    ids.extend_from_slice(pad);
                }
                None => unknown += 1,
            }
        }
        ids.extend_from_slice(&self.id_map[&EOS]);
        SentenceIds { ids, unknown }
    }
}

/// Appends a clause's phonemes: NFD, without `(lang)` switch flags.
fn push_clause(sentence: &mut Sentence, phonemes: &str) {
    let mut in_flag = false;
    for c in phonemes.nfd() {
        match (in_flag, c) {
            (true, ')') => in_flag = false,
            (true, _) => {}
            (false, '(') => in_flag = true,
            (false, '\n' | '\r') => {}
            (false, c) => sentence.push(c),
        }
    }
}

/// The punctuation that ended a clause, read from the text espeak consumed.
/// An ellipsis is a pause inside the sentence, as upstream reads it: no mark.
fn clause_terminator(consumed: &str) -> Option<char> {
    let text = consumed.trim_end_matches(|c: char| c.is_whitespace() || c == '\0');
    if text.ends_with("..") || text.ends_with('…') {
        return None;
    }
    let last = text.chars().last()?;
    matches!(last, '.' | '?' | '!' | ',' | ':' | ';').then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> HashMap<String, Vec<i64>> {
        [
            ("_", 0),
            ("^", 1),
            ("$", 2),
            (" ", 3),
            ("a", 14),
            ("b", 15),
            (".", 10),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v]))
        .collect()
    }

    #[test]
    fn ids_are_bos_pad_interspersed_eos_and_unknowns_are_counted() {
        let p = Phonemizer::new("en-us", &map()).unwrap();
        let ids = p.to_ids(&['a', 'ʒ', 'b', '.']);
        assert_eq!(ids.ids, vec![1, 0, 14, 0, 15, 0, 10, 0, 2]);
        assert_eq!(ids.unknown, 1);
    }

    #[test]
    fn language_flags_are_removed_and_text_decomposed() {
        let mut s = Vec::new();
        push_clause(&mut s, "(en)hˈɛ(fr)ç");
        assert_eq!(s, vec!['h', 'ˈ', 'ɛ', 'c', '\u{327}']);
    }

    #[test]
    fn clause_terminators() {
        assert_eq!(clause_terminator("Hello there. "), Some('.'));
        assert_eq!(clause_terminator("well,"), Some(','));
        assert_eq!(clause_terminator("no end"), None);
        assert_eq!(clause_terminator("wait…"), None);
        assert_eq!(clause_terminator("a moment... "), None);
    }

    #[test]
    fn espeak_splits_sentences_and_keeps_punctuation() {
        let p = Phonemizer::new("en-us", &map()).unwrap();
        let s = p.phonemize("Hello there. How are you, my friend?").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].last(), Some(&'.'));
        assert_eq!(s[1].last(), Some(&'?'));
        assert!(s[1].windows(2).any(|w| w == [',', ' ']));
        assert!(p.phonemize("   ").unwrap().is_empty());
        assert!(p.phonemize("a\0b").is_ok());
    }
}
