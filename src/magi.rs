//! The MAGI: three jurors (balthazar, melchior, caspar), the models behind them, and the tally.
//!
//! [`model`] is the one interface every language model is used through — the jurors here, and
//! the neutral questions of the augmentation stage — so that any backend (local candle GGUF,
//! an OpenAI-compatible server) serves both.

pub mod model;
