//! Assembling the jury from configuration: one model per juror, loaded once when shared.

use super::candle::{CandleModel, LoadOptions};
use super::model::{LanguageModel, ModelError};
use super::models::{self, default_models_dir};
use super::openai::{OpenAiModel, OpenAiSettings};
use super::prompts::{JURORS, Prompts};
use super::settings::{Backend, MagiConfig};
use crate::manifest::Decoding;
use crate::progress::Progress;
use crate::secret::Secrets;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The three jurors, ready to deliberate.
#[derive(Debug, Clone)]
pub struct Jury {
    /// `(name, model)` in the order of [`JURORS`].
    pub members: Vec<(String, Arc<dyn LanguageModel>)>,
    /// The prompts.
    pub prompts: Prompts,
    /// Decoding parameters (the same for every juror).
    pub decoding: Decoding,
    /// Whether jurors sharing a model deliberate together (`magi.batch_jurors`).
    pub batch: bool,
}

/// Why the jury could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum JuryError {
    /// A model could not be fetched.
    #[error("juror {juror}: {source}")]
    Fetch {
        /// The juror.
        juror: String,
        /// Why.
        #[source]
        source: models::FetchError,
    },
    /// A model could not be loaded.
    #[error("juror {juror}: {source}")]
    Model {
        /// The juror.
        juror: String,
        /// Why.
        #[source]
        source: ModelError,
    },
    /// Prompts could not be read.
    #[error(transparent)]
    Prompts(#[from] super::prompts::PromptError),
    /// A juror has no configuration.
    #[error("juror {0} is not configured (magi.jurors.{0})")]
    Missing(String),
    /// The jury's models need more memory than the machine has available.
    #[error(
        "the jury's models need {needed} MiB once loaded ({models}), but only {available} MiB are available: choose smaller models or let jurors share one"
    )]
    DoesNotFit {
        /// MiB needed.
        needed: u64,
        /// MiB available (`MemAvailable`).
        available: u64,
        /// Each distinct model and its need.
        models: String,
    },
}

/// Refuses a set of model files whose loaded size exceeds `available` bytes (`None`: unknown,
/// nothing refused). Each distinct file counts once (jurors sharing a file share one copy).
pub fn check_fits<'a>(
    paths: impl Iterator<Item = &'a std::path::Path>,
    available: Option<u64>,
) -> Result<(), JuryError> {
    use crate::magi::candle::footprint::footprint;
    let distinct: std::collections::BTreeSet<&std::path::Path> = paths.collect();
    let mut needed = 0u64;
    let mut each = Vec::new();
    for p in distinct {
        // An unreadable file is reported by the load that follows, with its own error.
        if let Ok(f) = footprint(p) {
            needed += f.memory_bytes;
            each.push(format!(
                "{}: {} MiB",
                p.file_name().unwrap_or_default().to_string_lossy(),
                f.memory_bytes >> 20
            ));
        }
    }
    match available {
        Some(available) if needed > available => Err(JuryError::DoesNotFit {
            needed: needed >> 20,
            available: available >> 20,
            models: each.join(", "),
        }),
        _ => Ok(()),
    }
}

impl Jury {
    /// Tokens the quoted juror input (content.md) may take so that every juror's whole prompt
    /// — system text, persona and request around it, chat-template tokens — plus its rationale
    /// and the option scoring fit its context. Augmentation fits to this, so the infer stage
    /// never meets a prompt it must refuse. `None` when no juror states a context.
    pub async fn content_budget(&self) -> Result<Option<usize>, ModelError> {
        // Chat-template tokens around each message and before the reply, and what scoring
        // adds after the rationale (the vote question and the longest option): generous
        // bounds, since counting them exactly would need each template's own code.
        const TEMPLATE_TOKENS_PER_MESSAGE: usize = 8;
        const SCORING_TOKENS: usize = 96;
        let mut budget: Option<usize> = None;
        for (name, model) in &self.members {
            let context = model.info().context_length as usize;
            if context == 0 {
                continue;
            }
            let mut overhead = SCORING_TOKENS + self.decoding.max_new_tokens as usize;
            for m in super::juror::rationale_messages(&self.prompts, name, "") {
                overhead += model.count_tokens(&m.content).await? + TEMPLATE_TOKENS_PER_MESSAGE;
            }
            let fits = context.saturating_sub(overhead);
            budget = Some(budget.map_or(fits, |b| b.min(fits)));
        }
        Ok(budget)
    }

    /// Builds the jury `config` describes, fetching named models as needed.
    pub fn from_config(
        config: &MagiConfig,
        secrets: &Secrets,
        progress: &Arc<dyn Progress>,
    ) -> Result<Self, JuryError> {
        let models_dir = config.models_dir.clone().unwrap_or_else(default_models_dir);
        let prompts = match &config.prompts_dir {
            Some(dir) => Prompts::from_dir(dir)?,
            None => Prompts::embedded(),
        };
        // Every local model is found (fetched if need be) first, so that a jury that cannot fit
        // in memory is refused before any of it is loaded.
        let mut files: HashMap<&str, (PathBuf, String)> = HashMap::new();
        for name in JURORS {
            let j = config
                .jurors
                .get(name)
                .ok_or_else(|| JuryError::Missing(name.into()))?;
            if j.backend == Backend::Candle {
                let found = models::resolve(&j.model, &models_dir, progress.as_ref()).map_err(
                    |source| JuryError::Fetch {
                        juror: name.into(),
                        source,
                    },
                )?;
                files.insert(name, found);
            }
        }
        check_fits(
            files.values().map(|(p, _)| p.as_path()),
            crate::magi::candle::footprint::available_memory(),
        )?;
        // Jurors that share a model file share one loaded copy.
        let mut loaded: HashMap<(PathBuf, Option<PathBuf>), Arc<dyn LanguageModel>> =
            HashMap::new();
        let mut members = Vec::new();
        for name in JURORS {
            let j = config
                .jurors
                .get(name)
                .ok_or_else(|| JuryError::Missing(name.into()))?;
            let model: Arc<dyn LanguageModel> = match j.backend {
                Backend::Candle => {
                    let (path, model_id) = files[name].clone();
                    let key = (path.clone(), j.tokenizer.clone());
                    if let Some(m) = loaded.get(&key) {
                        m.clone()
                    } else {
                        let opts = LoadOptions {
                            model_id: Some(model_id),
                            tokenizer_json: j.tokenizer.clone(),
                            device: config.device,
                            progress: progress.clone(),
                            threads: None,
                            speed_dir: Some(models_dir.clone()),
                        };
                        let m: Arc<dyn LanguageModel> =
                            Arc::new(CandleModel::load(&path, &opts).map_err(|source| {
                                JuryError::Model {
                                    juror: name.into(),
                                    source,
                                }
                            })?);
                        loaded.insert(key, m.clone());
                        m
                    }
                }
                Backend::OpenAi => Arc::new(
                    OpenAiModel::new(
                        OpenAiSettings {
                            base_url: j.base_url.clone().unwrap_or_default(),
                            model: j.model.clone(),
                            timeout: Duration::from_secs(j.timeout_secs),
                            context_length: j.context_length,
                        },
                        secrets.openai_api_key.as_ref(),
                    )
                    .map_err(|source| JuryError::Model {
                        juror: name.into(),
                        source,
                    })?,
                ),
            };
            members.push((name.to_owned(), model));
        }
        Ok(Self {
            members,
            prompts,
            decoding: Decoding {
                strategy: "greedy".into(),
                max_new_tokens: config.max_new_tokens,
                threads: candle_core::utils::get_num_threads() as u32,
                repeat_penalty: config.repeat_penalty.clone(),
                repeat_last_n: config.repeat_last_n,
            },
            batch: config.batch_jurors,
        })
    }
}
