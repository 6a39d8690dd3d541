//! The `[magi]` configuration: which model each juror uses, how it decodes, and the tally.

use super::candle::DeviceChoice;
use super::models::{DEFAULT_MODEL, GEMMA_MODEL};
use super::prompts::JURORS;
use super::tally::{TallyConfig, TallyRule};
use crate::network::Network;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[magi]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MagiConfig {
    /// `cpu` (default), `cuda` or `auto`.
    pub device: DeviceChoice,
    /// CPU threads for inference; 0 = one per core. Recorded in every manifest.
    pub threads: u32,
    /// Longest rationale, in tokens.
    pub max_new_tokens: u32,
    /// Repetition penalty (decimal text, `"1"` = off): small models loop without one.
    pub repeat_penalty: String,
    /// Recent tokens the penalty applies to.
    pub repeat_last_n: u32,
    /// Cache of fetched and requantized models (default: `~/.cache/cybergov/models`).
    pub models_dir: Option<PathBuf>,
    /// Read prompts from this folder instead of those compiled in.
    pub prompts_dir: Option<PathBuf>,
    /// Which models the jurors run unless `jurors` says otherwise: `one-family` (every juror
    /// on the default model) or `two-families` (melchior on Gemma 3 270M).
    #[serde(default)]
    pub jury: JuryPreset,
    /// Jurors sharing a model deliberate together, their rationales decoded as one batch per
    /// step (default); `false`: one after the other. The records are the same bytes either way.
    #[serde(default = "batch_by_default")]
    pub batch_jurors: bool,
    /// Per-juror settings: `balthazar`, `melchior`, `caspar`.
    pub jurors: BTreeMap<String, JurorConfig>,
    /// How votes become a decision.
    pub tally: TallyConfig,
}

fn batch_by_default() -> bool {
    true
}

/// A named choice of the jurors' models, applied beneath the configuration file: a juror's own
/// `magi.jurors.<name>.model` still wins, so any two GGUFs can replace the preset's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JuryPreset {
    /// Every juror on [`DEFAULT_MODEL`].
    #[default]
    OneFamily,
    /// Two families, so that a disagreement is more than a persona's: balthazar and caspar on
    /// SmolLM2-135M-Instruct, melchior on Gemma 3 270M (a base model; see
    /// `docs/ARCHITECTURE.md` for why this is not the default).
    TwoFamilies,
}

impl JuryPreset {
    /// The `(juror, model)` pairs the preset sets.
    pub fn models(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::OneFamily => &[],
            Self::TwoFamilies => &[("melchior", GEMMA_MODEL)],
        }
    }
}

/// `[magi.jurors.<name>]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JurorConfig {
    /// `candle` (local GGUF) or `openai` (OpenAI-compatible endpoint).
    pub backend: Backend,
    /// candle: a named model or a path to a `.gguf`; openai: the model name to request.
    pub model: String,
    /// candle: a `tokenizer.json` to use instead of the GGUF's own tokenizer.
    pub tokenizer: Option<PathBuf>,
    /// openai: base URL such as `http://127.0.0.1:8080/v1`.
    pub base_url: Option<String>,
    /// openai: request timeout in seconds.
    pub timeout_secs: u64,
    /// openai: context window to assume, in tokens.
    pub context_length: u32,
    /// The arena's published decision that put this model in the seat (`arena/{n}/decisions.json`,
    /// a store key): checked before the juror deliberates, and referenced by every manifest.
    #[serde(default)]
    pub arena_decision: Option<String>,
}

/// A juror backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Local GGUF via candle.
    Candle,
    /// OpenAI-compatible HTTP endpoint.
    OpenAi,
}

impl Default for MagiConfig {
    fn default() -> Self {
        let juror = JurorConfig {
            backend: Backend::Candle,
            model: DEFAULT_MODEL.into(),
            tokenizer: None,
            base_url: None,
            timeout_secs: 120,
            context_length: 8192,
            arena_decision: None,
        };
        Self {
            device: DeviceChoice::Cpu,
            threads: 0,
            max_new_tokens: 128,
            repeat_penalty: "1.1".into(),
            repeat_last_n: 64,
            models_dir: None,
            prompts_dir: None,
            jury: JuryPreset::OneFamily,
            batch_jurors: true,
            jurors: JURORS
                .iter()
                .map(|j| ((*j).to_owned(), juror.clone()))
                .collect(),
            tally: TallyConfig {
                rule: TallyRule::MajorityWithoutOpposition,
                conviction_unanimous: 1,
                conviction_majority: 0,
                // One token on each network.
                balance: Network::ALL
                    .iter()
                    .map(|n| {
                        (
                            *n,
                            10u128
                                .pow(u32::from(n.default_spec().token_decimals))
                                .to_string(),
                        )
                    })
                    .collect(),
            },
        }
    }
}

impl MagiConfig {
    /// Checks what serde cannot; returns `(key, problem)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for name in self.jurors.keys() {
            if !JURORS.contains(&name.as_str()) {
                return Err((
                    format!("magi.jurors.{name}"),
                    format!("unknown juror; the jurors are {}", JURORS.join(", ")),
                ));
            }
        }
        for (name, j) in &self.jurors {
            if j.backend == Backend::OpenAi && j.base_url.is_none() {
                return Err((
                    format!("magi.jurors.{name}.base_url"),
                    "required with backend = \"openai\"".into(),
                ));
            }
        }
        if !self
            .repeat_penalty
            .parse::<f32>()
            .is_ok_and(|p| p >= 1.0 && p.is_finite())
            || !self
                .repeat_penalty
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.')
        {
            return Err((
                "magi.repeat_penalty".into(),
                format!("{:?} is not a decimal number ≥ 1", self.repeat_penalty),
            ));
        }
        if self.max_new_tokens == 0 {
            return Err(("magi.max_new_tokens".into(), "must be at least 1".into()));
        }
        for (key, c) in [
            ("conviction_unanimous", self.tally.conviction_unanimous),
            ("conviction_majority", self.tally.conviction_majority),
        ] {
            if c > 6 {
                return Err((
                    format!("magi.tally.{key}"),
                    format!("{c} is above the maximum conviction 6"),
                ));
            }
        }
        for (net, b) in &self.tally.balance {
            if b.is_empty() || !b.bytes().all(|c| c.is_ascii_digit()) || b.parse::<u128>().is_err()
            {
                return Err((
                    format!("magi.tally.balance.{net}"),
                    format!("{b:?} is not a planck amount (decimal digits)"),
                ));
            }
        }
        Ok(())
    }
}
