//! IndexTTS2 (v2) in candle: the reference pipeline (`indextts2-inference`
//! 2.1.1, `indextts/infer_v2.py`) ported block by block and proven equal to
//! it on golden fixtures recorded from the reference on deterministic random
//! weights (`scripts/make-indextts2-fixtures.py`,
//! `models/tests/indextts2_*.rs`).
//!
//! The whole: [`pipeline`] (`infer`: reference clip, emotion, text segments →
//! 22,050 Hz samples), [`checkpoint`] (`config.yaml` and the official files,
//! the auxiliary models in a Hugging Face cache), [`voice`] (the engine seam:
//! an IndexTTS2 voice the node serves), [`random_checkpoint`] (random weights
//! written in the official layout).
//!
//! The blocks, in pipeline order:
//! - [`crate::audio`] (shared with the other engines): the torchaudio sinc
//!   resampler (22,050 → 16,000 Hz), the s2mel mel spectrogram
//!   (`center=False`, reflect padding) and Kaldi fbank;
//! - [`w2v_bert`]: w2v-BERT 2.0's input features (SeamlessM4T feature
//!   extractor) and conformer encoder up to `hidden_states[17]`, normalised
//!   (the speaker and emotion conditioning `spk_cond_emb` / `emo_cond_emb`);
//! - [`gpt`]: the UnifiedVoice GPT's transformer: prompt, decoding of the
//!   mel codes with a KV cache and the reference's logits processing
//!   (deterministic with `top_k = 1`), beam search as transformers runs it,
//!   and the latent pass;
//! - [`gpt_conditioning`]: the UnifiedVoice GPT's speaker conditioning
//!   (Conformer + Perceiver → 32 latents) and emotion vector (`get_emovec`,
//!   `merge_emovec`);
//! - [`semantic_codec`]: MaskGCT's RepCodec `quantize` (reference clip → codes
//!   and embeddings) and `vq2emb` (GPT codes → embeddings);
//! - [`campplus`]: the CAMPPlus speaker encoder (fbank → 192-d style);
//! - [`length_regulator`]: s2mel's interpolating length regulator;
//! - [`dit`] and [`flow_matching`]: s2mel's diffusion transformer and the
//!   Euler solver with classifier-free guidance that turns the conditions,
//!   the prompt mel, the style and the noise into the mel;
//! - [`gpt_layer`]: s2mel's projection of the GPT latent;
//! - [`bigvgan`]: the BigVGAN v2 vocoder;
//! - [`emotion`]: emotion control by vector (the emotion-matrix mix and its
//!   blend with the GPT's emotion vector);
//! - [`rng`]: the deterministic weight generator the tests rebuild the
//!   fixtures' random checkpoint with;
//! - [`weights`]: reading the official files (`.pth` zip archives with nested
//!   dictionaries, `.safetensors`) into a `VarBuilder`;
//! - [`text`]: the text front end: the `bpe.model` SentencePiece reader and
//!   encoder, the rule-based normaliser, the CJK pre-tokeniser and the
//!   segmentation into token ids for the GPT (proven on goldens from
//!   `scripts/make-indextts2-text-fixtures.py`). The normaliser's number
//!   verbalisation, NeMo's WFST grammars in the reference, is reproduced only
//!   for common cases (cardinals, decimals, negatives, ordinals, percentages,
//!   dollar amounts in English; numbers, decimals, negatives and percentages
//!   in Chinese): see [`text::verbalizer`] for what NeMo does that it does
//!   not.
//!
//! Not ported: emotion from a text description (`use_emo_text`, a Qwen
//! model), the reference's fp16 path.

#![warn(missing_docs)]

pub mod bigvgan;
pub mod campplus;
pub mod checkpoint;
pub mod dit;
pub mod emotion;
pub mod flow_matching;
pub mod gpt;
pub mod gpt_conditioning;
pub mod gpt_layer;
pub mod length_regulator;
pub mod pipeline;
pub mod random_checkpoint;
pub mod rng;
pub mod semantic_codec;
pub mod text;
pub mod voice;
pub mod w2v_bert;
pub mod weights;

/// Everything that can go wrong loading or running an IndexTTS2 block.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not in the expected format.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A configuration or an input is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A tensor operation failed, or a weight is missing or has the wrong
    /// shape (the message names the tensor and the expected shape).
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The result of IndexTTS2 operations.
pub type Result<T> = std::result::Result<T, Error>;

impl From<crate::Error> for Error {
    /// The shared audio code's errors (a bad rate, a short clip) as
    /// IndexTTS2's.
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Candle(c) => Error::Candle(c),
            crate::Error::IndexTts2(e) => e,
            other => Error::Config(other.to_string()),
        }
    }
}
