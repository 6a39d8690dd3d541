//! `cybergov arena prepare` and `cybergov arena review`: a review session prepared by the
//! operator, judged by a reviewer in the terminal (`arena::session` says why it is built so).

use crate::arena::session::{
    Preparation, ReviewRound, Standing, judge, parse_choice, prepare, standing, stored_proposals,
};
use crate::config::Config;
use crate::magi::candle::{CandleModel, LoadOptions};
use crate::magi::jury::Jury;
use crate::magi::model::GenerateParams;
use crate::magi::models;
use crate::secret::Secrets;
use anyhow::Context;
use std::io::{BufRead, Write};
use std::process::ExitCode;

/// `arena prepare`: both models write their rationales; prints the session and how to judge it.
pub async fn prepare_session(
    config: &Config,
    secrets: &Secrets,
    candidate: &str,
    juror: &str,
    reviewer: &str,
    rounds: usize,
) -> anyhow::Result<ExitCode> {
    let store = super::super::open_store(config, secrets)?;
    let ledger = crate::wiring::open_ledger(config, secrets).await?;
    let proposals = stored_proposals(store.as_ref(), rounds).await?;
    anyhow::ensure!(
        !proposals.is_empty(),
        "the store {} holds no proposal to judge (no run with a content.md): run the pipeline first",
        store.location()
    );
    let progress = super::super::progress::bars();
    let Some(seat) = config.magi.jurors.get(juror) else {
        anyhow::bail!("--juror {juror:?} is not a juror (balthazar, melchior or caspar)");
    };
    // Only this juror's model is needed: every seat set to it loads one shared copy.
    let mut magi = config.magi.clone();
    for j in magi.jurors.values_mut() {
        *j = seat.clone();
    }
    let jury = Jury::from_config(&magi, secrets, &progress).context("loading the juror's model")?;
    let Some((_, incumbent)) = jury.members.iter().find(|(name, _)| name == juror) else {
        anyhow::bail!("--juror {juror:?} is not a juror (balthazar, melchior or caspar)");
    };
    let models_dir = config
        .magi
        .models_dir
        .clone()
        .unwrap_or_else(models::default_models_dir);
    let (path, model_id) = models::resolve(candidate, &models_dir, progress.as_ref())
        .with_context(|| format!("--candidate {candidate}"))?;
    let candidate = CandleModel::load(
        &path,
        &LoadOptions {
            model_id: Some(model_id),
            device: config.magi.device,
            progress: progress.clone(),
            speed_dir: Some(models_dir),
            ..LoadOptions::default()
        },
    )
    .with_context(|| format!("loading the candidate {}", path.display()))?;
    let params = GenerateParams {
        max_new_tokens: config.magi.max_new_tokens,
        // Validated when the configuration was loaded.
        repeat_penalty: config.magi.repeat_penalty.parse().unwrap_or(1.0),
        repeat_last_n: config.magi.repeat_last_n as usize,
    };
    let p = Preparation {
        candidate: &candidate,
        incumbent: incumbent.as_ref(),
        prompts: &jury.prompts,
        juror,
        params,
        reviewer,
        now_ms: chrono::Utc::now().timestamp_millis(),
    };
    let session = prepare(&ledger, &p, &proposals).await?;
    use crate::magi::model::LanguageModel;
    println!(
        "session {session}: {} rounds for {reviewer}, {} against {juror}'s {}",
        proposals.len(),
        candidate.info().model_id,
        incumbent.info().model_id
    );
    println!("judge it in a terminal:  cybergov arena review {session}");
    println!("or on the dashboard:     /arena/review/{session}");
    Ok(ExitCode::SUCCESS)
}

/// `arena review SESSION`: the rounds not yet judged, one after the other, from standard input.
pub async fn review(config: &Config, secrets: &Secrets, session: &str) -> anyhow::Result<ExitCode> {
    let store = super::super::open_store(config, secrets)?;
    let ledger = crate::wiring::open_ledger(config, secrets).await?;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut out = std::io::stdout();
    loop {
        let round = match standing(&ledger, store.as_ref(), session).await? {
            Standing::Done { rounds } => {
                println!("All {rounds} rounds of session {session} are judged. Thank you.");
                return Ok(ExitCode::SUCCESS);
            }
            Standing::Next(round) => round,
        };
        print!("{}", render(&round));
        loop {
            print!("Which rationale is better? a = A, b = B, t = tie, x = both bad: ");
            out.flush()?;
            let Some(line) = lines.next() else {
                println!(
                    "\nStopped after {} of {} rounds; `cybergov arena review {session}` resumes.",
                    round.round - 1,
                    round.rounds
                );
                return Ok(ExitCode::SUCCESS);
            };
            match parse_choice(&line.context("reading the answer")?) {
                Ok(outcome) => {
                    let now = chrono::Utc::now().timestamp_millis();
                    judge(&ledger, session, round.round, outcome, now).await?;
                    println!();
                    break;
                }
                Err(e) => println!("{e}"),
            }
        }
    }
}

/// A round as the terminal shows it: nothing but the proposal and the two texts.
fn render(r: &ReviewRound) -> String {
    format!(
        "━━ Round {} of {} — {} #{} ━━\n\n── Proposal ──\n{}\n\n── Rationale A ──\n{}\n\n── Rationale B ──\n{}\n\n",
        r.round,
        r.rounds,
        r.network,
        r.referendum,
        r.proposal.trim_end(),
        r.a,
        r.b
    )
}
