//! The web page in a real browser (Debian's headless Chromium, driven by
//! playwright-core): type text, click Generate, hear it while it streams,
//! get a playable WAV. The
//! screenshot is kept as a test artifact in target/e2e-artifacts/ui.png.

use std::process::Command;

use e2e::node::{self, Node};

#[test]
fn the_page_speaks_the_typed_text() {
    let _serial = node::serial();
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
    let n = Node::start("browser", &[]);
    let artifacts = root.join("target/e2e-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = Command::new("node")
        .arg(root.join("tests/browser/ui.mjs"))
        .arg(format!("{}/", n.url()))
        .arg(&artifacts)
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
