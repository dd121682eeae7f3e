//! The Mandarin voice's text front end, line by line: how a text is cut,
//! normalised and read (to see why a sentence sounds as it does).
//!
//! ```text
//! echo '服务器CPU使用率达到95%。' | cargo run -p models --example zh_frontend -- \
//!     [--voice cache_hub/fastspeech2/zh_CN-baker] [--drop-latin]
//! ```
//! Each piece prints as `piece <TAB> normalised <TAB> phonemes <TAB> ids`.

use std::io::BufRead;
use std::path::PathBuf;

use models::fastspeech2::frontend::{split, Frontend, Latin};

fn main() -> anyhow::Result<()> {
    let mut voice = PathBuf::from("cache_hub/fastspeech2/zh_CN-baker");
    let mut latin = Latin::Spell;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--voice" => {
                voice = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--voice needs a directory"))?
                    .into()
            }
            "--drop-latin" => latin = Latin::Drop,
            other => anyhow::bail!("unknown argument {other:?} (--voice DIR, --drop-latin)"),
        }
    }
    let frontend = Frontend::load(&voice)?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        for piece in split(&line) {
            let p = frontend.piece(&piece, latin);
            let ids: Vec<String> = p.ids.iter().map(u32::to_string).collect();
            println!(
                "{}\t{}\t{}\t{}",
                p.text,
                p.normalized,
                p.phones,
                ids.join(" ")
            );
        }
    }
    Ok(())
}
