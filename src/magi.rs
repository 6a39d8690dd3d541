//! The MAGI: three jurors (balthazar, melchior, caspar), the models behind them, and the tally.
//!
//! [`model`] is the one interface every language model is used through — the jurors here, and
//! the neutral questions of the augmentation stage — so that any backend (local candle GGUF,
//! an OpenAI-compatible server) serves both.

pub mod candle;
pub mod juror;
pub mod jury;
pub mod model;
pub mod models;
pub mod openai;
pub mod prompts;
pub mod settings;
pub mod tally;
