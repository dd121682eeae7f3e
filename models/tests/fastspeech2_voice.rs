//! The Mandarin voice behind the engine seam, on its real files: a damaged
//! weight fails naming the tensor; the controls do what they say; streamed
//! pieces are the whole answer; a piece too long for the model is still
//! spoken; Latin letters alone are spelled, never dropped.

mod voices_common;

use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor};
use models::engine::{Control, Controls, Engine, EngineKind, Request};
use models::fastspeech2::acoustic::{Config, FastSpeech2};
use models::fastspeech2::mb_melgan::{self, Generator};
use models::fastspeech2::tflite::Weights;
use models::fastspeech2::voice::FastSpeech2Voice;
use models::text::script::Script;

fn say(v: &FastSpeech2Voice, text: &str, c: &Controls) -> Vec<f32> {
    v.synthesize(&Request::new(text, c)).unwrap().samples
}

#[test]
fn a_missing_or_misshaped_tensor_fails_at_load_naming_it() {
    let Some(dir) = voices_common::mandarin() else {
        return;
    };
    let dev = Device::Cpu;
    let w = Weights::load(&dir.join("fastspeech2_quan.tflite"), &dev).unwrap();
    let name = "encoder.layer_._1.attention.self.query.kernel";
    let err = FastSpeech2::load(&w.without(name).var_builder(&dev), &Config::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(name), "{err}");
    let wrong = Tensor::zeros((256, 32), DType::F32, &dev).unwrap();
    let err = FastSpeech2::load(&w.with(name, wrong).var_builder(&dev), &Config::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(name) && err.contains("shape mismatch"),
        "{err}"
    );
    let m = Weights::load(&dir.join("mb_melgan.tflite"), &dev).unwrap();
    let name = "sequential_4.residual_stack_._1._._2.conv1d_13.kernel";
    let err = Generator::load(
        &m.without(name).var_builder(&dev),
        &mb_melgan::Config::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(name), "{err}");
    // Not a TFLite file at all: the file is named.
    let bad = std::env::temp_dir().join(format!("not-a-model-{}.tflite", std::process::id()));
    std::fs::write(&bad, b"definitely not a flatbuffer").unwrap();
    let err = Weights::load(&bad, &dev).unwrap_err().to_string();
    assert!(err.contains("not-a-model") && err.contains("TFL3"), "{err}");
    let _ = std::fs::remove_file(bad);
}

#[test]
fn the_voice_speaks_mandarin_with_its_controls() {
    let Some(dir) = voices_common::mandarin() else {
        return;
    };
    let v = FastSpeech2Voice::load(&dir, &Device::Cpu).unwrap();
    let caps = v.capabilities();
    assert_eq!(caps.engine, EngineKind::FastSpeech2);
    assert_eq!(caps.sample_rate, 24000);
    assert!(caps.speaks(Script::Han) && !caps.speaks(Script::Latin));
    assert_eq!(caps.spells, vec![Script::Latin]);
    assert_eq!(
        caps.controls,
        vec![Control::LengthScale, Control::Pitch, Control::Energy]
    );
    assert!(v
        .info()
        .licence
        .as_deref()
        .unwrap_or_default()
        .contains("non-commercial"));

    let text = "欢迎使用语音合成服务。";
    let base = say(&v, text, &Controls::default());
    assert!(base.len() > 24000, "{} samples", base.len());
    // Deterministic: the same text twice is the same audio.
    assert!(base == say(&v, text, &Controls::default()));
    // length_scale is the duration ratio: 1.5 gives about 1.5 times as long.
    let slow = say(
        &v,
        text,
        &Controls {
            length_scale: Some(1.5),
            ..Controls::default()
        },
    );
    let ratio = slow.len() as f64 / base.len() as f64;
    assert!((1.35..1.65).contains(&ratio), "length ratio {ratio}");
    // Pitch and energy change the sound, not its length.
    for c in [
        Controls {
            pitch: Some(1.3),
            ..Controls::default()
        },
        Controls {
            energy: Some(0.7),
            ..Controls::default()
        },
    ] {
        let other = say(&v, text, &c);
        assert_eq!(other.len(), base.len(), "{c:?}");
        assert!(other != base, "{c:?} changed nothing");
    }
    // A control the engine does not honour is refused, not ignored.
    let err = v
        .synthesize(&Request::new(
            text,
            &Controls {
                noise_scale: Some(0.5),
                ..Controls::default()
            },
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("noise_scale"), "{err}");

    // Streamed: one piece per text piece, 0.2 s of silence between, the
    // same samples as the whole.
    let two = "你好，欢迎使用语音合成服务。";
    let mut pieces: Vec<Vec<f32>> = Vec::new();
    let s = v
        .synthesize_stream(&Request::new(two, &Controls::default()), false, &mut |p| {
            pieces.push(p.to_vec());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(s.sentences, 2);
    assert_eq!(pieces.len(), 3, "piece, silence, piece");
    assert!(pieces[1].iter().all(|x| *x == 0.0) && pieces[1].len() == 4800);
    assert!(pieces.concat() == say(&v, two, &Controls::default()));
    // A sink that stops: nothing more is synthesised.
    let mut n = 0;
    let s = v
        .synthesize_stream(&Request::new(two, &Controls::default()), false, &mut |_| {
            n += 1;
            ControlFlow::Break(())
        })
        .unwrap();
    assert!(s.stopped && n == 1);

    // Latin letters alone are spelled in Mandarin, not dropped.
    let spelled = say(&v, "CPU", &Controls::default());
    assert!(spelled.len() > 12000, "{} samples for CPU", spelled.len());
    // Text with nothing to say is silence, not an error.
    assert!(say(&v, "。，！", &Controls::default()).is_empty());

    // A piece longer than the model's 2048 frames (a long run without
    // punctuation at a quarter of the speed) is cut and still spoken whole.
    let long: String = "我们".repeat(30);
    let slowest = v
        .synthesize(&Request::new(
            &long,
            &Controls {
                length_scale: Some(4.0),
                ..Controls::default()
            },
        ))
        .unwrap();
    assert!(slowest.seconds() > 26.0, "{} s", slowest.seconds());
}
