//! The IndexTTS2 pipeline (`models::indextts2::pipeline`) against the
//! reference's recorded run (indextts2-inference 2.1.1, `infer` with
//! `top_k = 1, num_beams = 1`) on the fixtures' random checkpoint: from the
//! raw 22,050 Hz clip and the text tokens to the same per-step GPT logits,
//! the same mel codes and the same 16-bit samples, through the pipeline's
//! public API only. The flow-matching noise and the emotion clip's 16 kHz
//! samples (librosa's soxr resampling) are the reference's, recorded.

mod indextts2_common;

use candle_core::{DType, Device, Tensor};
use indextts2_common as fx;
use models::indextts2::checkpoint::IndexTts2Config;
use models::indextts2::gpt::Sampling;
use models::indextts2::pipeline::{AuxConfigs, Emotion, IndexTts2, Options, Weights};
use models::indextts2::rng::generate;
use models::indextts2::w2v_bert::W2vBertConfig;
use std::ops::ControlFlow;

fn config() -> IndexTts2Config {
    IndexTts2Config::from_value(&fx::checkpoint()["config_yaml"], "checkpoint.json").unwrap()
}

fn pipeline() -> IndexTts2 {
    let ck = fx::checkpoint();
    let aux = AuxConfigs {
        w2v_bert: W2vBertConfig {
            intermediate_size: ck["w2v_bert"]["intermediate_size"].as_u64().unwrap() as usize,
            ..W2vBertConfig::w2v_bert_2_indextts2()
        },
        w2v_padding_value: 1.0,
        bigvgan: serde_json::from_value(ck["bigvgan"].clone()).unwrap(),
    };
    let (seed, patches) = fx::generator();
    let matrix = |name: &str, cols: usize| {
        Tensor::from_vec(
            generate(seed, name, &[73, cols], &patches),
            (73, cols),
            &Device::Cpu,
        )
        .unwrap()
    };
    let weights = Weights {
        gpt: fx::random_vb("gpt"),
        s2mel: fx::random_vb("s2mel"),
        w2v_bert: fx::random_vb("w2v_bert"),
        w2v_stats: fx::random_vb("w2v_stats"),
        semantic_codec: fx::random_vb("semantic_codec"),
        campplus: fx::random_vb("campplus"),
        bigvgan: fx::random_vb("bigvgan"),
        spk_matrix: matrix("feat1", 192),
        emo_matrix: matrix("feat2", 1280),
    };
    IndexTts2::new(config(), &aux, weights).unwrap()
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&x| x as u32)
        .collect()
}

#[test]
fn config_yaml_is_read_into_the_blocks() {
    let c = config();
    assert_eq!(c.gpt.layers, 2);
    assert_eq!(c.gpt.stop_mel_token, 8193);
    assert_eq!(c.conditioning.condition_module.output_size, 64);
    assert_eq!(c.conditioning.emo_condition_module.output_size, 48);
    assert_eq!(c.dit.hidden_dim, 64);
    assert_eq!(c.length_regulator.blocks, 4);
    assert_eq!(c.mel.fmax, None);
    assert_eq!(c.emo_num.iter().sum::<usize>(), 73);
    assert_eq!(c.files.bpe_model, "bpe.model");
    assert_eq!(c.vocoder, "nvidia/bigvgan_v2_22khz_80band_256x");
}

#[test]
fn a_bad_setting_is_named() {
    let mut v = fx::checkpoint()["config_yaml"].clone();
    v["gpt"]["heads"] = serde_json::json!("twenty");
    let err = IndexTts2Config::from_value(&v, "config.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("gpt.heads"), "{err}");
    let mut v = fx::checkpoint()["config_yaml"].clone();
    v["s2mel"]["DiT"].as_object_mut().unwrap().remove("depth");
    let err = IndexTts2Config::from_value(&v, "config.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("s2mel.DiT.depth") && err.contains("missing"),
        "{err}"
    );
    let mut v = fx::checkpoint()["config_yaml"].clone();
    v["gpt_checkpoint"] = serde_json::json!("../../etc/gpt.pth");
    let err = IndexTts2Config::from_value(&v, "config.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("gpt_checkpoint"), "{err}");
    let mut v = fx::checkpoint()["config_yaml"].clone();
    v["version"] = serde_json::json!(1.5);
    let err = IndexTts2Config::from_value(&v, "config.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("version"), "{err}");
    let err = IndexTts2Config::from_yaml("gpt: [unclosed")
        .unwrap_err()
        .to_string();
    assert!(err.contains("YAML"), "{err}");
}

#[test]
fn end_to_end_equals_the_reference() {
    let g = fx::golden();
    let tts = pipeline();
    let speaker = tts
        .speaker(&fx::samples(&g, "clip.spk.samples"), 22_050)
        .unwrap();
    fx::assert_close(
        "pipeline: spk_cond_emb",
        &speaker.cond_emb,
        &fx::get(&g, "w2v.spk.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );
    fx::assert_close(
        "pipeline: style",
        &speaker.style,
        &fx::get(&g, "campplus.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );
    fx::assert_close(
        "pipeline: prompt condition",
        &speaker.prompt_condition,
        &fx::get(&g, "lr.prompt.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );
    fx::assert_close(
        "pipeline: reference mel",
        &speaker.ref_mel,
        &fx::get(&g, "mel.ref.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );
    // The reference reads the speaker file again at 16 kHz (soxr) as the
    // emotion clip: its recorded samples go in as an emotion clip, alpha 1.
    let emo = tts
        .emotion_clip(&fx::samples(&g, "clip.emo.samples"), 16_000)
        .unwrap();
    fx::assert_close(
        "pipeline: emo_cond_emb",
        &emo,
        &fx::get(&g, "w2v.emo.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );
    let opts = Options {
        emotion: Emotion::Clip(emo),
        emo_alpha: 1.0,
        sampling: Sampling::greedy(),
        noise: Some(vec![fx::get(&g, "cfm.noise").unsqueeze(0).unwrap()]),
        ..Options::default()
    };
    fx::assert_close(
        "pipeline: emotion vector",
        &tts.emotion_vector(&speaker, &opts).unwrap(),
        &fx::get(&g, "gpt.emovec").unsqueeze(0).unwrap(),
        fx::TOL,
    );
    let text = ids(&fx::get(&g, "gpt.text_tokens"));
    let mut streamed = Vec::new();
    let out = tts
        .synthesize(&speaker, &[text], &opts, &mut |s| {
            streamed.extend_from_slice(s);
            ControlFlow::Continue(())
        })
        .unwrap();
    let raw = ids(&fx::get(&g, "gpt.codes_raw"));
    assert_eq!(out.segments.len(), 1);
    assert!(out.segments[0].stopped);
    assert_eq!(out.segments[0].codes, raw[..raw.len() - 1], "mel codes");
    assert_eq!(out.mel_tokens, raw.len() - 1);
    assert_eq!(streamed, out.samples);
    let wav = Tensor::new(out.samples.as_slice(), &Device::Cpu).unwrap();
    fx::assert_close(
        "pipeline: waveform",
        &wav,
        &fx::get(&g, "bigvgan.out"),
        fx::TOL,
    );
    let want: Vec<i64> = fx::get(&g, "final.wav_i16")
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(out.samples.len(), want.len());
    let worst = out
        .samples
        .iter()
        .zip(&want)
        .map(|(&s, &w)| ((s * 32767.0).clamp(-32767.0, 32767.0) as i64 - w).abs())
        .max()
        .unwrap();
    println!(
        "PARITY pipeline: {} int16 samples, max difference {worst} LSB",
        want.len()
    );
    assert!(worst <= 1, "int16 output off by {worst}");
    assert!(out.timings.gpt_ms > 0.0 && out.timings.s2mel_ms > 0.0 && out.timings.vocoder_ms > 0.0);
}

#[test]
fn segments_are_joined_by_silence_and_seeds_reproduce() {
    let g = fx::golden();
    let tts = pipeline();
    let speaker = tts
        .speaker(&fx::samples(&g, "clip.spk.samples"), 22_050)
        .unwrap();
    let text = ids(&fx::get(&g, "gpt.text_tokens"));
    let opts = Options {
        sampling: Sampling {
            max_mel_tokens: 12,
            ..Sampling::default()
        },
        seed: 5,
        ..Options::default()
    };
    let mut pieces = Vec::new();
    let a = tts
        .synthesize(&speaker, &[text.clone(), text.clone()], &opts, &mut |s| {
            pieces.push(s.len());
            ControlFlow::Continue(())
        })
        .unwrap();
    let b = tts
        .synthesize(&speaker, &[text.clone(), text.clone()], &opts, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(a.samples, b.samples, "one seed, one result");
    // segment, 200 ms of silence, segment
    assert_eq!(pieces.len(), 3);
    assert_eq!(pieces[1], 4410);
    let first = a.segments[0].samples;
    assert!(a.samples[first..first + 4410].iter().all(|&x| x == 0.0));
    assert_eq!(a.samples.len(), first + 4410 + a.segments[1].samples);
    assert!(a.segments.iter().all(|s| s.codes.len() <= 12));
    // A sink that stops after the first piece: no second segment is made.
    let mut calls = 0;
    let cut = tts
        .synthesize(&speaker, &[text.clone(), text.clone()], &opts, &mut |_| {
            calls += 1;
            ControlFlow::Break(())
        })
        .unwrap();
    assert!(cut.stopped);
    assert_eq!((calls, cut.segments.len()), (1, 1));
    let c = tts
        .synthesize(
            &speaker,
            &[text],
            &Options {
                seed: 6,
                ..opts.clone()
            },
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
    assert_ne!(
        c.samples[..first.min(c.samples.len())],
        a.samples[..first.min(c.samples.len())]
    );
}

#[test]
fn emotion_vector_and_bad_inputs() {
    let g = fx::golden();
    let tts = pipeline();
    let speaker = tts
        .speaker(&fx::samples(&g, "clip.spk.samples"), 22_050)
        .unwrap();
    let e = &fx::checkpoint()["emo_vector"];
    let mut v = [0f64; 8];
    for (x, j) in v.iter_mut().zip(e["vector"].as_array().unwrap()) {
        *x = j.as_f64().unwrap();
    }
    // The reference (emotion vector, alpha 0.7) read the speaker file at
    // 16 kHz as the emotion clip: same substitution as above.
    let speaker = models::indextts2::pipeline::Speaker {
        emo_cond_emb: tts
            .emotion_clip(&fx::samples(&g, "clip.emo.samples"), 16_000)
            .unwrap(),
        ..speaker
    };
    let opts = Options {
        emotion: Emotion::Vector(v),
        emo_alpha: e["alpha"].as_f64().unwrap(),
        ..Options::default()
    };
    fx::assert_close(
        "pipeline: emotion vector from weights",
        &tts.emotion_vector(&speaker, &opts).unwrap(),
        &fx::get(&g, "emo_vector.emo_vec").unsqueeze(0).unwrap(),
        fx::TOL,
    );
    let bad = Options {
        emotion: Emotion::Vector([f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        ..Options::default()
    };
    assert!(tts.emotion_vector(&speaker, &bad).is_err());
    let err = tts.synthesize(&speaker, &[], &Options::default(), &mut |_| {
        ControlFlow::Continue(())
    });
    assert!(err.unwrap_err().to_string().contains("no text"));
    let err = tts.synthesize(&speaker, &[vec![12_000]], &Options::default(), &mut |_| {
        ControlFlow::Continue(())
    });
    assert!(err.unwrap_err().to_string().contains("12000"));
    let err = tts.speaker(&[0.0; 100], 22_050).unwrap_err().to_string();
    assert!(err.contains("shorter than 0.1 s"), "{err}");
    let err = tts.speaker(&[0.0; 22_050], 1_000).unwrap_err().to_string();
    assert!(err.contains("sample rate"), "{err}");
    // Another sample rate goes through the resampler and a second w2v-BERT
    // pass for the emotion path.
    let clip48: Vec<f32> = fx::samples(&g, "clip.spk.samples")
        .iter()
        .flat_map(|&s| [s, s])
        .collect();
    let s = tts.speaker(&clip48, 44_100).unwrap();
    assert_eq!(s.ref_mel.dims(), speaker.ref_mel.dims());
    assert!((s.seconds - 1.0).abs() < 1e-3, "{}", s.seconds);
}

/// The fixtures' checkpoint as `random_checkpoint::write` describes it.
fn fixture_spec() -> models::indextts2::random_checkpoint::Spec {
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx::dir().join("generator.json")).unwrap())
            .unwrap();
    models::indextts2::random_checkpoint::Spec::from_fixtures(
        &fx::checkpoint(),
        &g,
        std::fs::read(fx::dir().join("bpe.model")).unwrap(),
    )
    .unwrap()
}

#[test]
fn the_random_checkpoint_in_the_official_layout_speaks_like_the_reference() {
    // Written as files (torch zip pickles, safetensors, a hub cache), read
    // back by the official-file loaders: the same codes and samples as the
    // reference's run on the same weights.
    use models::indextts2::checkpoint::{AuxModels, Checkpoint};
    let g = fx::golden();
    let dir = std::env::temp_dir().join(format!("itts-random-ckpt-{}", std::process::id()));
    let t = std::time::Instant::now();
    let written = models::indextts2::random_checkpoint::write(
        &fixture_spec(),
        &dir.join("checkpoints"),
        &dir.join("hub"),
    )
    .unwrap();
    println!(
        "random checkpoint: {} tensors, {:.1} MB, written in {:.1} s",
        written.tensors,
        written.bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let ckpt = Checkpoint::open(&written.checkpoint).unwrap();
    let aux = AuxModels::locate(&written.hub, &ckpt.config.vocoder).unwrap();
    let t = std::time::Instant::now();
    let tts = IndexTts2::load(&ckpt, &aux, &Device::Cpu).unwrap();
    println!("loaded in {:.1} s", t.elapsed().as_secs_f64());
    let speaker = tts
        .speaker(&fx::samples(&g, "clip.spk.samples"), 22_050)
        .unwrap();
    let emo = tts
        .emotion_clip(&fx::samples(&g, "clip.emo.samples"), 16_000)
        .unwrap();
    let opts = Options {
        emotion: Emotion::Clip(emo),
        sampling: Sampling::greedy(),
        noise: Some(vec![fx::get(&g, "cfm.noise").unsqueeze(0).unwrap()]),
        ..Options::default()
    };
    let text = ids(&fx::get(&g, "gpt.text_tokens"));
    let out = tts
        .synthesize(&speaker, &[text], &opts, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    let raw = ids(&fx::get(&g, "gpt.codes_raw"));
    assert_eq!(out.segments[0].codes, raw[..raw.len() - 1], "mel codes");
    let wav = Tensor::new(out.samples.as_slice(), &Device::Cpu).unwrap();
    fx::assert_close(
        "files: waveform",
        &wav,
        &fx::get(&g, "bigvgan.out"),
        fx::TOL,
    );
    // A file that loses a tensor fails naming it.
    let gpt = written.checkpoint.join("gpt.pth");
    models::indextts2::weights::write_pth(
        &gpt,
        &models::indextts2::weights::PthNode::Dict(vec![(
            "mel_head.bias".into(),
            models::indextts2::weights::PthNode::Tensor(vec![8194]),
        )]),
        &mut |_, s| vec![0.0; s.iter().product()],
    )
    .unwrap();
    let err = IndexTts2::load(&ckpt, &aux, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("text_embedding") || err.contains("gpt"),
        "{err}"
    );
    println!("a gpt.pth without its tensors: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
