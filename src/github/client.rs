//! The GitHub REST calls the runner makes, through octocrab: dispatch, list runs, get a run,
//! download its logs. Responses are read into our own small structs (only the fields used),
//! and every call honours GitHub's rate limits (403/429 with `x-ratelimit-remaining: 0` until
//! `x-ratelimit-reset`, or with `retry-after` for secondary limits).

use super::DispatchInputs;
use crate::github::settings::GithubSettings;
use crate::secret::Secret;
use http::StatusCode;
use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// A workflow run, as far as the runner cares.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WorkflowRun {
    /// Run id.
    pub id: u64,
    /// The run's name as shown (the workflow's `run-name`, with inputs filled in).
    #[serde(default)]
    pub display_title: String,
    /// `queued`, `in_progress`, `completed`, …
    pub status: String,
    /// `success`, `failure`, `cancelled`, … once completed.
    pub conclusion: Option<String>,
    /// Web page of the run.
    #[serde(default)]
    pub html_url: String,
    /// Attempt number.
    #[serde(default)]
    pub run_attempt: Option<u32>,
}

#[derive(Deserialize)]
struct RunList {
    workflow_runs: Vec<WorkflowRun>,
}

/// Why a GitHub call failed.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// `CYBERGOV_GITHUB_TOKEN` is not set, or settings are missing.
    #[error("GitHub runner: {0}")]
    Config(String),
    /// 404: repository, workflow or run does not exist (or the token cannot see it).
    #[error(
        "GitHub {what} not found (404) at {path}; check runner.github.owner/repo/workflow and the token's access"
    )]
    NotFound {
        /// What was asked for.
        what: &'static str,
        /// The API path.
        path: String,
    },
    /// Rate limited, with a reset later than `runner.github.rate_limit_max_wait_secs`.
    #[error(
        "GitHub rate limit exhausted at {path}; it resets in {reset_in_secs} s, longer than the {max_wait_secs} s we wait"
    )]
    RateLimited {
        /// The API path.
        path: String,
        /// Seconds until the reset.
        reset_in_secs: u64,
        /// The configured longest wait.
        max_wait_secs: u64,
    },
    /// Another unexpected status.
    #[error("GitHub {method} {path} answered {status}: {body}")]
    Status {
        /// Method.
        method: &'static str,
        /// The API path.
        path: String,
        /// Status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// The body was not what the API documents.
    #[error("GitHub {path}: unexpected response: {message}")]
    Malformed {
        /// The API path.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// No run with the correlation id appeared in time.
    #[error(
        "no run of {workflow} named with correlation id {correlation_id} appeared within {secs} s"
    )]
    RunNotFound {
        /// The workflow file.
        workflow: String,
        /// The id looked for.
        correlation_id: String,
        /// How long we looked.
        secs: u64,
    },
    /// The run did not complete in time.
    #[error("run {run_id} ({url}) did not complete within {secs} s (last status {status})")]
    Timeout {
        /// The run.
        run_id: u64,
        /// Its page.
        url: String,
        /// The configured limit.
        secs: u64,
        /// Last status seen.
        status: String,
    },
    /// Transport failure.
    #[error("GitHub request {path}: {message}")]
    Transport {
        /// The API path.
        path: String,
        /// What failed.
        message: String,
    },
}

/// A GitHub client for one repository's inference workflow.
#[derive(Clone)]
pub struct GithubClient {
    crab: Octocrab,
    settings: GithubSettings,
    owner: String,
    repo: String,
}

impl std::fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The octocrab client holds the token: never print it.
        f.debug_struct("GithubClient")
            .field("api_url", &self.settings.api_url)
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl GithubClient {
    /// A client for `settings`, authenticated with `token`.
    pub fn new(settings: &GithubSettings, token: Option<&Secret>) -> Result<Self, GithubError> {
        let token = token.ok_or_else(|| {
            GithubError::Config(
                "runner.kind = \"github\" needs CYBERGOV_GITHUB_TOKEN (or CYBERGOV_GITHUB_TOKEN_FILE)"
                    .into(),
            )
        })?;
        let need = |v: &Option<String>, key: &str| {
            v.clone()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| GithubError::Config(format!("runner.github.{key} is not set")))
        };
        let owner = need(&settings.owner, "owner")?;
        let repo = need(&settings.repo, "repo")?;
        let crab = Octocrab::builder()
            .base_uri(settings.api_url.as_str())
            .map_err(|e| GithubError::Config(format!("runner.github.api_url: {e}")))?
            .personal_token(token.expose().to_owned())
            // A GitHub that accepts the connection and never answers must not hold the stage
            // until its own timeout: each request gives up on its own.
            .set_connect_timeout(Some(std::time::Duration::from_secs(30)))
            .set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .set_write_timeout(Some(std::time::Duration::from_secs(60)))
            .build()
            .map_err(|e| GithubError::Config(e.to_string()))?;
        Ok(Self {
            crab,
            settings: settings.clone(),
            owner,
            repo,
        })
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}/actions/{rest}", self.owner, self.repo)
    }

    /// One request with the rate limit honoured; returns status and body. Failures (a
    /// transport error, an error status) are counted in the `request_errors` metric.
    async fn request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, bytes::Bytes), GithubError> {
        let answered = self.request_once_limited(method, path, body).await;
        match &answered {
            Err(_) => crate::metrics::request_failed("github", "transport"),
            Ok((status, _)) if status.is_server_error() => {
                crate::metrics::request_failed("github", "status_5xx")
            }
            Ok((status, _)) if status.is_client_error() => {
                crate::metrics::request_failed("github", "status_4xx")
            }
            Ok(_) => {}
        }
        answered
    }

    async fn request_once_limited(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, bytes::Bytes), GithubError> {
        let transport = |e: octocrab::Error| GithubError::Transport {
            path: path.to_owned(),
            message: e.to_string(),
        };
        loop {
            let response = match method {
                "POST" => self.crab._post(path, body).await,
                _ => self.crab._get(path).await,
            }
            .map_err(transport)?;
            let response = if response.status().is_redirection() {
                self.crab
                    .follow_location_to_data(response)
                    .await
                    .map_err(transport)?
            } else {
                response
            };
            let status = response.status();
            let headers = response.headers().clone();
            // Bounded: a run's log zip or a listing is far below this; a hostile answer is not.
            let limit = self.settings.max_response_bytes;
            let bytes = http_body_util::Limited::new(
                response.into_body(),
                usize::try_from(limit).unwrap_or(usize::MAX),
            )
            .collect()
            .await
            .map_err(|e| GithubError::Transport {
                path: path.to_owned(),
                message: format!(
                    "reading the answer (at most {limit} bytes, runner.github.max_response_bytes): {e}"
                ),
            })?
            .to_bytes();
            let limited = (status == StatusCode::FORBIDDEN
                || status == StatusCode::TOO_MANY_REQUESTS)
                && headers
                    .get("x-ratelimit-remaining")
                    .and_then(|v| v.to_str().ok())
                    == Some("0");
            // Secondary rate limits say `retry-after` (seconds) instead of remaining = 0.
            let retry_after = (status == StatusCode::FORBIDDEN
                || status == StatusCode::TOO_MANY_REQUESTS)
                .then(|| headers.get("retry-after"))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if limited || retry_after.is_some() {
                let wait = match retry_after {
                    Some(secs) => secs.max(1),
                    None => {
                        let reset = headers
                            .get("x-ratelimit-reset")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<i64>().ok())
                            .unwrap_or(0);
                        let now = chrono::Utc::now().timestamp();
                        u64::try_from(reset - now).unwrap_or(0) + 1
                    }
                };
                if wait > self.settings.rate_limit_max_wait_secs {
                    return Err(GithubError::RateLimited {
                        path: path.to_owned(),
                        reset_in_secs: wait,
                        max_wait_secs: self.settings.rate_limit_max_wait_secs,
                    });
                }
                tracing::warn!(
                    path,
                    wait_secs = wait,
                    "GitHub rate limit: waiting for reset"
                );
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            return Ok((status, bytes));
        }
    }

    fn expect(
        method: &'static str,
        path: &str,
        what: &'static str,
        (status, bytes): (StatusCode, bytes::Bytes),
        want: StatusCode,
    ) -> Result<bytes::Bytes, GithubError> {
        if status == want {
            Ok(bytes)
        } else if status == StatusCode::NOT_FOUND {
            Err(GithubError::NotFound {
                what,
                path: path.to_owned(),
            })
        } else {
            Err(GithubError::Status {
                method,
                path: path.to_owned(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
            })
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, GithubError> {
        serde_json::from_slice(bytes).map_err(|e| GithubError::Malformed {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Dispatches the workflow with `inputs` (GitHub answers 204 and no run id).
    pub async fn dispatch(&self, inputs: &DispatchInputs) -> Result<(), GithubError> {
        let path = self.repo_path(&format!("workflows/{}/dispatches", self.settings.workflow));
        let body = serde_json::json!({ "ref": self.settings.git_ref, "inputs": inputs.to_json() });
        let answer = self.request("POST", &path, Some(&body)).await?;
        Self::expect("POST", &path, "workflow", answer, StatusCode::NO_CONTENT)?;
        Ok(())
    }

    /// The recent dispatched runs of the workflow whose name contains `correlation_id`.
    pub async fn lookup_run(
        &self,
        correlation_id: &str,
    ) -> Result<Option<WorkflowRun>, GithubError> {
        let path = self.repo_path(&format!(
            "workflows/{}/runs?event=workflow_dispatch&per_page=50",
            self.settings.workflow
        ));
        let answer = self.request("GET", &path, None).await?;
        let bytes = Self::expect("GET", &path, "workflow", answer, StatusCode::OK)?;
        let list: RunList = Self::parse(&path, &bytes)?;
        Ok(list
            .workflow_runs
            .into_iter()
            .find(|r| r.display_title.contains(correlation_id)))
    }

    /// Polls until the run named with `correlation_id` appears (`find_timeout_secs`).
    pub async fn find_run(&self, correlation_id: &str) -> Result<WorkflowRun, GithubError> {
        let deadline = Instant::now() + Duration::from_secs(self.settings.find_timeout_secs);
        loop {
            if let Some(run) = self.lookup_run(correlation_id).await? {
                return Ok(run);
            }
            if Instant::now() >= deadline {
                return Err(GithubError::RunNotFound {
                    workflow: self.settings.workflow.clone(),
                    correlation_id: correlation_id.to_owned(),
                    secs: self.settings.find_timeout_secs,
                });
            }
            tokio::time::sleep(self.poll_interval()).await;
        }
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.settings.poll_interval_ms)
    }

    /// The run's current state.
    pub async fn get_run(&self, run_id: u64) -> Result<WorkflowRun, GithubError> {
        let path = self.repo_path(&format!("runs/{run_id}"));
        let answer = self.request("GET", &path, None).await?;
        let bytes = Self::expect("GET", &path, "workflow run", answer, StatusCode::OK)?;
        Self::parse(&path, &bytes)
    }

    /// Polls the run until it is `completed`, at most `run_timeout_secs` from `started`.
    pub async fn wait_for_completion(
        &self,
        run: WorkflowRun,
        started: Instant,
    ) -> Result<WorkflowRun, GithubError> {
        let deadline = started + Duration::from_secs(self.settings.run_timeout_secs);
        let mut run = run;
        loop {
            if run.status == "completed" {
                return Ok(run);
            }
            if Instant::now() >= deadline {
                return Err(GithubError::Timeout {
                    run_id: run.id,
                    url: run.html_url,
                    secs: self.settings.run_timeout_secs,
                    status: run.status,
                });
            }
            tokio::time::sleep(self.poll_interval()).await;
            run = self.get_run(run.id).await?;
        }
    }

    /// The run's logs as one text (the zip's files joined, see [`super::log::unzip_logs`]).
    pub async fn download_log(&self, run_id: u64) -> Result<String, GithubError> {
        let path = self.repo_path(&format!("runs/{run_id}/logs"));
        let answer = self.request("GET", &path, None).await?;
        let bytes = Self::expect("GET", &path, "run log", answer, StatusCode::OK)?;
        super::log::unzip_logs(&bytes, self.settings.max_log_bytes).map_err(|e| {
            GithubError::Malformed {
                path,
                message: e.to_string(),
            }
        })
    }
}
