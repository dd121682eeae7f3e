//! Parity of the ported IndexTTS2 blocks with the reference
//! (indextts2-inference 2.1.1): each block is fed the input the reference's
//! block received in the recorded pipeline run and must produce its output
//! within a relative error of 1e-4 (max abs error / max |reference|, f32).
//! Weights come from the deterministic generator (the fixture checkpoint,
//! rebuilt in memory); no PyTorch needed.
//!
//! Fixtures: models/tests/fixtures/indextts2 (scripts/make-indextts2-fixtures.py).

mod indextts2_common;

use candle_core::{DType, Device, Tensor};
use indextts2_common as fx;
use models::audio::features::{self as audio, FbankConfig, MelConfig};
use models::audio::Resampler;
use models::indextts2::bigvgan::{kaiser_sinc_filter, BigVgan, BigVganConfig};
use models::indextts2::campplus::{CampPlus, CampPlusConfig};
use models::indextts2::dit::{Dit, DitConfig};
use models::indextts2::emotion::{scale_emo_vector, EmotionMatrices, EMO_NUM};
use models::indextts2::flow_matching::{self, linspace01, CfmParams};
use models::indextts2::gpt::{GptConfig, Sampling, UnifiedVoiceGpt};
use models::indextts2::gpt_conditioning::{
    ConformerConfig, GptConditioning, GptConditioningConfig,
};
use models::indextts2::gpt_layer::{GptLayer, GptLayerConfig};
use models::indextts2::length_regulator::{target_frames, LengthRegulator, LengthRegulatorConfig};
use models::indextts2::rng::generate;
use models::indextts2::semantic_codec::SemanticCodec;
use models::indextts2::w2v_bert::{self, SemanticStats, W2vBert, W2vBertConfig};

const CPU: Device = Device::Cpu;

#[test]
fn resample_22050_to_16000() {
    let g = fx::golden();
    let x = fx::samples(&g, "clip.spk.samples");
    let want = fx::get(&g, "resample.22050_16000.out");
    let r = Resampler::new(22_050, 16_000).unwrap();
    let y = r.process(&x);
    let got = Tensor::new(y.as_slice(), &CPU).unwrap();
    fx::assert_close("resample 22050→16000", &got, &want, fx::TOL);
    // The fbank input of the pipeline is this output.
    fx::assert_close(
        "resample = fbank input",
        &want,
        &fx::get(&g, "fbank.in"),
        0.0,
    );
}

#[test]
fn s2mel_mel_spectrogram() {
    let g = fx::golden();
    let x = fx::samples(&g, "mel.ref.in");
    let want = fx::get(&g, "mel.ref.out").unsqueeze(0).unwrap();
    let got = audio::mel_spectrogram(&x, &MelConfig::s2mel_22k(), &CPU).unwrap();
    fx::assert_close("mel spectrogram (ref_mel)", &got, &want, fx::TOL);
}

#[test]
fn kaldi_fbank_and_mean() {
    let g = fx::golden();
    let x = fx::samples(&g, "fbank.in");
    let want = fx::get(&g, "fbank.out");
    let got = audio::kaldi_fbank(&x, &FbankConfig::campplus(), &CPU).unwrap();
    fx::assert_close("kaldi fbank", &got, &want, fx::TOL);
    // infer_v2 subtracts the mean over time before CAMPPlus.
    let centred = got.broadcast_sub(&got.mean_keepdim(0).unwrap()).unwrap();
    fx::assert_close(
        "fbank - mean (campplus input)",
        &centred,
        &fx::get(&g, "campplus.in"),
        fx::TOL,
    );
}

#[test]
fn campplus_style() {
    let g = fx::golden();
    let model = CampPlus::load(&fx::random_vb("campplus"), &CampPlusConfig::default()).unwrap();
    let x = fx::get(&g, "campplus.in").unsqueeze(0).unwrap();
    let got = model.forward(&x).unwrap();
    let want = fx::get(&g, "campplus.out").unsqueeze(0).unwrap();
    fx::assert_close("campplus (style)", &got, &want, fx::TOL);
    // The style the flow matching receives is this output.
    fx::assert_close(
        "style = cfm style",
        &want,
        &fx::get(&g, "cfm.style").unsqueeze(0).unwrap(),
        0.0,
    );
}

fn tiny_bigvgan_config() -> BigVganConfig {
    serde_json::from_value(fx::checkpoint()["bigvgan"].clone()).unwrap()
}

#[test]
fn bigvgan_anti_aliasing_filter() {
    let g = fx::golden();
    let f = kaiser_sinc_filter(0.25, 0.3, 12);
    let got = Tensor::new(f.as_slice(), &CPU).unwrap();
    fx::assert_close(
        "kaiser sinc (up)",
        &got,
        &fx::get(&g, "bigvgan.filter.up"),
        1e-6,
    );
    fx::assert_close(
        "kaiser sinc (down)",
        &got,
        &fx::get(&g, "bigvgan.filter.down"),
        1e-6,
    );
}

#[test]
fn bigvgan_waveform() {
    let g = fx::golden();
    let model = BigVgan::load(&fx::random_vb("bigvgan"), &tiny_bigvgan_config()).unwrap();
    let mel = fx::get(&g, "bigvgan.in").unsqueeze(0).unwrap();
    let got = model.forward(&mel).unwrap().flatten_all().unwrap();
    let want = fx::get(&g, "bigvgan.out");
    // Not saturated: the comparison is on real values.
    let clipped = want
        .abs()
        .unwrap()
        .ge(0.999f32)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    assert!(clipped.sum_all().unwrap().to_scalar::<f32>().unwrap() < 10.0);
    fx::assert_close("bigvgan (waveform)", &got, &want, fx::TOL);
}

#[test]
fn bigvgan_from_official_files() {
    // A tiny BigVGAN written by the reference's own save format: config.json
    // and bigvgan_generator.pt = {"generator": state dict with weight norm}.
    let g = fx::golden();
    let model = BigVgan::load_dir(&fx::dir().join("formats/bigvgan_micro"), &CPU).unwrap();
    let mel = fx::get(&g, "bigvgan_micro.in").unsqueeze(0).unwrap();
    let got = model.forward(&mel).unwrap().flatten_all().unwrap();
    fx::assert_close(
        "bigvgan micro (from .pt)",
        &got,
        &fx::get(&g, "bigvgan_micro.out"),
        fx::TOL,
    );
}

fn length_regulator() -> LengthRegulator {
    let cfg = &fx::checkpoint()["config_yaml"]["s2mel"]["length_regulator"];
    let cfg = LengthRegulatorConfig {
        channels: cfg["channels"].as_u64().unwrap() as usize,
        in_channels: cfg["in_channels"].as_u64().unwrap() as usize,
        blocks: cfg["sampling_ratios"].as_array().unwrap().len(),
    };
    assert_eq!(cfg, LengthRegulatorConfig::indextts2());
    LengthRegulator::load(&fx::random_vb("s2mel").pp("length_regulator"), &cfg).unwrap()
}

fn ylens(g: &std::collections::HashMap<String, Tensor>, name: &str) -> usize {
    fx::get(g, name).to_vec1::<i64>().unwrap()[0] as usize
}

#[test]
fn length_regulator_prompt() {
    let g = fx::golden();
    let lr = length_regulator();
    let x = fx::get(&g, "lr.prompt.in").unsqueeze(0).unwrap();
    let frames = ylens(&g, "lr.prompt.ylens");
    // The prompt is stretched to the reference mel's frames.
    assert_eq!(frames, fx::get(&g, "mel.ref.out").dim(1).unwrap());
    let got = lr.forward(&x, frames).unwrap();
    let want = fx::get(&g, "lr.prompt.out").unsqueeze(0).unwrap();
    fx::assert_close("length regulator (prompt_condition)", &got, &want, fx::TOL);
}

#[test]
fn gpt_layer_and_length_regulator_infer() {
    let g = fx::golden();
    let layer = GptLayer::load(
        &fx::random_vb("s2mel").pp("gpt_layer"),
        &GptLayerConfig::default(),
    )
    .unwrap();
    let latent = fx::get(&g, "gpt.latent").unsqueeze(0).unwrap();
    let got = layer.forward(&latent).unwrap();
    let want = fx::get(&g, "gpt_layer.out").unsqueeze(0).unwrap();
    fx::assert_close("gpt_layer", &got, &want, fx::TOL);

    // S_infer = vq2emb(codes)ᵀ + gpt_layer(latent), stretched to ⌊codes × 1.72⌋.
    let s_infer = (fx::get(&g, "codec.vq2emb.out")
        .t()
        .unwrap()
        .unsqueeze(0)
        .unwrap()
        + &want)
        .unwrap();
    let codes = fx::get(&g, "codec.vq2emb.codes").dim(0).unwrap();
    let frames = ylens(&g, "lr.infer.ylens");
    assert_eq!(frames, (codes as f64 * 1.72) as usize);
    let got = length_regulator().forward(&s_infer, frames).unwrap();
    let want = fx::get(&g, "lr.infer.out").unsqueeze(0).unwrap();
    fx::assert_close("length regulator (cond)", &got, &want, fx::TOL);
}

fn codec() -> SemanticCodec {
    let cfg = fx::semantic_codec_config();
    SemanticCodec::load(&fx::random_vb("semantic_codec"), &cfg).unwrap()
}

#[test]
fn semantic_codec_quantize() {
    let g = fx::golden();
    let x = fx::get(&g, "w2v.spk.out").unsqueeze(0).unwrap();
    let (codes, emb) = codec().quantize(&x).unwrap();
    let got: Vec<u32> = codes.squeeze(0).unwrap().to_vec1().unwrap();
    let want: Vec<u32> = fx::get(&g, "codec.quantize.codes")
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&c| c as u32)
        .collect();
    let want_emb = fx::get(&g, "codec.quantize.out").unsqueeze(0).unwrap();
    fx::assert_close("semantic codec quantize (S_ref)", &emb, &want_emb, fx::TOL);
    assert_eq!(got, want, "semantic codes differ");
    println!(
        "PARITY semantic codes: {} of {} equal",
        got.len(),
        want.len()
    );
}

#[test]
fn semantic_codec_vq2emb() {
    let g = fx::golden();
    let codes = fx::get(&g, "codec.vq2emb.codes").unsqueeze(0).unwrap();
    // The codes are the GPT's, cut at the stop token.
    let raw = fx::get(&g, "gpt.codes_raw").to_vec1::<i64>().unwrap();
    assert_eq!(raw.last(), Some(&8193));
    assert_eq!(
        codes.squeeze(0).unwrap().to_vec1::<i64>().unwrap(),
        raw[..raw.len() - 1]
    );
    let got = codec().vq2emb(&codes).unwrap();
    let want = fx::get(&g, "codec.vq2emb.out")
        .t()
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    fx::assert_close("semantic codec vq2emb", &got, &want, fx::TOL);
}

fn mask_of(g: &std::collections::HashMap<String, Tensor>, name: &str) -> Vec<u8> {
    fx::get(g, name)
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&m| m as u8)
        .collect()
}

#[test]
fn w2v_bert_input_features() {
    let g = fx::golden();
    for (tag, audio) in [
        ("spk", "resample.22050_16000.out"),
        ("emo", "clip.emo.samples"),
        ("small", "w2v_small.samples"),
    ] {
        let prefix = if tag == "small" {
            "w2v_small".to_string()
        } else {
            format!("w2v.{tag}")
        };
        let x = fx::samples(&g, audio);
        let f = w2v_bert::features(&x, 1.0, &CPU).unwrap();
        let want = fx::get(&g, &format!("{prefix}.input_features"))
            .unsqueeze(0)
            .unwrap();
        fx::assert_close(
            &format!("w2v-BERT input features ({tag})"),
            &f.features,
            &want,
            fx::TOL,
        );
        let mask: Vec<u8> = f.mask.squeeze(0).unwrap().to_vec1().unwrap();
        assert_eq!(
            mask,
            mask_of(&g, &format!("{prefix}.attention_mask")),
            "{tag} mask"
        );
    }
}

#[test]
fn w2v_bert_small_with_padding() {
    let g = fx::golden();
    let c = &fx::checkpoint()["w2v_small"];
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    let cfg = W2vBertConfig {
        hidden_size: n("hidden_size"),
        layers: n("num_hidden_layers"),
        num_attention_heads: n("num_attention_heads"),
        intermediate_size: n("intermediate_size"),
        left_max_position_embeddings: n("left_max_position_embeddings"),
        right_max_position_embeddings: n("right_max_position_embeddings"),
        ..W2vBertConfig::w2v_bert_2_indextts2()
    };
    let model = W2vBert::load(&fx::random_vb("w2v_small"), &cfg).unwrap();
    let feats = fx::get(&g, "w2v_small.input_features")
        .unsqueeze(0)
        .unwrap();
    let mask = Tensor::new(mask_of(&g, "w2v_small.attention_mask").as_slice(), &CPU)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    // The last frame holds the extractor's padding and is masked.
    assert_eq!(mask.min_all().unwrap().to_scalar::<u8>().unwrap(), 0);
    let states = model.forward(&feats, Some(&mask)).unwrap();
    assert_eq!(states.len(), cfg.layers + 1);
    for (i, s) in states.iter().enumerate() {
        let want = fx::get(&g, &format!("w2v_small.hidden.{i}"))
            .unsqueeze(0)
            .unwrap();
        fx::assert_close(
            &format!("w2v-BERT small hidden_states[{i}]"),
            s,
            &want,
            fx::TOL,
        );
    }
}

#[test]
fn end_to_end_from_the_clip_and_tokens() {
    // infer_v2 chained with the ported blocks, from the raw 22,050 Hz clip and
    // the text tokens to the int16 samples: resampling, w2v-BERT features and
    // encoder (1024 wide as IndexTTS2 hard-codes, 17 of its 18 thin layers),
    // semantic codes, reference mel, fbank and CAMPPlus style, length
    // regulator, GPT conditioning, greedy decoding, latent pass, gpt_layer,
    // flow matching (recorded noise), BigVGAN. Inputs not ported: the
    // emotion clip's 16 kHz samples (librosa's soxr resampling) and the noise.
    let g = fx::golden();
    let clip = fx::samples(&g, "clip.spk.samples");
    let audio_16k = Resampler::new(22_050, 16_000).unwrap().process(&clip);
    let (spk_cond_emb, emo_cond_emb) = {
        let c = &fx::checkpoint()["w2v_bert"];
        let cfg = W2vBertConfig {
            intermediate_size: c["intermediate_size"].as_u64().unwrap() as usize,
            ..W2vBertConfig::w2v_bert_2_indextts2()
        };
        let w2v = W2vBert::load(&fx::random_vb("w2v_bert"), &cfg).unwrap();
        let stats = SemanticStats::load(&fx::random_vb("w2v_stats"), 1024).unwrap();
        let feats = w2v_bert::features(&audio_16k, 1.0, &CPU).unwrap();
        let spk = w2v_bert::semantic_embedding(&w2v, &stats, &feats, 17).unwrap();
        let feats = w2v_bert::features(&fx::samples(&g, "clip.emo.samples"), 1.0, &CPU).unwrap();
        let emo = w2v_bert::semantic_embedding(&w2v, &stats, &feats, 17).unwrap();
        (spk, emo)
    };
    let want = fx::get(&g, "w2v.spk.out").unsqueeze(0).unwrap();
    fx::assert_close("e2e: spk_cond_emb", &spk_cond_emb, &want, fx::TOL);
    let want = fx::get(&g, "w2v.emo.out").unsqueeze(0).unwrap();
    fx::assert_close("e2e: emo_cond_emb", &emo_cond_emb, &want, fx::TOL);

    let codec = codec();
    let (codes, s_ref) = codec.quantize(&spk_cond_emb).unwrap();
    let codes: Vec<u32> = codes.squeeze(0).unwrap().to_vec1().unwrap();
    let want: Vec<u32> = fx::get(&g, "codec.quantize.codes")
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&c| c as u32)
        .collect();
    assert_eq!(codes, want, "e2e: semantic codes");
    let ref_mel = audio::mel_spectrogram(&clip, &MelConfig::s2mel_22k(), &CPU).unwrap();
    let p = ref_mel.dim(2).unwrap();
    let lr = length_regulator();
    let prompt_condition = lr.forward(&s_ref, p).unwrap();
    let want = fx::get(&g, "lr.prompt.out").unsqueeze(0).unwrap();
    fx::assert_close("e2e: prompt_condition", &prompt_condition, &want, fx::TOL);
    let fbank = audio::kaldi_fbank(&audio_16k, &FbankConfig::campplus(), &CPU).unwrap();
    let fbank = fbank
        .broadcast_sub(&fbank.mean_keepdim(0).unwrap())
        .unwrap();
    let camp = CampPlus::load(&fx::random_vb("campplus"), &CampPlusConfig::default()).unwrap();
    let style = camp.forward(&fbank.unsqueeze(0).unwrap()).unwrap();
    fx::assert_close(
        "e2e: style",
        &style,
        &fx::get(&g, "campplus.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );

    let (codes, latent) = {
        let cond_cfg = gpt_conditioning_cfg(&fx::checkpoint()["config_yaml"]["gpt"]);
        let cond = GptConditioning::load(&fx::random_vb("gpt"), &cond_cfg).unwrap();
        let speech = cond.speech_latent(&spk_cond_emb).unwrap();
        let emovec = cond
            .merge_emovec(&spk_cond_emb, &emo_cond_emb, 1.0)
            .unwrap();
        let gpt = UnifiedVoiceGpt::load(&fx::random_vb("gpt"), &gpt_cfg()).unwrap();
        let text: Vec<u32> = fx::get(&g, "gpt.text_tokens")
            .to_vec1::<i64>()
            .unwrap()
            .iter()
            .map(|&t| t as u32)
            .collect();
        let prompt = gpt.prompt(&speech, &emovec, &text).unwrap();
        let sampling = Sampling::greedy();
        let out = gpt.generate(&prompt, &sampling, &mut || 0.0).unwrap();
        assert!(out.stopped);
        let latent = gpt.latent(&speech, &emovec, &text, &out.codes).unwrap();
        (out.codes, latent)
    };
    let raw = fx::get(&g, "gpt.codes_raw").to_vec1::<i64>().unwrap();
    let want: Vec<u32> = raw[..raw.len() - 1].iter().map(|&c| c as u32).collect();
    assert_eq!(codes, want, "e2e: mel codes");
    fx::assert_close(
        "e2e: gpt latent",
        &latent,
        &fx::get(&g, "gpt.latent").unsqueeze(0).unwrap(),
        fx::TOL,
    );

    let layer = GptLayer::load(
        &fx::random_vb("s2mel").pp("gpt_layer"),
        &GptLayerConfig::default(),
    )
    .unwrap();
    let code_t = Tensor::new(codes.as_slice(), &CPU)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let s_infer = (codec.vq2emb(&code_t).unwrap() + layer.forward(&latent).unwrap()).unwrap();
    let cond = lr.forward(&s_infer, target_frames(codes.len())).unwrap();
    let mu = Tensor::cat(&[&prompt_condition, &cond], 1).unwrap();
    let noise = fx::get(&g, "cfm.noise").unsqueeze(0).unwrap();
    let mel = flow_matching::inference(&dit(), &mu, &ref_mel, &style, &noise, CfmParams::default())
        .unwrap();
    let mel = mel.narrow(2, p, mel.dim(2).unwrap() - p).unwrap();
    let voc = BigVgan::load(&fx::random_vb("bigvgan"), &tiny_bigvgan_config()).unwrap();
    let wav = voc.forward(&mel).unwrap().flatten_all().unwrap();
    fx::assert_close("e2e: waveform", &wav, &fx::get(&g, "bigvgan.out"), fx::TOL);
    assert_int16_within_one_lsb("e2e", &wav, &g);
}

fn dit() -> Dit {
    let s = &fx::checkpoint()["config_yaml"]["s2mel"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap() as usize;
    let cfg = DitConfig {
        hidden_dim: n(&s["DiT"]["hidden_dim"]),
        num_heads: n(&s["DiT"]["num_heads"]),
        depth: n(&s["DiT"]["depth"]),
        in_channels: n(&s["DiT"]["in_channels"]),
        content_dim: n(&s["DiT"]["content_dim"]),
        style_dim: n(&s["style_encoder"]["dim"]),
        uvit_skip_connection: s["DiT"]["uvit_skip_connection"].as_bool().unwrap(),
        wavenet_hidden_dim: n(&s["wavenet"]["hidden_dim"]),
        wavenet_num_layers: n(&s["wavenet"]["num_layers"]),
        wavenet_kernel_size: n(&s["wavenet"]["kernel_size"]),
        wavenet_dilation_rate: n(&s["wavenet"]["dilation_rate"]),
    };
    Dit::load(&fx::random_vb("s2mel").pp("cfm.estimator"), &cfg).unwrap()
}

/// `cat([prompt_condition, cond])`, the flow matching's `mu`.
fn mu(g: &std::collections::HashMap<String, Tensor>) -> Tensor {
    Tensor::cat(
        &[fx::get(g, "lr.prompt.out"), fx::get(g, "lr.infer.out")],
        0,
    )
    .unwrap()
    .unsqueeze(0)
    .unwrap()
}

#[test]
fn linspace_like_torch() {
    let s = linspace01(25);
    assert_eq!(s.len(), 26);
    // torch.linspace(0, 1, 26)[10..16], bit for bit.
    let want = [
        0x3ecc_cccc_u32,
        0x3ee1_47ae,
        0x3ef5_c28f,
        0x3f05_1eb8,
        0x3f0f_5c29,
        0x3f19_999a,
    ];
    let got: Vec<u32> = s[10..16].iter().map(|x| x.to_bits()).collect();
    assert_eq!(got, want);
}

#[test]
fn dit_first_step_with_guidance() {
    let g = fx::golden();
    let est = dit();
    let x = fx::get(&g, "dit.step0.x").unsqueeze(0).unwrap();
    let ref_mel = fx::get(&g, "mel.ref.out").unsqueeze(0).unwrap();
    let t = x.dim(2).unwrap();
    let prompt_x = ref_mel
        .pad_with_zeros(2, 0, t - ref_mel.dim(2).unwrap())
        .unwrap();
    let style = fx::get(&g, "cfm.style").unsqueeze(0).unwrap();
    let mu = mu(&g);
    let cat0 = |a: &Tensor| Tensor::cat(&[a, &a.zeros_like().unwrap()], 0).unwrap();
    let tt = Tensor::new(&[0f32, 0.0], &CPU).unwrap();
    let got = est
        .forward(
            &Tensor::cat(&[&x, &x], 0).unwrap(),
            &cat0(&prompt_x),
            &tt,
            &cat0(&style),
            &cat0(&mu),
        )
        .unwrap();
    fx::assert_close(
        "DiT step 0 (cond and uncond)",
        &got,
        &fx::get(&g, "dit.step0.out"),
        fx::TOL,
    );
}

#[test]
fn flow_matching_25_steps() {
    let g = fx::golden();
    let est = dit();
    let noise = fx::get(&g, "cfm.noise").unsqueeze(0).unwrap();
    let ref_mel = fx::get(&g, "mel.ref.out").unsqueeze(0).unwrap();
    let style = fx::get(&g, "cfm.style").unsqueeze(0).unwrap();
    let out = flow_matching::inference(
        &est,
        &mu(&g),
        &ref_mel,
        &style,
        &noise,
        CfmParams::default(),
    )
    .unwrap();
    fx::assert_close(
        "flow matching (25 Euler steps, cfg 0.7)",
        &out,
        &fx::get(&g, "cfm.out").unsqueeze(0).unwrap(),
        fx::TOL,
    );
    // The vocoder's input is the generated part.
    let p = ref_mel.dim(2).unwrap();
    let gen = out.narrow(2, p, out.dim(2).unwrap() - p).unwrap();
    fx::assert_close(
        "mel → bigvgan input",
        &gen,
        &fx::get(&g, "bigvgan.in").unsqueeze(0).unwrap(),
        fx::TOL,
    );
}

#[test]
fn dit_with_uvit_skips() {
    // Depth 5: layers 0 and 1 emit U-ViT skips, layers 3 and 4 take them
    // (last in, first out); two timesteps in one batch.
    let g = fx::golden();
    let s = &fx::checkpoint()["dit_small"];
    let n = |k: &str| s[k].as_u64().unwrap() as usize;
    let cfg = DitConfig {
        hidden_dim: n("hidden_dim"),
        num_heads: n("num_heads"),
        depth: n("depth"),
        content_dim: n("content_dim"),
        wavenet_hidden_dim: n("wavenet_hidden_dim"),
        wavenet_num_layers: n("wavenet_num_layers"),
        wavenet_dilation_rate: 1,
        ..DitConfig::indextts2()
    };
    let est = Dit::load(&fx::random_vb("dit_small"), &cfg).unwrap();
    let get = |k: &str| fx::get(&g, &format!("dit_small.{k}"));
    let got = est
        .forward(
            &get("x"),
            &get("prompt_x"),
            &get("t"),
            &get("style"),
            &get("cond"),
        )
        .unwrap();
    fx::assert_close("DiT depth 5 (U-ViT skips)", &got, &get("out"), fx::TOL);
}

#[test]
fn synthesis_from_codes_and_latent() {
    // The pipeline after the GPT, chained with the ported blocks: semantic
    // embeddings of the codes plus the projected latent, length regulation to
    // ⌊codes × 1.72⌋ frames, flow matching after the prompt (recorded noise),
    // BigVGAN, and the int16 conversion of `infer`.
    let g = fx::golden();
    let raw = fx::get(&g, "gpt.codes_raw").to_vec1::<i64>().unwrap();
    let stop = raw.iter().position(|&c| c == 8193).unwrap();
    let codes = Tensor::new(&raw[..stop], &CPU)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let latent = fx::get(&g, "gpt.latent").unsqueeze(0).unwrap();
    let layer = GptLayer::load(
        &fx::random_vb("s2mel").pp("gpt_layer"),
        &GptLayerConfig::default(),
    )
    .unwrap();
    let s_infer = (codec().vq2emb(&codes).unwrap() + layer.forward(&latent).unwrap()).unwrap();
    let lr = length_regulator();
    let cond = lr.forward(&s_infer, target_frames(stop)).unwrap();
    let prompt_condition = lr
        .forward(&fx::get(&g, "lr.prompt.in").unsqueeze(0).unwrap(), 86)
        .unwrap();
    let mu = Tensor::cat(&[&prompt_condition, &cond], 1).unwrap();
    let clip = fx::samples(&g, "clip.spk.samples");
    let ref_mel = audio::mel_spectrogram(&clip, &MelConfig::s2mel_22k(), &CPU).unwrap();
    let style = fx::get(&g, "cfm.style").unsqueeze(0).unwrap();
    let noise = fx::get(&g, "cfm.noise").unsqueeze(0).unwrap();
    let mel = flow_matching::inference(&dit(), &mu, &ref_mel, &style, &noise, CfmParams::default())
        .unwrap();
    let p = ref_mel.dim(2).unwrap();
    let mel = mel.narrow(2, p, mel.dim(2).unwrap() - p).unwrap();
    let voc = BigVgan::load(&fx::random_vb("bigvgan"), &tiny_bigvgan_config()).unwrap();
    let wav = voc.forward(&mel).unwrap().flatten_all().unwrap();
    fx::assert_close(
        "chain: waveform",
        &wav,
        &fx::get(&g, "bigvgan.out"),
        fx::TOL,
    );
    assert_int16_within_one_lsb("chain", &wav, &g);
}

#[test]
fn emotion_vector_mix() {
    let g = fx::golden();
    let e = &fx::checkpoint()["emo_vector"];
    let mut v = [0f64; 8];
    for (x, j) in v.iter_mut().zip(e["vector"].as_array().unwrap()) {
        *x = j.as_f64().unwrap();
    }
    let w = scale_emo_vector(&v, e["alpha"].as_f64().unwrap());
    // The truncation quirk: 0.1 × 0.7 × 10000 = 699.99… → 0.0699.
    assert_eq!(w[4], 0.0699);
    assert_eq!(w[1], 0.21);
    let (seed, patches) = fx::generator();
    let feat = |name: &str, cols: usize| {
        Tensor::from_vec(
            generate(seed, name, &[73, cols], &patches),
            (73, cols),
            &CPU,
        )
        .unwrap()
    };
    let m = EmotionMatrices::new(&feat("feat1", 192), &feat("feat2", 1280), &EMO_NUM).unwrap();
    let style = fx::get(&g, "campplus.out").unsqueeze(0).unwrap();
    let rows = m.nearest_rows(&style).unwrap();
    println!("emotion rows picked for the style: {rows:?}");
    assert!(rows.iter().zip(EMO_NUM).all(|(&r, n)| r < n) && rows.iter().any(|&r| r > 0));
    let emovec = fx::get(&g, "gpt.emovec").unsqueeze(0).unwrap();
    let got = m.blend(&style, &w, &emovec).unwrap();
    let want = fx::get(&g, "emo_vector.emo_vec").unsqueeze(0).unwrap();
    fx::assert_close("emotion vector (matrix mix + blend)", &got, &want, fx::TOL);
}

fn conformer_cfg(v: &serde_json::Value) -> ConformerConfig {
    let n = |k: &str| v[k].as_u64().unwrap() as usize;
    ConformerConfig {
        input_size: 1024,
        output_size: n("output_size"),
        linear_units: n("linear_units"),
        attention_heads: n("attention_heads"),
        num_blocks: n("num_blocks"),
        perceiver_mult: v["perceiver_mult"].as_f64().unwrap(),
    }
}

fn gpt_conditioning_cfg(v: &serde_json::Value) -> GptConditioningConfig {
    GptConditioningConfig {
        model_dim: v["model_dim"].as_u64().unwrap() as usize,
        condition_module: conformer_cfg(&v["condition_module"]),
        emo_condition_module: conformer_cfg(&v["emo_condition_module"]),
        condition_num_latent: 32,
    }
}

#[test]
fn gpt_conditioning_small() {
    let g = fx::golden();
    let c = &fx::checkpoint()["gpt_small"];
    let cond =
        GptConditioning::load(&fx::random_vb("gpt_small"), &gpt_conditioning_cfg(c)).unwrap();
    let spk = fx::get(&g, "w2v.spk.out").unsqueeze(0).unwrap();
    let emo = fx::get(&g, "w2v.emo.out").unsqueeze(0).unwrap();
    let get = |k: &str| fx::get(&g, &format!("gpt_small.{k}")).unsqueeze(0).unwrap();
    let enc = cond.speaker_encoder().forward(&spk).unwrap();
    fx::assert_close(
        "conformer (2 layers, small)",
        &enc,
        &get("conformer.out"),
        fx::TOL,
    );
    let latent = cond.speech_latent(&spk).unwrap();
    fx::assert_close(
        "speech conditioning latent (small)",
        &latent,
        &get("speech_conditioning_latent"),
        fx::TOL,
    );
    let ev = cond.emo_vec(&emo).unwrap();
    fx::assert_close("get_emovec (small)", &ev, &get("emo_vec"), fx::TOL);
    let alpha = c["merge_alpha"].as_f64().unwrap();
    let merged = cond.merge_emovec(&spk, &emo, alpha).unwrap();
    fx::assert_close(
        "merge_emovec alpha 0.6 (small)",
        &merged,
        &get("merge_emovec"),
        fx::TOL,
    );
}

#[test]
fn gpt_conditioning_pipeline_width() {
    let g = fx::golden();
    let cfg = gpt_conditioning_cfg(&fx::checkpoint()["config_yaml"]["gpt"]);
    assert_eq!(cfg.model_dim, 1280);
    let cond = GptConditioning::load(&fx::random_vb("gpt"), &cfg).unwrap();
    let spk = fx::get(&g, "w2v.spk.out").unsqueeze(0).unwrap();
    let emo = fx::get(&g, "w2v.emo.out").unsqueeze(0).unwrap();
    let latent = cond.speech_latent(&spk).unwrap();
    let want = fx::get(&g, "gpt.speech_conditioning_latent")
        .unsqueeze(0)
        .unwrap();
    fx::assert_close("speech_conditioning_latent (1280)", &latent, &want, fx::TOL);
    // Without an emotion clip the pipeline merges with alpha 1.
    let merged = cond.merge_emovec(&spk, &emo, 1.0).unwrap();
    let want = fx::get(&g, "gpt.emovec").unsqueeze(0).unwrap();
    fx::assert_close("emovec (1280, alpha 1)", &merged, &want, fx::TOL);
}

fn gpt_cfg() -> GptConfig {
    let c = &fx::checkpoint()["config_yaml"]["gpt"];
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    GptConfig {
        model_dim: n("model_dim"),
        heads: n("heads"),
        layers: n("layers"),
        number_text_tokens: n("number_text_tokens"),
        number_mel_codes: n("number_mel_codes"),
        start_mel_token: n("start_mel_token") as u32,
        stop_mel_token: n("stop_mel_token") as u32,
        start_text_token: n("start_text_token") as u32,
        stop_text_token: n("stop_text_token") as u32,
        max_mel_tokens: n("max_mel_tokens"),
        max_text_tokens: n("max_text_tokens"),
    }
}

/// The fixture GPT and the prompt the reference decoded from: its recorded
/// speech conditioning latent, emotion vector and text tokens.
struct Recorded {
    gpt: UnifiedVoiceGpt,
    latent: Tensor,
    emovec: Tensor,
    text: Vec<u32>,
    prompt: Tensor,
}

fn recorded_prompt(g: &std::collections::HashMap<String, Tensor>) -> Recorded {
    let gpt = UnifiedVoiceGpt::load(&fx::random_vb("gpt"), &gpt_cfg()).unwrap();
    let latent = fx::get(g, "gpt.speech_conditioning_latent")
        .unsqueeze(0)
        .unwrap();
    let emovec = fx::get(g, "gpt.emovec").unsqueeze(0).unwrap();
    let text: Vec<u32> = fx::get(g, "gpt.text_tokens")
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&t| t as u32)
        .collect();
    let prompt = gpt.prompt(&latent, &emovec, &text).unwrap();
    Recorded {
        gpt,
        latent,
        emovec,
        text,
        prompt,
    }
}

#[test]
fn gpt_decoding_and_latent() {
    // Greedy decoding (top_k 1, repetition penalty 10, temperature 0.8,
    // top_p 0.8) from the recorded conditioning: every step's logits, the
    // codes, the stop, then the latent pass.
    let g = fx::golden();
    let Recorded {
        gpt,
        latent,
        emovec,
        text,
        prompt,
    } = recorded_prompt(&g);
    let sampling = Sampling::greedy();
    let mut never = || -> f32 { panic!("greedy decoding draws nothing") };
    let out = gpt.generate(&prompt, &sampling, &mut never).unwrap();
    let want_logits = fx::get(&g, "gpt.logits");
    let raw: Vec<u32> = fx::get(&g, "gpt.codes_raw")
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&c| c as u32)
        .collect();
    assert_eq!(
        out.logits.len(),
        want_logits.dim(0).unwrap(),
        "decoding steps"
    );
    let mut worst = 0f32;
    for (t, l) in out.logits.iter().enumerate() {
        let want = want_logits.get(t).unwrap();
        let err = (l - &want).unwrap().abs().unwrap().max_all().unwrap();
        let scale = want.abs().unwrap().max_all().unwrap();
        let rel = err.to_scalar::<f32>().unwrap() / scale.to_scalar::<f32>().unwrap();
        worst = worst.max(rel);
    }
    println!(
        "PARITY gpt logits: {} steps × {} logits, worst step rel {worst:.3e}",
        out.logits.len(),
        want_logits.dim(1).unwrap()
    );
    assert!(worst <= fx::TOL, "logits relative error {worst:.3e}");
    assert!(out.stopped);
    assert_eq!(out.codes, raw[..raw.len() - 1], "codes");
    println!(
        "PARITY gpt codes: {} of {} equal, stop at the same step",
        out.codes.len(),
        raw.len() - 1
    );

    let got = gpt.latent(&latent, &emovec, &text, &out.codes).unwrap();
    fx::assert_close(
        "gpt latent pass",
        &got,
        &fx::get(&g, "gpt.latent").unsqueeze(0).unwrap(),
        fx::TOL,
    );
}

#[test]
fn gpt_beam_search() {
    // transformers' beam search as inference_speech runs it (length penalty
    // 0, repetition penalty 10), deterministic (do_sample false), from the
    // recorded conditioning: the same codes for 3 and 2 beams (both end at
    // the stop code) and for 4 beams cut by max_mel_tokens.
    let g = fx::golden();
    let Recorded { gpt, prompt, .. } = recorded_prompt(&g);
    let beam: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx::dir().join("beam.json")).unwrap())
            .unwrap();
    let stop = gpt_cfg().stop_mel_token;
    for case in beam["cases"].as_array().unwrap() {
        let beams = case["num_beams"].as_u64().unwrap() as usize;
        let max = case["max_mel_tokens"].as_u64().unwrap() as usize;
        let want: Vec<u32> = case["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap() as u32)
            .collect();
        let sampling = Sampling {
            num_beams: beams,
            do_sample: false,
            max_mel_tokens: max,
            ..Sampling::default()
        };
        let mut never = || -> f32 { panic!("deterministic beam search draws nothing") };
        let out = gpt.generate(&prompt, &sampling, &mut never).unwrap();
        let stopped = want.last() == Some(&stop);
        let want_codes = if stopped {
            &want[..want.len() - 1]
        } else {
            &want[..]
        };
        assert_eq!(out.codes, want_codes, "{beams} beams, at most {max}");
        assert_eq!(out.stopped, stopped, "{beams} beams, at most {max}");
        println!(
            "PARITY beam search ({beams} beams, at most {max}): {} codes equal, stopped {stopped}",
            out.codes.len()
        );
    }
    // Sampling beams draw from the seeded stream and still end.
    let mut draws = models::indextts2::rng::Draws::new(3);
    let sampled = Sampling {
        max_mel_tokens: 40,
        ..Sampling::default()
    };
    let out = gpt
        .generate(&prompt, &sampled, &mut || draws.uniform())
        .unwrap();
    assert!(!out.codes.is_empty() && out.codes.len() <= 40);
    assert!(out.codes.iter().all(|&c| c < stop - 1));
}

/// The reference's 16-bit output (`(wav × 32767).clamp(±32767)`, truncated)
/// of `wav` against the recorded `final.wav_i16`: at most 1 LSB apart.
fn assert_int16_within_one_lsb(
    label: &str,
    wav: &Tensor,
    g: &std::collections::HashMap<String, Tensor>,
) {
    let pcm: Vec<i64> = wav
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&s| (s * 32767.0).clamp(-32767.0, 32767.0) as i16 as i64)
        .collect();
    let want: Vec<i64> = fx::get(g, "final.wav_i16")
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(pcm.len(), want.len());
    let worst = pcm
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .max()
        .unwrap();
    println!(
        "PARITY {label}: {} int16 samples, max difference {worst} LSB",
        pcm.len()
    );
    assert!(worst <= 1, "{label}: int16 output off by {worst}");
}
