//! Chinese text with English words, on the real voices: the English words go
//! to the English voice, are resampled to 24 kHz, and every join is silent
//! at the cut (no click).

mod voices_common;

use std::ops::ControlFlow;
use std::sync::Arc;

use candle_core::Device;
use models::engine::{Controls, Engine, Request};
use models::fastspeech2::voice::FastSpeech2Voice;
use models::mixed::{Mixed, Part};
use models::text::script::Script;
use models::Voice;

fn voices() -> Option<(Arc<dyn Engine>, Arc<dyn Engine>)> {
    let zh = voices_common::mandarin()?;
    let en = voices_common::english()?;
    let zh: Arc<dyn Engine> = Arc::new(FastSpeech2Voice::load(&zh, &Device::Cpu).unwrap());
    let en: Arc<dyn Engine> = Arc::new(Voice::load(&en, &Device::Cpu).unwrap());
    Some((zh, en))
}

#[test]
fn english_words_in_chinese_text_are_spoken_by_the_english_voice_and_joined_without_a_click() {
    let Some((zh, en)) = voices() else { return };
    let mixed = Mixed::new(
        Part::new("zh_CN-baker", Arc::clone(&zh), 1.0),
        vec![(
            Script::Latin,
            Part::new("en_US-joe-medium", Arc::clone(&en), 1.0),
        )],
    )
    .unwrap();
    let text = "服务器CPU使用率达到百分之九十五，GPU 显存 3.2 GB。";
    let mut pieces: Vec<Vec<f32>> = Vec::new();
    let s = mixed
        .synthesize_stream(&Request::new(text, &Controls::default()), false, &mut |p| {
            pieces.push(p.to_vec());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(s.voices, ["zh_CN-baker", "en_US-joe-medium"]);
    assert_eq!(s.languages, ["zh", "en"]);
    // 服务器 | CPU | 使用率…显存 3.2 | GB | 。
    assert!(pieces.len() >= 4, "{} pieces", pieces.len());
    let peak = pieces.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    let ms = 24; // samples per ms at 24 kHz
    for (k, w) in pieces.windows(2).enumerate() {
        let (a, b) = (&w[0], &w[1]);
        let tail = a[a.len() - ms..].iter().fold(0f32, |m, v| m.max(v.abs()));
        let head = b[..ms].iter().fold(0f32, |m, v| m.max(v.abs()));
        let step = (a[a.len() - 1] - b[0]).abs();
        assert!(
            tail < 0.02 * peak && head < 0.02 * peak,
            "join {k}: edges {tail} {head} (peak {peak})"
        );
        assert!(step < 0.005 * peak, "join {k}: a step of {step}");
    }
    // The English word is English speech at the Mandarin rate: the whole
    // equals the pieces, and is as long as its parts.
    let whole = mixed
        .synthesize(&Request::new(text, &Controls::default()))
        .unwrap();
    assert_eq!(whole.sample_rate, 24000);
    let joined: Vec<f32> = pieces.concat();
    assert_eq!(whole.samples.len(), joined.len());
    assert!(whole.samples == joined, "the whole answer is the pieces");
    // A text in one script goes to its voice untouched.
    let alone = mixed
        .synthesize(&Request::new("你好。", &Controls::default()))
        .unwrap();
    let direct = zh
        .synthesize(&Request::new("你好。", &Controls::default()))
        .unwrap();
    assert!(alone.samples == direct.samples);
}
