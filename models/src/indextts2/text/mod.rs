//! The IndexTTS2 text front end: the `bpe.model` SentencePiece encoder.

pub mod sentencepiece;

pub use sentencepiece::SentencePiece;
