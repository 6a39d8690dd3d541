//! Greedy generation of one conversation that reports each token as it is chosen, with its
//! log-probability and the most probable alternatives: what the OpenAI-compatible endpoint of
//! `cybergov serve` streams. The tokens are those of the batched generation the jurors use
//! (same logits, same penalty, same `argmax`): the engine computes a sequence's values the
//! same way whatever else is in the batch.

use super::{Inner, Loaded, Request, infer_err, sampling};
use crate::magi::model::{
    ChatMessage, FinishReason, GenerateParams, Generation, ModelError, TokenSink, TokenStep,
};

impl Inner {
    /// [`crate::magi::model::LanguageModel::generate_stepwise`], on the model's thread.
    pub(super) fn generate_stepwise_blocking(
        &self,
        loaded: &mut Loaded,
        messages: &[ChatMessage],
        params: &GenerateParams,
        top: usize,
        mut sink: TokenSink,
    ) -> Result<Generation, ModelError> {
        let prompt = self.encode_prompt(loaded, messages, params.max_new_tokens)?;
        let mut context = prompt.clone();
        let mut out: Vec<u32> = Vec::new();
        let mut sent = String::new();
        let mut finish = FinishReason::Length;
        for _ in 0..params.max_new_tokens {
            let request = Request {
                seq: 0,
                ids: &context,
                want: 1,
            };
            let mut logits = loaded
                .model
                .logits_batch(&[request])
                .map_err(infer_err)?
                .pop()
                .and_then(|mut l| l.pop())
                .ok_or_else(|| infer_err("no logits"))?;
            if params.repeat_penalty != 1.0 {
                let start = context.len().saturating_sub(params.repeat_last_n);
                sampling::apply_repeat_penalty(
                    &mut logits,
                    params.repeat_penalty,
                    &context[start..],
                );
            }
            let next = sampling::argmax(&logits);
            if self.stop_ids.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            context.push(next);
            out.push(next);
            // The answer so far, decoded whole: a token may end inside a character, which then
            // shows (as U+FFFD) only until the next token completes it.
            let text = loaded.tokenizer.decode(&out)?;
            let delta = match text.strip_prefix(sent.as_str()) {
                Some(rest) if !rest.ends_with('\u{FFFD}') => rest.to_owned(),
                _ => String::new(),
            };
            sent.push_str(&delta);
            let alternatives = sampling::top_log_probs(&logits, top)
                .into_iter()
                .map(|(t, lp)| Ok((loaded.tokenizer.decode(&[t])?, lp)))
                .collect::<Result<Vec<_>, ModelError>>()?;
            sink(TokenStep {
                token: loaded.tokenizer.decode(&[next])?,
                delta,
                logprob: sampling::log_prob(&logits, next),
                top: alternatives,
            });
        }
        let text = loaded.tokenizer.decode(&out)?;
        if let Some(rest) = text.strip_prefix(sent.as_str())
            && !rest.is_empty()
        {
            // What the last tokens held back (a character they did not complete).
            sink(TokenStep {
                token: String::new(),
                delta: rest.to_owned(),
                logprob: 0.0,
                top: Vec::new(),
            });
        }
        Ok(Generation {
            text,
            prompt_tokens: prompt.len() as u32,
            completion_tokens: out.len() as u32,
            finish,
            raw_response: None,
        })
    }
}
