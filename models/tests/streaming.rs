//! Streaming synthesis on the real voice: a sentence decoded in pieces (the
//! first piece of a long first sentence cut at `FIRST_PIECE_FRAMES`, each
//! piece decoded with `DECODER_CONTEXT` frames of context) gives the samples
//! of the whole decode, and the sink can stop the synthesis.
//!
//! Needs the default voice (scripts/fetch-models.sh); without it the tests
//! say so and pass, unless MODELS_REQUIRE_VOICE is set (CI sets it).

use std::ops::ControlFlow;
use std::path::Path;

use models::{SynthesisParams, Voice};

fn voice() -> Option<Voice> {
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
    Some(Voice::load(&dir, &candle_core::Device::Cpu).expect("load the voice"))
}

fn quiet(v: &Voice) -> SynthesisParams {
    SynthesisParams {
        noise_scale: 0.0,
        noise_w: 0.0,
        ..SynthesisParams::from_voice(v.info())
    }
}

#[test]
fn pieces_hold_the_samples_of_the_whole_decode() {
    let Some(v) = voice() else { return };
    let p = quiet(&v);
    for text in [
        "Hello there.",
        "It was a bright cold day in April, and the clocks were striking thirteen.",
        "The node reads the text, splits it into sentences, turns each sentence into phonemes, \
         and runs the voice on the device it was started on. Then it says so.",
    ] {
        let whole = v.synthesize(text, &p).expect("whole").samples;
        let mut pieces = Vec::new();
        let mut streamed = Vec::new();
        let s = v
            .synthesize_stream(text, &p, true, &mut |piece: &[f32]| {
                pieces.push(piece.len());
                streamed.extend_from_slice(piece);
                ControlFlow::Continue(())
            })
            .expect("streamed");
        assert_eq!(streamed.len(), whole.len(), "{text}");
        let max_diff = whole
            .iter()
            .zip(&streamed)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "{text:?}: {} pieces {pieces:?}, max |diff| {max_diff:e}",
            s.pieces
        );
        assert!(max_diff <= 1e-5, "{text}: max |diff| {max_diff}");
        // The same samples after 16-bit conversion.
        assert_eq!(
            models::audio::wav::to_i16_gain(&whole, 1.3),
            models::audio::wav::to_i16_gain(&streamed, 1.3),
            "{text}"
        );
        if whole.len() > 256 * models::SPLIT_OVER_FRAMES {
            assert_eq!(
                pieces[0],
                256 * models::FIRST_PIECE_FRAMES,
                "a short first piece"
            );
        }
    }
}

#[test]
fn the_sink_stops_the_synthesis() {
    let Some(v) = voice() else { return };
    let p = quiet(&v);
    let mut calls = 0;
    let s = v
        .synthesize_stream("One. Two. Three. Four.", &p, false, &mut |_: &[f32]| {
            calls += 1;
            ControlFlow::Break(())
        })
        .expect("stream");
    assert_eq!((calls, s.pieces, s.sentences), (1, 1, 1));
    assert!(s.stopped);
}

#[test]
fn the_calibrated_gain_keeps_speech_loud_and_rarely_clips() {
    let Some(v) = voice() else { return };
    let gain = v.calibrated_gain().expect("gain");
    assert!(gain > 0.5 && gain < 20.0, "gain {gain}");
    let p = SynthesisParams::from_voice(v.info());
    let audio = v
        .synthesize(
            "Graylog shows which node fails, since when, and why. Thank you for listening!",
            &p,
        )
        .expect("synthesize")
        .samples;
    let s16 = models::audio::wav::to_i16_gain(&audio, gain);
    let clipped = s16
        .iter()
        .filter(|&&x| x == i16::MAX || x == i16::MIN)
        .count();
    let peak = s16.iter().map(|&x| i32::from(x).abs()).max().unwrap_or(0);
    println!(
        "gain {gain:.3}: peak {peak}, clipped {clipped} of {}",
        s16.len()
    );
    assert!(peak > 16_000, "loud enough: peak {peak}");
    assert!(
        clipped * 1000 <= s16.len(),
        "clips at most 0.1% of samples: {clipped}"
    );
}
