//! The augment stage: raw_subsquare.json → content.md + augment.json.
//!
//! Parses the scraped proposal, cleans and fits it (counting tokens with the jurors' model, so
//! the budget is exact for it), and has the model answer the neutral questions. A no-op when the
//! run already has both outputs; with a deterministic model a re-run writes the same bytes, so
//! a crash between the two writes is harmless.

use crate::augment::questions::Questions;
use crate::augment::{AugmentError, augment_with_model};
use crate::config::Config;
use crate::magi::model::{GenerateParams, LanguageModel};
use crate::network::Network;
use crate::proposal::Proposal;
use crate::store::ObjectStore;
use crate::store::layout::{Artefact, ReferendumLayout};

/// What the stage did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AugmentOutcome {
    /// content.md and augment.json were written.
    Written {
        /// Whether the augmentation policy forces ABSTAIN.
        forced_abstain: bool,
    },
    /// Both already existed.
    AlreadyDone,
}

/// Runs the stage on run `run` of `network` #`referendum`, with `model` answering.
pub async fn augment_stage(
    store: &dyn ObjectStore,
    config: &Config,
    model: &dyn LanguageModel,
    network: Network,
    referendum: u32,
    run: u32,
) -> Result<AugmentOutcome, AugmentError> {
    let rl = ReferendumLayout::new(network, referendum).run(run);
    if store.exists(&rl.key(&Artefact::Content)).await?
        && store.exists(&rl.key(&Artefact::Augment)).await?
    {
        return Ok(AugmentOutcome::AlreadyDone);
    }
    let raw = store.get(&rl.key(&Artefact::RawSubsquare)).await?;
    let spec = config.network(network);
    let proposal = Proposal::from_subsquare(network, spec, &raw)?;
    let questions = Questions::bundled();
    let mut augmented =
        augment_with_model(&proposal, &config.augment, spec, &questions, model).await?;
    let params = GenerateParams {
        max_new_tokens: config.augment.answer_max_tokens,
        // Validated when the configuration was loaded.
        repeat_penalty: config.magi.repeat_penalty.parse().unwrap_or(1.0),
        repeat_last_n: config.magi.repeat_last_n as usize,
    };
    augmented.answer(Some(model), &questions, &params).await?;
    augmented.write(store, &rl).await?;
    Ok(AugmentOutcome::Written {
        forced_abstain: augmented.record.abstain.is_some(),
    })
}
