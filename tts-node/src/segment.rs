//! Cutting long text into segments synthesised one at a time and joined with
//! a short silence, as IndexTTS2 does: bounded work per call, and natural
//! pauses at sentence ends.

/// Splits `text` into segments of at most `max_chars` characters, at sentence
/// ends where possible, then at clause punctuation, then at spaces, and as a
/// last resort inside a word. Blank segments are never returned.
pub fn split_segments(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(1);
    let mut segments = Vec::new();
    let mut current = String::new();
    for sentence in sentences(text) {
        for piece in cut_to_fit(sentence, max_chars) {
            let joined_len = current.chars().count() + 1 + piece.chars().count();
            if !current.is_empty() && joined_len > max_chars {
                segments.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(piece);
        }
    }
    if !current.trim().is_empty() {
        segments.push(current);
    }
    segments
}

/// Sentences: text up to and including `.`, `!`, `?`, `;`, `…` or a line
/// break, trimmed, blank ones skipped.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(['.', '!', '?', ';', '…', '\n', '。', '！', '？'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Cuts one sentence into pieces of at most `max` characters.
fn cut_to_fit(sentence: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = sentence;
    while rest.chars().count() > max {
        // Byte offset just past the `max`-th character.
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let cut = window
            .rfind([',', ':', '—', '、', '，'])
            .map(|i| i + window[i..].chars().next().map_or(1, char::len_utf8))
            .filter(|&i| i > 0)
            .or_else(|| window.rfind(' ').filter(|&i| i > 0))
            .unwrap_or(limit);
        let (head, tail) = rest.split_at(cut);
        if !head.trim().is_empty() {
            out.push(head.trim());
        }
        rest = tail.trim_start();
    }
    if !rest.trim().is_empty() {
        out.push(rest.trim());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_segment() {
        assert_eq!(
            split_segments("Hello there. How are you?", 100),
            ["Hello there. How are you?"]
        );
    }

    #[test]
    fn sentences_are_packed_up_to_the_limit() {
        let s = split_segments("One two. Three four. Five six.", 20);
        assert_eq!(s, ["One two. Three four.", "Five six."]);
    }

    #[test]
    fn long_sentences_are_cut_at_commas_then_spaces() {
        let text = "alpha beta gamma, delta epsilon zeta eta theta iota kappa lambda mu";
        let s = split_segments(text, 25);
        assert!(s.iter().all(|x| x.chars().count() <= 25), "{s:?}");
        assert_eq!(s[0], "alpha beta gamma,");
        assert_eq!(
            s.join(" ").split_whitespace().count(),
            text.split_whitespace().count()
        );
    }

    #[test]
    fn unbroken_text_is_cut_inside_words() {
        let s = split_segments(&"x".repeat(50), 20);
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|x| x.chars().count() <= 20));
    }

    #[test]
    fn blank_text_has_no_segment() {
        assert!(split_segments(" \n\t ", 10).is_empty());
        assert!(split_segments("...", 10)
            .iter()
            .all(|s| !s.trim().is_empty()));
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let s = split_segments(&"é".repeat(45), 20);
        assert_eq!(s.iter().map(|x| x.chars().count()).sum::<usize>(), 45);
    }
}
