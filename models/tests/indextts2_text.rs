//! The IndexTTS2 text front end against the reference (indextts2-inference
//! 2.1.1 `indextts/utils/front.py`, sentencepiece 0.2.1, NeMo text
//! processing 1.1.0): goldens recorded by
//! scripts/make-indextts2-text-fixtures.py under
//! models/tests/fixtures/indextts2/text/.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use models::indextts2::text::{
    split_segments_by_token, tokenize_by_cjk_char, GlossaryEntry, Language, RuleVerbalizer,
    SentencePiece, TextNormalizer, TextTokenizer, Verbalizer,
};
use models::indextts2::Error;
use serde_json::Value;

const MODELS: [&str; 2] = ["bpe_nfkc", "bpe_bytes"];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/indextts2/text")
}

static GOLDEN: LazyLock<Value> = LazyLock::new(|| {
    let text = std::fs::read_to_string(dir().join("golden.json"))
        .expect("golden.json (run scripts/make-indextts2-text-fixtures.py)");
    serde_json::from_str(&text).expect("valid json")
});

fn model(name: &str) -> SentencePiece {
    SentencePiece::open(dir().join(format!("{name}.model"))).expect("fixture model")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|i| u32::try_from(i.as_u64().expect("id")).expect("u32 id"))
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} missing"))
}

fn lang(code: &str) -> Language {
    match code {
        "zh" => Language::Zh,
        "en" => Language::En,
        other => panic!("language {other}"),
    }
}

/// NeMo replayed from the recording: each call must come with the input the
/// reference gave NeMo, in the same order.
#[derive(Clone)]
struct Replay {
    calls: Arc<Vec<(Language, String, String)>>,
    seen: Arc<Mutex<Vec<(Language, String)>>>,
}

impl Replay {
    fn new(calls: &Value) -> Self {
        let calls = calls
            .as_array()
            .expect("nemo calls")
            .iter()
            .map(|c| {
                (
                    lang(str_of(c, "lang")),
                    str_of(c, "input").to_string(),
                    str_of(c, "output").to_string(),
                )
            })
            .collect();
        Self {
            calls: Arc::new(calls),
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

static PLACEHOLDER: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"<(pinyin|n)_.>").unwrap());

/// The text with its pinyin and name placeholders made anonymous, and the
/// placeholders in order. The reference numbers them in the order of a
/// Python set (hash-seed dependent), so only their pattern is compared.
fn canonical(text: &str) -> (String, Vec<String>) {
    let found = PLACEHOLDER
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .collect();
    let anonymous = PLACEHOLDER.replace_all(text, "<$1_*>").into_owned();
    (anonymous, found)
}

impl Verbalizer for Replay {
    fn verbalize(&self, language: Language, text: &str) -> String {
        self.seen
            .lock()
            .expect("lock")
            .push((language, canonical(text).0));
        let (ours, our_names) = canonical(text);
        for (l, input, output) in self.calls.iter() {
            let (theirs, their_names) = canonical(input);
            if *l != language || theirs != ours {
                continue;
            }
            // The recorded output with the reference's placeholders renamed
            // to ours, position by position.
            return PLACEHOLDER
                .replace_all(output, |c: &regex::Captures<'_>| {
                    their_names
                        .iter()
                        .position(|n| n == &c[0])
                        .map_or_else(|| c[0].to_string(), |i| our_names[i].clone())
                })
                .into_owned();
        }
        format!("<no recorded NeMo call for {language:?} {text:?}>")
    }
}

/// The recorded NeMo inputs, as they were.
fn recorded_calls(calls: &Value) -> Vec<(Language, String)> {
    calls
        .as_array()
        .expect("nemo calls")
        .iter()
        .map(|c| (lang(str_of(c, "lang")), str_of(c, "input").to_string()))
        .collect()
}

/// The recorded NeMo inputs, placeholders anonymous.
fn expected_calls(calls: &Value) -> Vec<(Language, String)> {
    recorded_calls(calls)
        .into_iter()
        .map(|(l, input)| (l, canonical(&input).0))
        .collect()
}

#[test]
fn vocabulary_and_special_ids_match() {
    for name in MODELS {
        let sp = model(name);
        let v = &GOLDEN["vocab"][name];
        assert_eq!(
            sp.vocab_size() as u64,
            v["vocab_size"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            i64::from(sp.unk_id()),
            v["unk_id"].as_i64().unwrap(),
            "{name}"
        );
        let (bos, eos, pad) = sp.special_ids();
        assert_eq!(i64::from(bos), v["bos_id"].as_i64().unwrap(), "{name} bos");
        assert_eq!(i64::from(eos), v["eos_id"].as_i64().unwrap(), "{name} eos");
        assert_eq!(i64::from(pad), v["pad_id"].as_i64().unwrap(), "{name} pad");
        let pieces = strings(&v["pieces"]);
        for (id, piece) in pieces.iter().enumerate() {
            let id = u32::try_from(id).unwrap();
            assert_eq!(sp.id_to_piece(id), Some(piece.as_str()), "{name} id {id}");
            assert_eq!(sp.piece_to_id(piece), id, "{name} piece {piece:?}");
        }
        assert_eq!(sp.id_to_piece(pieces.len() as u32), None);
    }
    assert_eq!(model("bpe_nfkc").normalizer_name(), "nmt_nfkc");
    assert!(model("bpe_bytes").byte_fallback());
}

#[test]
fn sentencepiece_encode_matches() {
    let mut checked = 0;
    for name in MODELS {
        let sp = model(name);
        for case in GOLDEN["sentencepiece"][name].as_array().unwrap() {
            let text = str_of(case, "text");
            assert_eq!(
                sp.encode_pieces(text),
                strings(&case["pieces"]),
                "{name}: pieces of {text:?}"
            );
            assert_eq!(
                sp.encode_ids(text),
                ids(&case["ids"]),
                "{name}: ids of {text:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} cases");
}

/// The whole front end with NeMo replayed: every rule-based step must give
/// what the reference gave, on every string.
#[test]
fn front_end_matches_with_nemo_replayed() {
    let cases = GOLDEN["front_end"].as_array().unwrap();
    assert!(cases.len() >= 80);
    let models: BTreeMap<&str, SentencePiece> = MODELS.iter().map(|&n| (n, model(n))).collect();
    for case in cases {
        let text = str_of(case, "text");
        let replay = Replay::new(&case["nemo"]);
        let normalizer = TextNormalizer::new(Box::new(replay.clone()));
        if !text.is_empty() {
            assert_eq!(
                normalizer.normalize(text),
                str_of(case, "normalized"),
                "normalised {text:?}"
            );
            assert_eq!(
                *replay.seen.lock().unwrap(),
                expected_calls(&case["nemo"]),
                "what NeMo is given for {text:?}"
            );
        }
        assert_eq!(
            tokenize_by_cjk_char(str_of(case, "normalized")),
            str_of(case, "cjk"),
            "CJK pre-tokenised {text:?}"
        );
        for (name, sp) in &models {
            let tok = TextTokenizer::new(
                sp.clone(),
                Some(TextNormalizer::new(Box::new(Replay::new(&case["nemo"])))),
            );
            let want = &case["models"][*name];
            let tokens = tok.tokenize(text);
            assert_eq!(
                tokens,
                strings(&want["tokens"]),
                "{name}: tokens of {text:?}"
            );
            assert_eq!(
                tok.encode_ids(text),
                ids(&want["ids"]),
                "{name}: ids of {text:?}"
            );
            let Some(segments) = want["segments"].as_object() else {
                continue;
            };
            for (limit, seg) in segments {
                let limit: usize = limit.parse().unwrap();
                let got = tok.split_segments(&tokens, limit, 0).unwrap();
                let want_tokens: Vec<Vec<String>> = seg["tokens"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(strings)
                    .collect();
                assert_eq!(got, want_tokens, "{name}: segments ({limit}) of {text:?}");
                let want_ids: Vec<Vec<u32>> =
                    seg["ids"].as_array().unwrap().iter().map(ids).collect();
                assert_eq!(
                    tok.segment_ids(text, limit, 0).unwrap(),
                    want_ids,
                    "{name}: segment ids ({limit}) of {text:?}"
                );
            }
        }
    }
}

#[test]
fn glossary_matches() {
    let g = &GOLDEN["glossary"];
    let terms: Vec<(String, GlossaryEntry)> = g["glossary"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(term, v)| {
            let entry = match v {
                Value::String(s) => GlossaryEntry::Same(s.clone()),
                Value::Object(m) => GlossaryEntry::PerLanguage {
                    en: m.get("en").and_then(Value::as_str).map(str::to_string),
                    zh: m.get("zh").and_then(Value::as_str).map(str::to_string),
                },
                other => panic!("glossary value {other}"),
            };
            (term.clone(), entry)
        })
        .collect();
    for case in g["cases"].as_array().unwrap() {
        let text = str_of(case, "text");
        let replay = Replay::new(&case["nemo"]);
        let mut normalizer = TextNormalizer::new(Box::new(replay.clone()));
        normalizer.load_glossary(terms.clone());
        assert_eq!(
            normalizer.normalize(text),
            str_of(case, "normalized"),
            "with glossary: {text:?}"
        );
        assert_eq!(
            *replay.seen.lock().unwrap(),
            expected_calls(&case["nemo"]),
            "{text:?}"
        );
    }
}

#[test]
fn split_segments_matches() {
    let split_tokens = strings(&GOLDEN["split_tokens"]);
    let split_tokens: Vec<&str> = split_tokens.iter().map(String::as_str).collect();
    let cases = GOLDEN["split"].as_array().unwrap();
    assert!(cases.len() >= 200);
    for case in cases {
        let tokens = strings(&case["tokens"]);
        let max = case["max"].as_u64().unwrap() as usize;
        let quick = case["quick"].as_u64().unwrap() as usize;
        let want: Vec<Vec<String>> = case["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(strings)
            .collect();
        assert_eq!(
            split_segments_by_token(&tokens, &split_tokens, max, quick).unwrap(),
            want,
            "split {tokens:?} max {max} quick {quick}"
        );
    }
}

/// Supported / total per key, printed as a table.
#[derive(Default)]
struct Tally(BTreeMap<String, (usize, usize)>);

impl Tally {
    fn add(&mut self, key: &str, supported: bool, input: &str) {
        if !supported {
            println!("{key}: not claimed: {input:?}");
        }
        let e = self.0.entry(key.to_string()).or_default();
        e.0 += usize::from(supported);
        e.1 += 1;
    }
    fn print(&self, what: &str) {
        for (k, (s, t)) in &self.0 {
            println!("{what} {k}: {s}/{t} claimed by RuleVerbalizer, all equal to NeMo");
        }
    }
}

/// The rule-based verbaliser against NeMo: equal on every input it claims to
/// support.
#[test]
fn rule_verbalizer_matches_nemo_where_it_claims_support() {
    let mut tally = Tally::default();
    for code in ["en", "zh"] {
        let language = lang(code);
        for case in GOLDEN["nemo"][code].as_array().unwrap() {
            let input = str_of(case, "input");
            let supported = RuleVerbalizer::supports(language, input);
            tally.add(code, supported, input);
            if supported {
                assert_eq!(
                    RuleVerbalizer.verbalize(language, input),
                    str_of(case, "output"),
                    "{code} verbalised {input:?}"
                );
            }
        }
    }
    tally.print("NeMo corpus");
    for (k, (s, t)) in &tally.0 {
        assert!(2 * s >= *t, "{k}: only {s} of {t} claimed");
    }
}

/// The default normaliser (rule-based verbaliser) on the front-end strings:
/// equal to the reference wherever every verbaliser call is supported.
#[test]
fn default_normalizer_matches_where_supported() {
    let normalizer = TextNormalizer::default();
    let mut tally = Tally::default();
    for case in GOLDEN["front_end"].as_array().unwrap() {
        let text = str_of(case, "text");
        if text.is_empty() {
            continue;
        }
        let calls = recorded_calls(&case["nemo"]);
        let supported = calls
            .iter()
            .all(|(l, input)| RuleVerbalizer::supports(*l, input));
        tally.add(str_of(case, "category"), supported, text);
        if supported {
            assert_eq!(
                normalizer.normalize(text),
                str_of(case, "normalized"),
                "normalised {text:?}"
            );
        }
    }
    tally.print("front end");
    for category in ["en", "en_numbers", "zh", "zh_numbers", "whitespace"] {
        let (s, t) = tally.0[category];
        assert!(2 * s >= t, "{category}: only {s} of {t} claimed");
    }
}

#[test]
fn malformed_models_are_errors() {
    let refused = SentencePiece::open(dir().join("unigram.model")).unwrap_err();
    assert!(
        refused.to_string().contains("unigram.model") && refused.to_string().contains("BPE"),
        "{refused}"
    );
    for name in MODELS {
        let path = dir().join(format!("{name}.model"));
        let bytes = std::fs::read(&path).unwrap();
        for cut in [1, 2, 17, bytes.len() / 3, bytes.len() - 3] {
            let label = format!("{name}.model[..{cut}]");
            match SentencePiece::from_bytes(&bytes[..cut], &label) {
                Err(Error::Format { path, .. }) => assert_eq!(path, label),
                other => panic!("{label}: {other:?}"),
            }
        }
        let mut wrong_magic = bytes.clone();
        wrong_magic[..4].copy_from_slice(b"PK\x03\x04");
        assert!(matches!(
            SentencePiece::from_bytes(&wrong_magic, "zip"),
            Err(Error::Format { .. })
        ));
    }
}
