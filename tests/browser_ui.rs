//! The web page in a real browser (Debian's headless Chromium, driven by
//! playwright-core): type text, click Generate, hear it while it streams,
//! get a playable WAV; and IndexTTS2's controls (voice reference, emotion,
//! sampling); and a Chinese sentence spoken by the voice the text's script
//! chooses; and a node that requires API keys (the key prompt, the speaker
//! library). The screenshots are kept as test artifacts in
//! target/e2e-artifacts/ (ui.png, ui-chinese.png, ui-indextts2.png,
//! ui-access.png).

use std::path::PathBuf;
use std::process::Command;

use e2e::node::{self, Node};

/// The browser driver and Chromium are installed; the artifacts folder.
fn browser_prerequisites() -> PathBuf {
    let root = node::root();
    let driver = root.join("tests/browser/node_modules/playwright-core");
    assert!(
        driver.exists(),
        "{} is missing: run scripts/install-deps.sh (npm install in tests/browser)",
        driver.display()
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run scripts/install-deps.sh (Debian package chromium)"
    );
    let artifacts = root.join("target/e2e-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    artifacts
}

/// Runs `tests/browser/<script>` on the node's page; the JSON line it prints.
fn drive(script: &str, n: &Node, artifacts: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let root = node::root();
    let out = Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .arg(format!("{}/", n.url()))
        .arg(artifacts)
        .args(args)
        .current_dir(root.join("tests/browser"))
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{stderr}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    let seen: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    eprintln!("browser saw: {seen}");
    seen
}

/// The request fields only IndexTTS2 voices take.
const INDEXTTS2_FIELDS: [&str; 12] = [
    "reference_audio",
    "emotion",
    "emotion_audio",
    "emo_alpha",
    "top_k",
    "top_p",
    "temperature",
    "repetition_penalty",
    "num_beams",
    "max_mel_tokens",
    "diffusion_steps",
    "inference_cfg_rate",
];

#[test]
fn the_page_speaks_the_typed_text() {
    let _serial = node::serial();
    let artifacts = browser_prerequisites();
    let n = Node::start("browser", &[]);
    let seen = drive("ui.mjs", &n, &artifacts, &[]);
    // A Piper voice: today's controls only, and requests without
    // IndexTTS2's fields.
    assert_eq!(seen["indexBlocksVisible"], serde_json::json!([]), "{seen}");
    let sent = seen["requestFields"].as_array().expect("requests seen");
    assert!(!sent.is_empty(), "the page's request was seen: {seen}");
    for fields in sent {
        for f in fields.as_array().into_iter().flatten() {
            let f = f.as_str().unwrap_or_default();
            assert!(
                !INDEXTTS2_FIELDS.contains(&f),
                "a Piper request carries {f}: {fields}"
            );
        }
    }
    assert_eq!(seen["clientError"], "Type some text first.");
    assert_eq!(seen["riff"], "RIFF");
    assert_eq!(seen["wave"], "WAVE");
    assert!(
        seen["mediaError"].is_null(),
        "the audio element plays it: {seen}"
    );
    let duration = seen["duration"].as_f64().unwrap_or(0.0);
    assert!(duration > 5.0 && duration < 30.0, "duration {duration}");
    assert!(seen["meta"]
        .as_str()
        .unwrap_or_default()
        .contains("real-time factor"));
    // Streamed: playback started before the response ended, and the page
    // shows the time to the first audio.
    let started = seen["playStartedMs"].as_f64().expect("playback started");
    let done = seen["doneMs"].as_f64().expect("the response ended");
    assert!(
        started < done,
        "playback at {started} ms, response done at {done} ms"
    );
    let sw = &seen["streamedWav"];
    assert_eq!(sw["streamed"], "true");
    assert!(sw["error"].is_null(), "Chromium plays a streamed WAV: {sw}");
    let d = sw["duration"].as_f64().unwrap_or(0.0);
    assert!(d > 1.0 && d < 10.0, "streamed WAV duration {d}");
    let shown = seen["firstAudioShown"].as_str().unwrap_or_default();
    assert!(shown.ends_with(" ms"), "first audio shown: {shown:?}");
    assert_eq!(seen["errorVisible"], false, "the earlier error is cleared");
    assert_eq!(
        seen["speakerVisible"], false,
        "a single-speaker voice shows no speaker control"
    );
    // The Chinese example: the Mandarin voice, chosen by the text's script
    // (the page names it as the text changes), played while it streams.
    let zh = &seen["chinese"];
    assert!(
        zh["said"].as_str().unwrap_or_default().contains("你好"),
        "{zh}"
    );
    assert!(
        zh["autoHint"]
            .as_str()
            .unwrap_or_default()
            .contains("zh_CN-baker"),
        "{zh}"
    );
    assert!(
        zh["licence"]
            .as_str()
            .unwrap_or_default()
            .contains("non-commercial"),
        "{zh}"
    );
    assert_eq!(zh["voiceUsed"], "zh_CN-baker", "{zh}");
    assert!(zh["mediaError"].is_null(), "the Chinese audio plays: {zh}");
    let d = zh["duration"].as_f64().unwrap_or(0.0);
    assert!(d > 4.0 && d < 25.0, "Chinese audio duration {d}");
    let (started, done) = (zh["playStartedMs"].as_f64(), zh["doneMs"].as_f64());
    assert!(started.is_some() && done.is_some(), "{zh}");
    // Its controls: speed, pitch and energy, no Piper noise; no voice sent.
    assert_eq!(zh["pitchVisible"], true, "{zh}");
    assert_eq!(zh["noiseVisible"], false, "{zh}");
    let fields: Vec<&str> = zh["requestFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(
        !fields.contains(&"voice"),
        "Automatic sends no voice: {fields:?}"
    );
    assert!(
        fields.contains(&"pitch") && fields.contains(&"energy"),
        "{fields:?}"
    );
    assert!(!fields.contains(&"noise_scale"), "{fields:?}");
    assert!(seen["download"]
        .as_str()
        .is_some_and(|d| d.ends_with(".wav")));
    let png = artifacts.join("ui.png");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot saved at {} ({size} bytes)",
        png.display()
    );
}

/// What `indextts2.mjs` saw, checked: the blocks shown for the IndexTTS2
/// voice only, the client's messages, the clips as sent (mono 16-bit WAV at
/// 22,050 Hz, of the uploaded and the recorded length), the request fields
/// of each mode, and audio for each request.
fn check_indextts2_page(seen: &serde_json::Value) {
    let shown =
        |b: &serde_json::Value, k: &str| b[k].as_bool().unwrap_or_else(|| panic!("{k}: {b}"));
    for key in ["piperBlocks", "piperBlocksAgain"] {
        let b = &seen[key];
        assert!(shown(b, "speed"), "Piper keeps its controls: {b}");
        for k in ["reference", "emotion", "sampling"] {
            assert!(!shown(b, k), "{k} hidden for the Piper voice: {b}");
        }
    }
    let b = &seen["indexBlocks"];
    assert!(!shown(b, "speed"), "no Piper speed for IndexTTS2: {b}");
    for k in ["reference", "emotion", "sampling"] {
        assert!(shown(b, k), "{k} shown for the IndexTTS2 voice: {b}");
    }
    for f in seen["piperRequest"]["keys"]
        .as_array()
        .expect("Piper request")
    {
        let f = f.as_str().unwrap_or_default();
        assert!(!INDEXTTS2_FIELDS.contains(&f), "Piper request carries {f}");
    }
    assert_eq!(
        seen["noClipError"],
        "Record or upload a reference clip first."
    );
    let short = seen["shortClipError"].as_str().unwrap_or_default();
    assert!(
        short.contains("0.30 s") && short.contains("at least 0.5 s"),
        "{short}"
    );
    let preview = seen["referencePreview"].as_f64().unwrap_or(0.0);
    assert!(
        (preview - 2.0).abs() < 0.01,
        "uploaded 2 s, preview {preview} s"
    );
    assert_eq!(seen["alphaShownForVector"], true);
    assert_eq!(seen["alphaShownForNone"], false);
    let wav_ok = |w: &serde_json::Value, seconds: (f64, f64)| {
        assert_eq!(w["riff"], true, "{w}");
        assert_eq!(w["format"], 1, "PCM: {w}");
        assert_eq!(w["channels"], 1, "mono: {w}");
        assert_eq!(w["rate"], 22050, "{w}");
        assert_eq!(w["bits"], 16, "{w}");
        let s = w["seconds"].as_f64().unwrap_or(0.0);
        assert!(s >= seconds.0 && s <= seconds.1, "{s} s: {w}");
    };
    let keys = |r: &serde_json::Value| -> Vec<String> {
        r["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect()
    };
    for (name, result) in [
        ("piper", &seen["piperResult"]),
        ("upload", &seen["uploadResult"]),
        ("record", &seen["recordResult"]),
    ] {
        assert!(result["error"].is_null(), "{name}: {result}");
        assert!(result["mediaError"].is_null(), "{name}: {result}");
        let d = result["duration"].as_f64().unwrap_or(0.0);
        assert!(d > 0.0, "{name}: audio arrived: {result}");
    }
    let up = &seen["uploadRequest"];
    wav_ok(&up["reference_audio"], (1.99, 2.01));
    let k = keys(up);
    for f in ["reference_audio", "emotion", "emo_alpha"] {
        assert!(k.iter().any(|x| x == f), "{f} sent: {up}");
    }
    for f in [
        "emotion_audio",
        "speed",
        "noise_scale",
        "noise_w",
        "speaker",
    ] {
        assert!(!k.iter().any(|x| x == f), "{f} not sent: {up}");
    }
    let emotion: Vec<f64> = up["emotion"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    assert_eq!(emotion, [0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3], "{up}");
    assert_eq!(up["emo_alpha"], 0.5);
    // The fake microphone recorded for 2 s.
    let rec = seen["recordedPreview"].as_f64().unwrap_or(0.0);
    assert!((1.5..=3.0).contains(&rec), "recorded {rec} s");
    assert!(
        seen["recordingShown"]
            .as_str()
            .is_some_and(|s| s.starts_with("Recording") && s.ends_with("of 30 s")),
        "{seen}"
    );
    let re = &seen["recordRequest"];
    wav_ok(&re["emotion_audio"], (1.5, 3.0));
    let k = keys(re);
    assert!(
        !k.iter().any(|x| x == "emotion"),
        "a clip, not sliders: {re}"
    );
    assert!(k.iter().any(|x| x == "reference_audio"), "{re}");
}

/// The page's IndexTTS2 controls, against a node serving only Piper: the
/// script adds an IndexTTS2 voice to the page's `/api/voices` and answers
/// its `/api/tts` requests itself (0.5 s of noise), keeping their bodies.
/// The page's side only: the node's side of these requests is covered in
/// tts-node's API tests.
#[test]
fn the_page_drives_indextts2_controls_against_a_mocked_voice() {
    let _serial = node::serial();
    let artifacts = browser_prerequisites();
    let n = Node::start("browser-indextts2-mock", &[]);
    let seen = drive("indextts2.mjs", &n, &artifacts, &["--mock"]);
    assert_eq!(seen["mock"], true);
    check_indextts2_page(&seen);
    let sampling = &seen["samplingFields"];
    assert_eq!(
        sampling,
        &serde_json::json!([
            "top_k",
            "top_p",
            "temperature",
            "repetition_penalty",
            "num_beams",
            "max_mel_tokens",
            "diffusion_steps",
            "inference_cfg_rate"
        ])
    );
    let up = &seen["uploadRequest"];
    assert_eq!(up["max_mel_tokens"], 40);
    assert_eq!(up["diffusion_steps"], 12);
    assert_eq!(up["top_k"], 20);
    // The stored speaker: its index, no clip and (emotion "the speaker's")
    // no emotion.
    let st = &seen["storedRequest"];
    assert_eq!(st["speaker"], 0, "{st}");
    for f in ["reference_audio", "emotion", "emotion_audio", "emo_alpha"] {
        assert!(
            st["keys"]
                .as_array()
                .is_some_and(|k| !k.contains(&f.into())),
            "{f} not sent: {st}"
        );
    }
    assert!(seen["storedResult"]["error"].is_null(), "{seen}");
}

/// The page's IndexTTS2 controls against a real node serving the models
/// tests' random IndexTTS2 checkpoint next to the Piper voice (noise for
/// audio: the test checks that audio arrives, not what it sounds like).
#[test]
fn the_page_drives_a_random_weights_indextts2_voice() {
    let _serial = node::serial();
    let artifacts = browser_prerequisites();
    let (cache, hub) = node::indextts2_cache();
    let n = Node::start(
        "browser-indextts2",
        &[
            ("TTS_CACHE_DIR", cache.display().to_string()),
            ("TTS_HF_HUB", hub.display().to_string()),
        ],
    );
    let seen = drive("indextts2.mjs", &n, &artifacts, &[]);
    assert_eq!(seen["mock"], false);
    assert_eq!(seen["indexVoice"], "IndexTTS2-random");
    check_indextts2_page(&seen);
    // The stored speaker (alice) by index.
    assert_eq!(seen["storedRequest"]["speaker"], 0, "{seen}");
    assert!(seen["storedResult"]["error"].is_null(), "{seen}");
    assert!(seen["storedResult"]["duration"].as_f64().unwrap_or(0.0) > 0.0);
}

/// A node that requires API keys, in the browser: the page asks for a key,
/// refuses a wrong one, speaks with a user key kept for the tab only, and
/// lets an admin key add and delete a stored speaker of the IndexTTS2 voice.
#[test]
fn the_page_asks_for_a_key_and_lets_an_admin_manage_the_speaker_library() {
    const USER: &str = "page-user-6a8c0e2b4d6f8a0c2e4b";
    const ADMIN: &str = "page-admin-1f3b5d7a9c1e3f5b7d9a";
    let _serial = node::serial();
    let artifacts = browser_prerequisites();
    let (cache, hub) = node::indextts2_cache();
    let keys = cache.join("keys.toml");
    std::fs::write(
        &keys,
        format!(
            "[[keys]]\nname = \"page-user\"\nrole = \"user\"\nhash = \"{}\"\n\n[[keys]]\nname = \"page-admin\"\nrole = \"admin\"\nhash = \"{}\"\n",
            node::hash_api_key(USER),
            node::hash_api_key(ADMIN)
        ),
    )
    .expect("keys file");
    let n = Node::start(
        "browser-access",
        &[
            ("TTS_CACHE_DIR", cache.display().to_string()),
            ("TTS_HF_HUB", hub.display().to_string()),
            ("TTS_API_KEYS_FILE", keys.display().to_string()),
        ],
    );
    let seen = drive("access.mjs", &n, &artifacts, &[USER, ADMIN]);
    assert!(
        seen["askedFirst"]
            .as_str()
            .is_some_and(|s| s.contains("needs an API key")),
        "{seen}"
    );
    assert_eq!(
        seen["voicesBeforeKey"], 1,
        "no voice before the key: {seen}"
    );
    assert!(seen["askedAgain"]
        .as_str()
        .is_some_and(|s| s.contains("did not accept")));
    assert_eq!(seen["keyBoxAfter"], false, "{seen}");
    assert_eq!(seen["keyState"], true, "{seen}");
    assert_eq!(seen["libraryForUser"], false, "a user key sees no library");
    assert_eq!(seen["spoke"], 1, "{seen}");
    assert_eq!(
        seen["storage"],
        serde_json::json!({"sessionIsKey": true, "local": 0, "cookie": ""}),
        "the key is in this tab's sessionStorage only"
    );
    assert_eq!(seen["keyBoxAfterReload"], false, "kept across a reload");
    assert_eq!(seen["newTabAsks"], true, "a new tab asks again");
    let before = seen["libraryBefore"].as_array().expect("library");
    assert!(
        before
            .iter()
            .any(|l| l.as_str().is_some_and(|s| s.starts_with("alice"))),
        "{seen}"
    );
    assert!(
        seen["libraryAfterAdd"]
            .as_array()
            .expect("library")
            .iter()
            .any(|l| l.as_str().is_some_and(|s| s.starts_with("erin — 1.2 s"))),
        "{seen}"
    );
    assert_eq!(
        seen["storedOptions"],
        serde_json::json!(["alice", "erin"]),
        "{seen}"
    );
    assert_eq!(
        seen["libraryAfterDelete"],
        serde_json::json!(before),
        "{seen}"
    );
    assert!(!cache.join("voices/erin.wav").exists());
    assert!(seen["error"].is_null() || seen["error"] == "", "{seen}");
    // Only /api/voices before a key was typed (at first, and after "Forget
    // it") went without one; the wrong key's went with it.
    assert_eq!(seen["requestsWithoutKey"], 2, "{seen}");
}
