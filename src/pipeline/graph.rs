//! The job graph: stages, their successors, retry policy, timeouts and delays, read from
//! `jobs/pipeline.toml` and checked before anything runs.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// The bundled graph (`jobs/pipeline.toml`), used when `pipeline.graph` is unset.
pub const BUNDLED: &str = include_str!("../../jobs/pipeline.toml");

/// The stage every referendum starts with.
pub const ENTRY: &str = "dispatch";

/// One stage of the graph.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Stages that become due when this one completes.
    #[serde(default)]
    pub next: Vec<String>,
    /// Tries in all before a transient failure fails the run.
    pub attempts: u32,
    /// Wait before the first retry, in seconds; doubles each retry.
    pub backoff_secs: u64,
    /// Longest wait between retries, in seconds.
    pub backoff_max_secs: u64,
    /// Longest a single try may run, in seconds.
    pub timeout_secs: u64,
    /// How long after its predecessor completes the stage becomes due, in seconds.
    #[serde(default)]
    pub delay_secs: u64,
}

impl StageSpec {
    /// The wait before retry number `retry` (1-based): exponential, capped.
    pub fn backoff(&self, retry: u32) -> Duration {
        let secs = self
            .backoff_secs
            .saturating_mul(1u64 << retry.saturating_sub(1).min(30))
            .min(self.backoff_max_secs.max(self.backoff_secs));
        Duration::from_secs(secs)
    }

    /// The stage's timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The stage's delay.
    pub fn delay(&self) -> Duration {
        Duration::from_secs(self.delay_secs)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphFile {
    stages: BTreeMap<String, StageSpec>,
}

/// A checked job graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    stages: BTreeMap<String, StageSpec>,
    /// Stage names in topological order, starting at [`ENTRY`].
    order: Vec<String>,
}

/// Why a graph was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    /// The file could not be read.
    #[error("cannot read job graph {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// Not TOML of the graph's shape.
    #[error("job graph {origin} is malformed: {message}")]
    Parse {
        /// The file, or `bundled`.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A `next` names a stage that is not defined.
    #[error("stage {stage:?} names an unknown next stage {next:?}")]
    UnknownStage {
        /// The stage.
        stage: String,
        /// The unknown name.
        next: String,
    },
    /// The entry stage is missing.
    #[error("the job graph has no {ENTRY:?} stage (every referendum starts there)")]
    NoEntry,
    /// Following `next` comes back to a stage.
    #[error("the job graph has a cycle: {}", .0.join(" → "))]
    Cycle(Vec<String>),
    /// A stage has no handler in the worker.
    #[error("stage {0:?} has no handler; known handlers: {1}")]
    MissingHandler(String, String),
    /// A stage cannot be reached from the entry.
    #[error("stage {0:?} cannot be reached from {ENTRY:?}")]
    Unreachable(String),
    /// A value is out of range.
    #[error("stage {stage:?}: {message}")]
    Invalid {
        /// The stage.
        stage: String,
        /// What is wrong.
        message: String,
    },
}

impl Graph {
    /// Reads the graph from `path`, or the bundled one.
    pub fn load(path: Option<&Path>) -> Result<Self, GraphError> {
        match path {
            None => Self::parse(BUNDLED, "bundled jobs/pipeline.toml"),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| GraphError::Read {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?;
                Self::parse(&text, &p.display().to_string())
            }
        }
    }

    /// Parses and checks the graph's shape (not its handlers: see [`Graph::check_handlers`]).
    pub fn parse(text: &str, origin: &str) -> Result<Self, GraphError> {
        let file: GraphFile = toml::from_str(text).map_err(|e| GraphError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let stages = file.stages;
        if !stages.contains_key(ENTRY) {
            return Err(GraphError::NoEntry);
        }
        for (name, spec) in &stages {
            if let Some(next) = spec.next.iter().find(|n| !stages.contains_key(*n)) {
                return Err(GraphError::UnknownStage {
                    stage: name.clone(),
                    next: next.clone(),
                });
            }
            let invalid = |message: &str| GraphError::Invalid {
                stage: name.clone(),
                message: message.to_owned(),
            };
            if spec.attempts == 0 {
                return Err(invalid("attempts must be at least 1"));
            }
            if spec.timeout_secs == 0 {
                return Err(invalid("timeout_secs must be at least 1"));
            }
        }
        let order = topological(&stages)?;
        if let Some(lost) = stages.keys().find(|s| !order.contains(s)) {
            return Err(GraphError::Unreachable(lost.clone()));
        }
        Ok(Self { stages, order })
    }

    /// Checks that every stage has a handler among `handlers`.
    pub fn check_handlers<'a>(
        &self,
        handlers: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), GraphError> {
        for stage in &self.order {
            if !handlers.clone().into_iter().any(|h| h == stage) {
                let known: Vec<&str> = handlers.into_iter().collect();
                return Err(GraphError::MissingHandler(stage.clone(), known.join(", ")));
            }
        }
        Ok(())
    }

    /// Sets the delay of `stage`, if the graph has it.
    pub fn override_delay(&mut self, stage: &str, delay_secs: u64) {
        if let Some(s) = self.stages.get_mut(stage) {
            s.delay_secs = delay_secs;
        }
    }

    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&StageSpec> {
        self.stages.get(name)
    }

    /// Stage names in topological order, the entry first.
    pub fn order(&self) -> &[String] {
        &self.order
    }
}

/// Depth-first topological sort from the entry; a back edge is a cycle.
fn topological(stages: &BTreeMap<String, StageSpec>) -> Result<Vec<String>, GraphError> {
    fn visit(
        name: &str,
        stages: &BTreeMap<String, StageSpec>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) -> Result<(), GraphError> {
        if done.contains(name) {
            return Ok(());
        }
        if let Some(at) = path.iter().position(|p| p == name) {
            let mut cycle = path[at..].to_vec();
            cycle.push(name.to_owned());
            return Err(GraphError::Cycle(cycle));
        }
        path.push(name.to_owned());
        for next in &stages[name].next {
            visit(next, stages, path, done, out)?;
        }
        path.pop();
        done.insert(name.to_owned());
        out.push(name.to_owned());
        Ok(())
    }
    let mut out = Vec::new();
    visit(
        ENTRY,
        stages,
        &mut Vec::new(),
        &mut BTreeSet::new(),
        &mut out,
    )?;
    // Also look for cycles among stages the entry does not reach, for a precise error.
    for name in stages.keys() {
        let mut scratch = Vec::new();
        visit(
            name,
            stages,
            &mut Vec::new(),
            &mut out.iter().cloned().collect(),
            &mut scratch,
        )?;
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(next: &[&str]) -> String {
        format!(
            "next = [{}]\nattempts = 1\nbackoff_secs = 1\nbackoff_max_secs = 4\ntimeout_secs = 5\n",
            next.iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(",")
        )
    }

    #[test]
    fn bundled_graph_is_the_six_stages_in_order() {
        let g = Graph::load(None).unwrap();
        assert_eq!(
            g.order(),
            ["dispatch", "scrape", "augment", "infer", "vote", "comment"]
        );
        assert_eq!(g.stage("scrape").unwrap().delay_secs, 2 * 24 * 3600);
    }

    #[test]
    fn errors_name_the_problem() {
        let text = format!(
            "[stages.dispatch]\n{}[stages.a]\n{}",
            stage(&["a"]),
            stage(&["nope"])
        );
        assert_eq!(
            Graph::parse(&text, "t").unwrap_err(),
            GraphError::UnknownStage {
                stage: "a".into(),
                next: "nope".into()
            }
        );
        let text = format!(
            "[stages.dispatch]\n{}[stages.a]\n{}[stages.b]\n{}",
            stage(&["a"]),
            stage(&["b"]),
            stage(&["a"])
        );
        assert_eq!(
            Graph::parse(&text, "t").unwrap_err().to_string(),
            "the job graph has a cycle: a → b → a"
        );
        let text = format!(
            "[stages.dispatch]\n{}[stages.x]\n{}",
            stage(&[]),
            stage(&[])
        );
        assert_eq!(
            Graph::parse(&text, "t").unwrap_err(),
            GraphError::Unreachable("x".into())
        );
        let g = Graph::parse(&format!("[stages.dispatch]\n{}", stage(&[])), "t").unwrap();
        let e = g.check_handlers(["scrape"]).unwrap_err().to_string();
        assert!(e.contains("\"dispatch\" has no handler"), "{e}");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let g = Graph::parse(&format!("[stages.dispatch]\n{}", stage(&[])), "t").unwrap();
        let s = g.stage("dispatch").unwrap();
        let secs: Vec<u64> = (1..=4).map(|r| s.backoff(r).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 4]);
    }
}
