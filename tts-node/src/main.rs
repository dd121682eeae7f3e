//! The TTS node binary.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("tts-node: the server is not built yet (see the open issues)")
}
