//! The installed voices, for the tests that need them: their directories,
//! or `None` (the test says it skipped) when `scripts/fetch-models.sh` has
//! not run; with `MODELS_REQUIRE_VOICE` set (CI) a missing voice fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

fn installed(rel: &str, file: &str, what: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cache_hub")
        .join(rel);
    if dir.join(file).exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("MODELS_REQUIRE_VOICE").is_none(),
        "MODELS_REQUIRE_VOICE is set but the {what} is missing"
    );
    eprintln!("SKIPPED: needs the {what} (run scripts/fetch-models.sh)");
    None
}

/// `cache_hub/fastspeech2/zh_CN-baker`.
pub fn mandarin() -> Option<PathBuf> {
    installed("fastspeech2/zh_CN-baker", "voice.json", "Mandarin voice")
}

/// `cache_hub/piper/en_US-joe-medium`.
pub fn english() -> Option<PathBuf> {
    installed(
        "piper/en_US-joe-medium",
        "en_US-joe-medium.onnx",
        "English voice",
    )
}
