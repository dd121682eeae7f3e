//! The node's languages end to end: a real node with the English (Piper)
//! and the Mandarin (FastSpeech2) voices, real HTTP, a GELF receiver
//! applying Graylog's rules, and Whisper listening to what it says.

use e2e::node::{
    self, cer, events_where, gelf_env, post_json, post_streamed, transcribe, Node, Wav,
};
use e2e::{field_str, short_message, GelfReceiver};
use serde_json::json;

const COMPLETED: &str = "Audio generation completed";

/// The request of the issue that asked for Chinese: Chinese text with an
/// English word, no voice named.
const MIXED: &str = "你好，欢迎使用语音合成服务。服务器CPU使用率达到百分之九十五。";
const CHINESE: &str = "今天天气很好，我们去公园散步吧。";

#[test]
fn chinese_text_is_spoken_in_mandarin_with_its_english_words_in_english() {
    let _serial = node::serial();
    let rx = GelfReceiver::start();
    let n = Node::start("languages", &gelf_env(&rx, "node-zh"));

    // No voice: the text's script chooses the Mandarin voice.
    let zh = post_json(
        n.port,
        "/api/tts",
        &json!({"text": CHINESE}),
        &[("X-Request-Id", "zh-1")],
    );
    assert_eq!(zh.status, 200, "{}", String::from_utf8_lossy(&zh.body));
    assert_eq!(zh.header("x-voice"), Some("zh_CN-baker"));
    assert_eq!(zh.header("x-languages"), Some("zh"));
    let zh_wav = Wav::parse(&zh.body).unwrap();
    assert_eq!(zh_wav.sample_rate, 24000);
    assert!(
        zh_wav.seconds() > 1.5 && zh_wav.seconds() < 8.0,
        "{} s",
        zh_wav.seconds()
    );

    // The mixed request: Mandarin with "CPU" in English.
    let mixed = post_json(
        n.port,
        "/api/tts",
        &json!({"text": MIXED}),
        &[("X-Request-Id", "zh-mixed")],
    );
    assert_eq!(
        mixed.status,
        200,
        "{}",
        String::from_utf8_lossy(&mixed.body)
    );
    assert_eq!(
        mixed.header("x-voices"),
        Some("zh_CN-baker,en_US-joe-medium")
    );
    assert_eq!(mixed.header("x-languages"), Some("zh,en"));
    let mixed_wav = Wav::parse(&mixed.body).unwrap();
    assert_eq!(mixed_wav.sample_rate, 24000);

    // OpenAI's voice names choose by script too.
    let openai = post_json(
        n.port,
        "/v1/audio/speech",
        &json!({"model": "tts-1", "input": CHINESE, "voice": "alloy", "response_format": "wav"}),
        &[("X-Request-Id", "zh-openai")],
    );
    assert_eq!(openai.status, 200);
    assert_eq!(openai.header("x-voice"), Some("zh_CN-baker"));

    // What a listener hears: Mandarin, the words said, and "CPU".
    let heard = transcribe(&[&zh.body, &mixed.body], None);
    assert_eq!(heard.len(), 2);
    for h in &heard {
        assert_eq!(h.language, "zh", "heard as {h:?}");
        assert!(h.language_probability > 0.8, "{h:?}");
    }
    let e = cer(CHINESE, &heard[0].text);
    assert!(
        e < 0.3,
        "character error rate {e:.2}: heard {:?}",
        heard[0].text
    );
    assert!(
        heard[1].text.to_uppercase().contains("CPU"),
        "CPU is heard: {:?}",
        heard[1].text
    );

    // Chinese to the English voice by name: refused, naming the voice that can.
    let refused = post_json(
        n.port,
        "/api/tts",
        &json!({"text": CHINESE, "voice": "en_US-joe-medium"}),
        &[("X-Request-Id", "zh-refused")],
    );
    assert_eq!(refused.status, 400);
    let body = refused.json();
    assert_eq!(body["error"]["code"], "UNSUPPORTED_LANGUAGE");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("zh_CN-baker"), "{msg}");
    // A script no voice speaks.
    let cyrillic = post_json(n.port, "/api/tts", &json!({"text": "Привет, мир"}), &[]);
    assert_eq!(cyrillic.status, 400);
    assert_eq!(cyrillic.json()["error"]["code"], "UNSUPPORTED_LANGUAGE");
    // An English voice's text with a Chinese name in it: the name in Mandarin.
    let en = post_json(
        n.port,
        "/api/tts",
        &json!({"text": "The office in 北京 opens at nine.", "voice": "en_US-joe-medium"}),
        &[],
    );
    assert_eq!(en.status, 200);
    assert_eq!(en.header("x-voices"), Some("en_US-joe-medium,zh_CN-baker"));
    assert_eq!(Wav::parse(&en.body).unwrap().sample_rate, 22050);

    // Streamed and whole hold the same samples (pure and mixed Chinese).
    for (text, ctrl) in [(CHINESE, json!({})), (MIXED, json!({"speed": 1.2}))] {
        let mut req = json!({"text": text, "format": "pcm"});
        if let Some(s) = ctrl.get("speed") {
            req["speed"] = s.clone();
        }
        let whole = post_json(n.port, "/api/tts", &req, &[]);
        req["stream"] = json!(true);
        let streamed = post_streamed(n.port, "/api/tts", &req, None);
        assert_eq!(whole.status, 200);
        assert_eq!(streamed.status, 200);
        assert!(streamed.complete);
        assert_eq!(streamed.header("x-streamed"), Some("true"));
        assert_eq!(streamed.body.len(), whole.body.len(), "{text}");
        assert!(
            streamed.body == whole.body,
            "streamed and whole samples of {text:?} differ"
        );
    }

    // One completion event per request, with the voices and languages used.
    let events = events_where(&rx, 3, |m| short_message(m) == COMPLETED);
    for (rid, voices, languages, chosen) in [
        ("zh-1", "zh_CN-baker", "zh", "script"),
        (
            "zh-mixed",
            "zh_CN-baker,en_US-joe-medium",
            "zh,en",
            "script",
        ),
        ("zh-openai", "zh_CN-baker", "zh", "script"),
    ] {
        let e: Vec<_> = events
            .iter()
            .filter(|m| field_str(m, "request_id") == Some(rid))
            .collect();
        assert_eq!(e.len(), 1, "one completion event for {rid}");
        let f = &e[0].fields;
        assert_eq!(field_str(e[0], "voice"), Some("zh_CN-baker"));
        assert_eq!(field_str(e[0], "engine"), Some("fastspeech2"));
        assert_eq!(field_str(e[0], "voices"), Some(voices), "{rid}");
        assert_eq!(field_str(e[0], "languages"), Some(languages), "{rid}");
        assert_eq!(field_str(e[0], "language"), Some("zh"), "{rid}");
        assert_eq!(field_str(e[0], "voice_choice"), Some(chosen), "{rid}");
        assert_eq!(f["sample_rate"], 24000);
        assert!(f["duration_ms"].is_u64() && f["char_count"].is_u64());
        assert!(f["audio_seconds"].as_f64().is_some_and(|x| x > 1.0));
    }
    let refused_events = events_where(&rx, 1, |m| {
        field_str(m, "error_code") == Some("UNSUPPORTED_LANGUAGE")
    });
    let e: Vec<_> = refused_events
        .iter()
        .filter(|m| field_str(m, "request_id") == Some("zh-refused"))
        .collect();
    assert_eq!(e.len(), 1, "the refusal is logged once");
    assert_eq!(field_str(e[0], "error_category"), Some("client_input"));
    let r = rx.lock();
    assert!(
        r.dropped_fields.is_empty(),
        "Graylog would drop: {:?}",
        r.dropped_fields
    );
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}
