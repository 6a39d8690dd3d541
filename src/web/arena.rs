//! The arena on the dashboard (issue #16): the leaderboard at `/arena`, and review sessions at
//! `/arena/review/{session}` — the same prepared rounds `cybergov arena review` shows.
//!
//! Why it is built so:
//! - **The review page is rendered from `arena::session::ReviewRound`**, which carries no
//!   model's name: the page cannot say which model wrote which text.
//! - **The session id is the permission.** It is a UUID v4 that `cybergov arena prepare`
//!   gives to one reviewer; the pages list no sessions. Answers are POSTed forms, refused from
//!   another site like the operator actions, and a round is judged once.
//! - **Reviewing writes to the ledger**, so a `--web-only` mirror shows the leaderboard only.

use super::WebState;
use super::pages::{PageError, render};
use crate::arena::decision::UpgradeRule;
use crate::arena::publish::{BattlesRecord, decisions, latest, ratings};
use crate::arena::session::{SessionError, Standing, judge, parse_choice, standing};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What the arena's pages need.
#[derive(Clone, Debug, Default)]
pub struct ArenaPages {
    /// The upgrade rule (`arena.*`): the ratings' parameters and the decisions.
    pub rule: UpgradeRule,
    /// Whether reviewers may judge here (not on a `--web-only` mirror).
    pub review: bool,
}

/// The arena's routes.
pub fn routes() -> axum::Router<Arc<WebState>> {
    axum::Router::new()
        .route("/arena", get(leaderboard))
        .route("/arena/review/{session}", get(review))
        .route("/arena/review/{session}/{round}", post(answer))
}

fn failed(e: impl std::fmt::Display) -> PageError {
    tracing::error!("arena page: {e}");
    PageError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the arena's data could not be read",
    )
}

/// `GET /arena`: the ratings from every battle, the decisions, the latest publication.
async fn leaderboard(State(s): State<Arc<WebState>>) -> Result<Response, PageError> {
    let record = BattlesRecord::load(&s.ledger).await.map_err(failed)?;
    let rule = &s.arena.rule;
    let publication = latest(s.store.as_ref())
        .await
        .map_err(failed)?
        .map(|p| p.publication);
    #[derive(Serialize)]
    struct Page {
        k: f64,
        rounds: u32,
        seed: u64,
        battles: usize,
        publication: Option<u32>,
        models: Vec<crate::arena::publish::ModelRating>,
        decisions: Vec<crate::arena::decision::Decision>,
    }
    let ratings = ratings(&record.battles(), rule);
    Ok(render(
        "arena.html",
        &Page {
            k: rule.k,
            rounds: rule.rounds,
            seed: rule.seed,
            battles: record.battles.len(),
            publication,
            models: ratings.models,
            decisions: decisions(&record, rule).decisions,
        },
    ))
}

fn session_error(e: SessionError) -> PageError {
    match e {
        SessionError::UnknownSession(_) | SessionError::UnknownRound { .. } => {
            PageError::not_found(e.to_string())
        }
        SessionError::AlreadyJudged { .. } => PageError::new(StatusCode::CONFLICT, e.to_string()),
        SessionError::BadChoice(_) => PageError::new(StatusCode::BAD_REQUEST, e.to_string()),
        other => failed(other),
    }
}

fn reviewing(s: &WebState) -> Result<(), PageError> {
    if s.arena.review {
        Ok(())
    } else {
        Err(PageError::not_found(
            "this server is a read-only mirror: review sessions are judged where cybergov runs",
        ))
    }
}

/// `GET /arena/review/{session}`: the next round to judge, or that the session is done.
async fn review(
    State(s): State<Arc<WebState>>,
    Path(session): Path<String>,
) -> Result<Response, PageError> {
    reviewing(&s)?;
    #[derive(Serialize)]
    struct Page {
        done: bool,
        rounds: usize,
        r: Option<crate::arena::session::ReviewRound>,
    }
    let page = match standing(&s.ledger, s.store.as_ref(), &session)
        .await
        .map_err(session_error)?
    {
        Standing::Done { rounds } => Page {
            done: true,
            rounds,
            r: None,
        },
        Standing::Next(r) => Page {
            done: false,
            rounds: r.rounds,
            r: Some(r),
        },
    };
    Ok(render("review.html", &page))
}

/// The answer form.
#[derive(Debug, Default, Deserialize)]
struct AnswerForm {
    #[serde(default)]
    choice: String,
}

/// `POST /arena/review/{session}/{round}`: records the answer, then the next round.
async fn answer(
    State(s): State<Arc<WebState>>,
    Path((session, round)): Path<(String, i64)>,
    headers: HeaderMap,
    Form(form): Form<AnswerForm>,
) -> Result<Response, PageError> {
    reviewing(&s)?;
    if !super::actions::same_origin(&headers) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "refused: the request comes from another site",
        ));
    }
    let outcome = parse_choice(&form.choice).map_err(session_error)?;
    let now = chrono::Utc::now().timestamp_millis();
    judge(&s.ledger, &session, round, outcome, now)
        .await
        .map_err(session_error)?;
    Ok(Redirect::to(&format!("/arena/review/{session}")).into_response())
}
