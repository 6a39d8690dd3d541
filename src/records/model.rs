//! What a model is, as the juror files and `augment.json` record it.

use crate::hash::Sha256Hash;
use serde::{Deserialize, Serialize};

/// What a model is, for the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `candle` or `openai`.
    pub backend: String,
    /// Model id, e.g. `SmolLM2-135M-Instruct`.
    pub model_id: String,
    /// SHA-256 of the weights file as loaded, when local.
    pub file_sha256: Option<Sha256Hash>,
    /// Quantization of the weights, when known.
    pub quantization: Option<String>,
    /// Context window in tokens.
    pub context_length: u32,
    /// Whether a rerun reproduces outputs byte for byte.
    pub deterministic: bool,
}
