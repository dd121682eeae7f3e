//! The Piper voice behind the engine seam, on the real voice: its
//! capabilities, controls mapped onto the voice's own parameters (the same
//! samples as the voice's API), and controls it does not honour refused
//! before any synthesis.
//!
//! Needs the default voice (scripts/fetch-models.sh); without it the tests
//! say so and pass, unless MODELS_REQUIRE_VOICE is set (CI sets it).

use std::ops::ControlFlow;
use std::path::Path;

use models::{
    Control, Controls, Engine, EngineKind, Error, Request, Streaming, SynthesisParams, Voice,
};

fn engine() -> Option<Box<dyn Engine>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("cache_hub/piper/en_US-joe-medium"))
        .unwrap_or_default();
    if !dir.join("en_US-joe-medium.onnx").exists() {
        assert!(
            std::env::var_os("MODELS_REQUIRE_VOICE").is_none(),
            "MODELS_REQUIRE_VOICE is set but the voice is missing"
        );
        eprintln!("SKIPPED: needs the voice (scripts/fetch-models.sh)");
        return None;
    }
    let voice = Voice::load(&dir, &candle_core::Device::Cpu).expect("load the voice");
    Some(Box::new(voice))
}

#[test]
fn a_piper_voice_says_what_it_honours() {
    let Some(e) = engine() else { return };
    let caps = e.capabilities();
    assert_eq!(caps.engine, EngineKind::Piper);
    assert_eq!(caps.sample_rate, 22050);
    assert_eq!(caps.num_speakers, 1);
    assert!(!caps.reference_audio);
    assert!(!caps.emotion.vector && !caps.emotion.audio);
    assert!(caps.sampling.is_empty());
    assert_eq!(
        caps.controls,
        vec![
            Control::Speaker,
            Control::NoiseScale,
            Control::LengthScale,
            Control::NoiseW
        ]
    );
    assert_eq!(
        caps.streaming,
        Streaming::Pieces {
            first_piece_frames: models::FIRST_PIECE_FRAMES,
            split_over_frames: models::SPLIT_OVER_FRAMES,
            samples_per_frame: 256,
        }
    );
}

#[test]
fn controls_give_the_samples_of_the_voice_api() {
    let Some(e) = engine() else { return };
    let controls = Controls {
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        length_scale: Some(1.3),
        ..Controls::default()
    };
    let params = SynthesisParams {
        noise_scale: 0.0,
        noise_w: 0.0,
        length_scale: 1.3,
        speaker: None,
    };
    let text = "Hello there. How are you today?";
    let via_engine = e
        .synthesize(&Request::new(text, &controls))
        .expect("engine");
    // The same voice, through its own API.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cache_hub/piper/en_US-joe-medium");
    let voice = Voice::load(&dir, &candle_core::Device::Cpu).expect("load");
    let direct = voice.synthesize(text, &params).expect("direct");
    assert_eq!(via_engine.samples, direct.samples);
    assert_eq!(via_engine.sentences, 2);
    let mut streamed = Vec::new();
    let s = e
        .synthesize_stream(&Request::new(text, &controls), true, &mut |p: &[f32]| {
            streamed.extend_from_slice(p);
            ControlFlow::Continue(())
        })
        .expect("stream");
    assert_eq!(s.samples, direct.samples.len());
    assert_eq!(streamed, direct.samples);
}

#[test]
fn controls_the_voice_does_not_honour_are_refused_naming_them() {
    let Some(e) = engine() else { return };
    let controls = Controls {
        noise_scale: Some(0.5),
        top_k: Some(20),
        emo_alpha: Some(0.6),
        ..Controls::default()
    };
    let mut called = false;
    let err = e
        .synthesize_stream(&Request::new("Hello.", &controls), true, &mut |_| {
            called = true;
            ControlFlow::Continue(())
        })
        .expect_err("refused");
    assert!(!called, "nothing is synthesised");
    let Error::Unsupported(u) = &err else {
        panic!("not Unsupported: {err}")
    };
    assert_eq!(u.unsupported, vec![Control::EmoAlpha, Control::TopK]);
    assert_eq!(
        err.to_string(),
        "the piper engine does not support emo_alpha, top_k; \
         it supports speaker, noise_scale, length_scale, noise_w"
    );
    let err = e
        .synthesize(&Request::new(
            "Hello.",
            &Controls {
                speaker: Some(3),
                ..Controls::default()
            },
        ))
        .expect_err("no speaker 3");
    assert!(matches!(err, Error::Speaker { speaker: 3, .. }), "{err}");
}
