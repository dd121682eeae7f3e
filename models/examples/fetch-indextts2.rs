//! Downloads IndexTTS2 (`IndexTeam/IndexTTS-2` and its four auxiliary models)
//! where the Hugging Face hub is reachable; fails in seconds with a clear
//! message where it is not. Run by `scripts/fetch-models.sh --indextts2`.
//!
//! ```text
//! cargo run --release -p models --features hub --example fetch-indextts2 -- \
//!     --dest cache_hub/indextts2/IndexTTS-2 [--hub DIR]
//! ```
//!
//! `--hub` defaults to the Hugging Face cache (`$HF_HUB_CACHE`,
//! `$HF_HOME/hub`, `~/.cache/huggingface/hub`), where the node and the
//! `indextts2` example look for the auxiliary models.

use std::path::PathBuf;

use anyhow::{bail, Context};
use models::indextts2::checkpoint::AuxModels;

fn main() -> anyhow::Result<()> {
    let (mut dest, mut hub) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--dest" => dest = Some(PathBuf::from(val()?)),
            "--hub" => hub = Some(PathBuf::from(val()?)),
            other => bail!("unknown argument {other:?}"),
        }
    }
    let dest = dest.context("--dest DIR is required")?;
    let hub = hub.unwrap_or_else(AuxModels::default_hub_dir);
    let dir = models::hub::download_indextts2(&dest, &hub)?;
    let ckpt = models::indextts2::checkpoint::Checkpoint::open(&dir)?;
    AuxModels::locate(&hub, &ckpt.config.vocoder)?;
    println!(
        "IndexTTS2 in {} (auxiliary models in {})",
        dir.display(),
        hub.display()
    );
    Ok(())
}
