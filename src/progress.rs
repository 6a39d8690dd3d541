//! How far a long step is — reported by the library, shown by the binary.
//!
//! Loading, requantizing and generating take minutes on a CPU, and an operator at a terminal
//! wants to see them move. But a library that draws on stderr itself decides for every caller:
//! the scheduler's logs, a test's output and a re-executing verifier would all get bars. So the
//! library only reports steps to a [`Progress`] it is given; the binary passes one that draws
//! (`commands::progress`), everything else passes [`quiet`].

use std::sync::Arc;

/// Receives the long steps of a piece of work.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// Starts a step called `label` of `total` units (`None`: length unknown). The step ends
    /// when the returned handle is dropped.
    fn step(&self, label: &'static str, total: Option<u64>) -> Box<dyn ProgressStep>;
}

/// One running step.
pub trait ProgressStep: Send {
    /// `n` more units are done.
    fn advance(&self, n: u64);
}

/// Shows nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

struct QuietStep;

impl ProgressStep for QuietStep {
    fn advance(&self, _: u64) {}
}

impl Progress for Quiet {
    fn step(&self, _: &'static str, _: Option<u64>) -> Box<dyn ProgressStep> {
        Box::new(QuietStep)
    }
}

/// A shared [`Quiet`]: the default wherever no one is watching.
pub fn quiet() -> Arc<dyn Progress> {
    Arc::new(Quiet)
}
