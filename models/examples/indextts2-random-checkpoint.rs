//! Writes an IndexTTS2 checkpoint directory in the official layout with
//! random weights from the deterministic generator, and the four auxiliary
//! models in a Hugging Face hub cache, so that the whole IndexTTS2 path runs
//! without the official weights (noise for audio, every real code path).
//!
//! ```text
//! cargo run --release -p models --example indextts2-random-checkpoint -- --out DIR \
//!     [--hub DIR/hub] [--full-size] [--seed N]
//! ```
//!
//! Default: the test fixtures' checkpoint (the official wiring with small
//! depths, ~1 GB; seed and logit patches as recorded, so the reference's
//! golden run applies to it). `--full-size`: the official configuration
//! (about 1.7 billion parameters, 6.5 GB). Then:
//!
//! ```text
//! cargo run --release -p models --example indextts2 -- --checkpoints DIR --hub DIR/hub \
//!     --reference REF.wav --text "Hello there." --out out.wav
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use models::indextts2::random_checkpoint::{self, Spec};

const FIXTURE_CHECKPOINT: &str = include_str!("../tests/fixtures/indextts2/checkpoint.json");
const FIXTURE_GENERATOR: &str = include_str!("../tests/fixtures/indextts2/generator.json");
const FIXTURE_BPE: &[u8] = include_bytes!("../tests/fixtures/indextts2/bpe.model");

fn fixture_spec(seed: Option<u64>) -> anyhow::Result<Spec> {
    let mut spec = Spec::from_fixtures(
        &serde_json::from_str(FIXTURE_CHECKPOINT)?,
        &serde_json::from_str(FIXTURE_GENERATOR)?,
        FIXTURE_BPE.to_vec(),
    )?;
    if let Some(seed) = seed {
        spec.seed = seed;
    }
    Ok(spec)
}

fn main() -> anyhow::Result<()> {
    let (mut out, mut hub, mut full, mut seed) = (None, None, false, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(val()?)),
            "--hub" => hub = Some(PathBuf::from(val()?)),
            "--full-size" => full = true,
            "--seed" => seed = Some(val()?.parse::<u64>().context("--seed")?),
            other => bail!("unknown argument {other:?} (see the example's doc comment)"),
        }
    }
    let out = out.context("--out DIR is required")?;
    let hub = hub.unwrap_or_else(|| out.join("hub"));
    let spec = if full {
        Spec::full_size(seed.unwrap_or(20_250_917), FIXTURE_BPE.to_vec())
    } else {
        fixture_spec(seed)?
    };
    let t = Instant::now();
    let w = random_checkpoint::write(&spec, &out, &hub)?;
    println!(
        "checkpoint={} hub={} tensors={} bytes={} write_ms={:.0}",
        w.checkpoint.display(),
        w.hub.display(),
        w.tensors,
        w.bytes,
        t.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
