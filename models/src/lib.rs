//! Candle models and the text front end used by the TTS node.
