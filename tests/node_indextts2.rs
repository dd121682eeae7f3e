//! An IndexTTS2 voice in a real node: the models tests' random checkpoint in
//! the official layout (noise for audio, every real code path), served next
//! to the Piper voice; a reference clip uploaded (JSON and multipart), a stored speaker, an
//! emotion vector and an emotion clip, streaming, bad input, and the typed
//! GELF fields of the completion event.

use base64::Engine as _;
use e2e::node::{self, events_where, gelf_env, http, post_json, Node, Wav};
use e2e::{field_str, short_message, GelfReceiver};
use serde_json::json;

const VOICE: &str = "IndexTTS2-random";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn an_indextts2_voice_clones_a_reference_with_emotion_and_reports_its_stages() {
    let _serial = node::serial();
    let (cache, hub) = node::indextts2_cache();
    let rx = GelfReceiver::start();
    let mut env = gelf_env(&rx, "node-ix2");
    env.push(("TTS_CACHE_DIR", cache.display().to_string()));
    env.push(("TTS_HF_HUB", hub.display().to_string()));
    let n = Node::start("indextts2", &env);

    // The voice list: the engine, what it takes, the stored speaker.
    let voices = http(n.port, "GET", "/api/voices", &[], b"").json();
    let list = voices["voices"].as_array().expect("voices");
    let ix2 = list
        .iter()
        .find(|v| v["name"] == VOICE)
        .unwrap_or_else(|| panic!("{VOICE} is served: {voices}\n{}", n.log()));
    assert_eq!(ix2["engine"], "indextts2");
    let caps = &ix2["capabilities"];
    assert_eq!(caps["reference_audio"], true);
    assert_eq!(caps["emotion"]["vector"], true);
    assert_eq!(caps["emotion"]["audio"], true);
    assert_eq!(caps["speakers"], json!(["alice"]));
    assert_eq!(caps["sample_rate"], 22050);
    // Flow matching's controls, with the reference's values as defaults.
    assert_eq!(
        ix2["controls"]["diffusion_steps"],
        json!({"min": 1.0, "max": 100.0, "default": 25.0})
    );
    assert_eq!(
        ix2["controls"]["inference_cfg_rate"],
        json!({"min": 0.0, "max": 2.0, "default": 0.7})
    );
    let piper = list
        .iter()
        .find(|v| v["engine"] == "piper")
        .expect("the Piper voice");

    // A reference clip uploaded, an emotion vector, deterministic decoding.
    let reference = node::voiced_wav(1.2, 16_000);
    let greedy = json!({
        "voice": VOICE,
        "text": "Hi there.",
        "reference_audio": b64(&reference),
        "emotion": [0.0, 0.3, 0.0, 0.0, 0.1, 0.0, 0.2, 0.05],
        "emo_alpha": 0.7,
        "top_k": 1,
        "num_beams": 1,
        "max_mel_tokens": 40
    });
    let r = post_json(
        n.port,
        "/api/tts",
        &greedy,
        &[("X-Request-Id", "ix2-vector")],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let wav = Wav::parse(&r.body).unwrap();
    assert_eq!(wav.sample_rate, 22050);
    assert!(wav.seconds() > 0.05, "{} s", wav.seconds());
    assert!(wav.rms() > 0.0, "some signal");
    // Same request again: greedy decoding gives the same codes, so the same
    // length (the flow-matching noise is drawn per request); the prepared
    // clip comes from the voice's cache the second time.
    let again = post_json(
        n.port,
        "/api/tts",
        &greedy,
        &[("X-Request-Id", "ix2-again")],
    );
    assert_eq!(again.status, 200);
    assert!(
        again.body.len() == r.body.len(),
        "greedy decoding: {} then {} bytes",
        r.body.len(),
        again.body.len()
    );

    // Fewer flow-matching steps and no guidance: the same greedy codes, so
    // the same length, in less s2mel work.
    let mut fewer_steps = greedy.clone();
    fewer_steps["diffusion_steps"] = json!(3);
    fewer_steps["inference_cfg_rate"] = json!(0.0);
    let fast = post_json(
        n.port,
        "/api/tts",
        &fewer_steps,
        &[("X-Request-Id", "ix2-fast")],
    );
    assert_eq!(fast.status, 200, "{}", String::from_utf8_lossy(&fast.body));
    assert_eq!(fast.body.len(), r.body.len(), "same codes, same length");
    assert!(Wav::parse(&fast.body).unwrap().rms() > 0.0);
    let e = post_json(
        n.port,
        "/api/tts",
        &json!({"voice": VOICE, "text": "Hi.", "diffusion_steps": 500}),
        &[],
    );
    assert_eq!(e.status, 400);
    assert_eq!(e.json()["error"]["code"], "INVALID_PARAMETER");
    let e = post_json(
        n.port,
        "/api/tts",
        &json!({"voice": piper["name"], "text": "Hi.", "diffusion_steps": 10}),
        &[],
    );
    assert_eq!(e.status, 400);
    assert_eq!(e.json()["error"]["code"], "UNSUPPORTED_CONTROL");

    // The stored speaker, an emotion clip, the reference's sampling with
    // beams, streamed as PCM.
    let s = post_json(
        n.port,
        "/api/tts",
        &json!({
            "voice": VOICE,
            "text": "How are you doing today? Please call Stella.",
            "speaker": 0,
            "emotion_audio": b64(&node::voiced_wav(0.8, 44_100)),
            "emo_alpha": 0.5,
            "max_mel_tokens": 30,
            "stream": true,
            "format": "pcm"
        }),
        &[("X-Request-Id", "ix2-stream")],
    );
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    assert_eq!(s.header("x-streamed"), Some("true"));
    // Sampled codes (3 beams): the length varies from run to run; it is
    // checked against the completion event below.
    assert_eq!(s.body.len() % 2, 0, "16-bit PCM");
    let streamed_bytes = s.body.len();

    // The same controls as a multipart form (`curl -F reference_audio=@me.wav`).
    let boundary = "e2eBoundary7MA4YWxk";
    let mut form = Vec::new();
    for (name, value) in [
        ("voice", VOICE),
        ("text", "Hi there."),
        ("top_k", "1"),
        ("num_beams", "1"),
        ("max_mel_tokens", "20"),
        ("emotion", "[0.5, 0, 0, 0, 0, 0, 0, 0.2]"),
    ] {
        form.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    form.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"reference_audio\"; filename=\"me.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    form.extend_from_slice(&reference);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ctype = format!("multipart/form-data; boundary={boundary}");
    let m = http(
        n.port,
        "POST",
        "/api/tts",
        &[
            ("Content-Type", ctype.as_str()),
            ("X-Request-Id", "ix2-form"),
        ],
        &form,
    );
    assert_eq!(m.status, 200, "{}", String::from_utf8_lossy(&m.body));
    assert!(Wav::parse(&m.body).unwrap().seconds() > 0.05);

    // Bad input: a Piper voice refuses IndexTTS2 controls, naming them; a
    // clip that is not audio; no reference for a voice that needs one is
    // covered by the node's router tests.
    let e = post_json(
        n.port,
        "/api/tts",
        &json!({"voice": piper["name"], "text": "Hi.", "emotion": [0, 0, 0, 0, 0, 0, 0, 1]}),
        &[],
    );
    assert_eq!(e.status, 400);
    let body = e.json();
    assert_eq!(body["error"]["code"], "UNSUPPORTED_CONTROL");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("emotion") && msg.contains("noise_scale"),
        "{msg}"
    );
    let e = post_json(
        n.port,
        "/api/tts",
        &json!({"voice": VOICE, "text": "Hi.", "reference_audio": b64(b"RIFF....not audio")}),
        &[],
    );
    assert_eq!(e.status, 400);
    assert_eq!(e.json()["error"]["code"], "BAD_AUDIO");
    let e = post_json(
        n.port,
        "/api/tts",
        &json!({"voice": VOICE, "text": "Hi.", "emotion": [2, 0, 0, 0, 0, 0, 0, 0]}),
        &[],
    );
    assert_eq!(e.status, 400);
    assert_eq!(e.json()["error"]["code"], "INVALID_PARAMETER");

    // The completion events: the engine and its stages, typed.
    let done = events_where(&rx, 5, |m| {
        short_message(m) == "Audio generation completed" && field_str(m, "voice") == Some(VOICE)
    });
    assert_eq!(
        done.len(),
        5,
        "five IndexTTS2 completions (one with 3 diffusion steps)"
    );
    let by_id = |id: &str| {
        done.iter()
            .find(|m| field_str(m, "request_id") == Some(id))
            .unwrap_or_else(|| panic!("the event of {id}"))
    };
    let prep = |id: &str| by_id(id).fields["reference_ms"].as_f64().unwrap_or(-1.0);
    assert!(
        prep("ix2-again") < prep("ix2-vector") / 2.0,
        "the second request's clip is cached: {} ms then {} ms",
        prep("ix2-vector"),
        prep("ix2-again")
    );
    for m in &done {
        let f = &m.fields;
        assert_eq!(field_str(m, "engine"), Some("indextts2"));
        assert!(
            f["mel_tokens"].is_u64(),
            "mel_tokens {:?}",
            f.get("mel_tokens")
        );
        for k in [
            "reference_seconds",
            "gpt_ms",
            "s2mel_ms",
            "vocoder_ms",
            "duration_ms",
        ] {
            assert!(
                f.get(k).and_then(|v| v.as_f64()).is_some_and(|x| x >= 0.0),
                "{k}: {:?}",
                f.get(k)
            );
        }
        assert!(f["gpt_ms"].as_f64().unwrap_or(0.0) > 0.0);
    }
    let vector = by_id("ix2-vector");
    let secs = vector.fields["reference_seconds"].as_f64().unwrap_or(0.0);
    assert!((secs - 1.2).abs() < 0.01, "reference_seconds {secs}");
    assert!(vector.fields["mel_tokens"].as_u64().unwrap_or(0) <= 40);
    let stream = by_id("ix2-stream");
    assert!((stream.fields["reference_seconds"].as_f64().unwrap_or(0.0) - 1.5).abs() < 0.01);
    let said = stream.fields["audio_seconds"].as_f64().unwrap_or(-1.0) * 22050.0 * 2.0;
    assert!(
        (said - streamed_bytes as f64).abs() <= 2.0,
        "the event's audio_seconds ({said} bytes) is what was streamed ({streamed_bytes})"
    );
    // Piper's completions say their engine too.
    let p = post_json(
        n.port,
        "/api/tts",
        &json!({"text": "Hi."}),
        &[("X-Request-Id", "piper-1")],
    );
    assert_eq!(p.status, 200);
    let piper_done = events_where(&rx, 1, |m| {
        short_message(m) == "Audio generation completed"
            && field_str(m, "request_id") == Some("piper-1")
    });
    assert_eq!(field_str(&piper_done[0], "engine"), Some("piper"));
    assert!(!piper_done[0].fields.contains_key("mel_tokens"));
}

/// A multipart/form-data body of text fields and one file part.
fn multipart(boundary: &str, fields: &[(&str, &str)], file: (&str, &[u8])) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in fields {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"clip.wav\"\r\nContent-Type: audio/wav\r\n\r\n",
            file.0
        )
        .as_bytes(),
    );
    b.extend_from_slice(file.1);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

#[test]
fn the_speaker_library_stores_lists_serves_by_name_and_deletes_for_admins() {
    let _serial = node::serial();
    let (cache, hub) = node::indextts2_cache();
    let keys = cache.join("keys.toml");
    let hash = node::hash_api_key;
    std::fs::write(
        &keys,
        format!(
            "[[keys]]\nname = \"ops\"\nrole = \"admin\"\nhash = \"{}\"\n\n[[keys]]\nname = \"web\"\nrole = \"user\"\nhash = \"{}\"\n",
            hash(ADMIN),
            hash(USER)
        ),
    )
    .expect("keys");
    let rx = GelfReceiver::start();
    let mut env = gelf_env(&rx, "node-ix2-library");
    env.push(("TTS_CACHE_DIR", cache.display().to_string()));
    env.push(("TTS_HF_HUB", hub.display().to_string()));
    env.push(("TTS_API_KEYS_FILE", keys.display().to_string()));
    let n = Node::start("indextts2-library", &env);
    let admin = format!("Bearer {ADMIN}");
    let user = format!("Bearer {USER}");
    let as_admin = [("Authorization", admin.as_str())];
    let as_user = [("Authorization", user.as_str())];

    // Added as JSON (base64) and as a form (the file itself).
    let bob = node::voiced_wav(1.3, 16_000);
    let r = post_json(
        n.port,
        "/api/speakers",
        &json!({"name": "bob", "audio": b64(&bob)}),
        &as_admin,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let form = multipart(
        "XyZ",
        &[("name", "carol")],
        ("audio", &node::voiced_wav(0.8, 22_050)),
    );
    let r = http(
        n.port,
        "POST",
        "/api/speakers",
        &[
            ("Authorization", admin.as_str()),
            ("Content-Type", "multipart/form-data; boundary=XyZ"),
        ],
        &form,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(cache.join("voices/bob.wav").is_file() && cache.join("voices/carol.wav").is_file());
    let list = http(n.port, "GET", "/api/speakers", &as_admin, b"").json();
    let names: Vec<&str> = list["speakers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    // Users may not manage it, but see the voice's speakers and use them.
    assert_eq!(
        http(n.port, "GET", "/api/speakers", &as_user, b"").status,
        403
    );
    let voices = http(n.port, "GET", "/api/voices", &as_user, b"").json();
    let ix2 = voices["voices"]
        .as_array()
        .expect("voices")
        .iter()
        .find(|v| v["name"] == VOICE)
        .cloned()
        .expect("ix2");
    assert_eq!(
        ix2["capabilities"]["speakers"],
        json!(["alice", "bob", "carol"])
    );
    let sampling = json!({"top_k": 1, "num_beams": 1, "max_mel_tokens": 30});
    let mut body = json!({"voice": VOICE, "text": "Hi there.", "speaker": "bob"});
    body.as_object_mut()
        .expect("object")
        .extend(sampling.as_object().expect("object").clone());
    let r = post_json(
        n.port,
        "/api/tts",
        &body,
        &[
            ("Authorization", user.as_str()),
            ("X-Request-Id", "ix2-bob"),
        ],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(Wav::parse(&r.body).expect("wav").seconds() > 0.05);
    // OpenAI clients name the speaker as the voice.
    let mut oa = json!({"model": "tts-1", "input": "Hi there.", "voice": "carol", "response_format": "wav", "stream": false});
    oa.as_object_mut()
        .expect("object")
        .extend(sampling.as_object().expect("object").clone());
    let r = post_json(
        n.port,
        "/v1/audio/speech",
        &oa,
        &[
            ("Authorization", user.as_str()),
            ("X-Request-Id", "ix2-carol"),
        ],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-voice"), Some(VOICE));
    // The stored clips were the references.
    for (rid, seconds) in [("ix2-bob", 1.3), ("ix2-carol", 0.8)] {
        let done = events_where(&rx, 1, |m| {
            field_str(m, "request_id") == Some(rid)
                && short_message(m) == "Audio generation completed"
        });
        assert_eq!(done.len(), 1, "{rid}");
        let got = done[0].fields["reference_seconds"].as_f64().unwrap_or(0.0);
        assert!(
            (got - seconds).abs() < 0.01,
            "{rid}: reference_seconds {got}"
        );
        assert_eq!(field_str(&done[0], "api_key_name"), Some("web"));
    }

    // Names are never paths; clips are decoded and bounded.
    for (name, audio, code) in [
        ("../../etc/passwd", b64(&bob), "BAD_REQUEST"),
        ("x/y", b64(&bob), "BAD_REQUEST"),
        ("dave", b64(&node::voiced_wav(31.0, 16_000)), "BAD_AUDIO"),
        ("dave", b64(b"RIFF\x10\x00\x00\x00WAVEjunk"), "BAD_AUDIO"),
        ("dave", "%%%".to_owned(), "BAD_AUDIO"),
    ] {
        let r = post_json(
            n.port,
            "/api/speakers",
            &json!({"name": name, "audio": audio}),
            &as_admin,
        );
        assert_eq!(
            r.status,
            400,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["error"]["code"], code, "{name}");
    }
    let r = http(
        n.port,
        "DELETE",
        "/api/speakers/..%2F..%2Fetc%2Fpasswd",
        &as_admin,
        b"",
    );
    assert_eq!(r.status, 400);
    assert!(!cache.join("voices/dave.wav").exists());

    // Deleted: gone from the list, the disk and synthesis.
    assert_eq!(
        http(n.port, "DELETE", "/api/speakers/bob", &as_admin, b"").status,
        204
    );
    assert_eq!(
        http(n.port, "DELETE", "/api/speakers/bob", &as_admin, b"").status,
        404
    );
    assert!(!cache.join("voices/bob.wav").exists());
    let r = post_json(
        n.port,
        "/api/tts",
        &body,
        &[("Authorization", user.as_str())],
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "SPEAKER_NOT_FOUND");
    let list = http(n.port, "GET", "/api/speakers", &as_admin, b"").json();
    assert_eq!(list["speakers"].as_array().map(Vec::len), Some(2));
}

const ADMIN: &str = "admin-5c1e9a7b3d5f7a9c1e3b5d7f";
const USER: &str = "user-2b4d6f8a0c2e4a6c8e0b2d4f6";
