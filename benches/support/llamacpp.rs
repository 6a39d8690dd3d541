//! What `scripts/bench-llamacpp.py` prints, and the jury's token work it is given to repeat
//! (`#[path]`-included by the juror benchmark).

/// What the peer script prints.
#[derive(Debug, serde::Deserialize)]
pub struct PeerReport {
    pub prompt_tokens: u32,
    pub prefill_s: f64,
    pub gen_tokens: u32,
    pub gen_s: f64,
    pub load_s: f64,
    pub peak_rss_kb: u64,
    pub baseline_rss_kb: u64,
    pub text: String,
    pub version: String,
    pub system_info: String,
}

/// What the peer script prints for `--plan`.
#[derive(Debug, serde::Deserialize)]
pub struct PlanReport {
    pub decode: Vec<DecodeReport>,
    pub jury_s: f64,
    /// The same jury with llama.cpp at its best (shared prompt, batched sequences).
    pub jury_best_s: f64,
    pub peak_rss_kb: u64,
}

/// One decode-only measurement.
#[derive(Debug, serde::Deserialize)]
pub struct DecodeReport {
    pub context: usize,
    pub tok_s: f64,
}

/// The token work of one juror, for the peer to repeat.
#[derive(Debug, serde::Serialize)]
pub struct JurorWork {
    pub prompt: Vec<u32>,
    pub gen_tokens: u32,
    pub score_prompt: Vec<u32>,
    pub options: Vec<Vec<u32>>,
}
