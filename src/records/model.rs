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
    /// The local inference engine that computed the outputs (absent for remote backends and in
    /// records made before it was recorded). A rerun reproduces the bytes only with the same
    /// kernel, so a verifier that re-executes compares this first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineId>,
}

/// Which engine computed a local model's outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineId {
    /// `cybergov`.
    pub name: String,
    /// The cybergov version that ran it.
    pub version: String,
    /// The kernel arithmetic's id: equal ids compute equal bits.
    pub kernel: String,
}

impl std::fmt::Display for EngineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (kernel {})", self.name, self.version, self.kernel)
    }
}
