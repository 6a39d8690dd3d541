//! Progress bars for a person at a terminal (see [`crate::progress`] for why the library does
//! not draw them itself).

use crate::progress::{Progress, ProgressStep};
use std::io::IsTerminal;
use std::sync::Arc;

/// Draws each step as a bar (or a spinner when its length is unknown) on stderr — only when
/// stderr is a terminal, so logs and CI stay clean.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bars;

struct Bar(indicatif::ProgressBar);

impl ProgressStep for Bar {
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bars {
    fn step(&self, label: &'static str, total: Option<u64>) -> Box<dyn ProgressStep> {
        let bar = if !std::io::stderr().is_terminal() {
            indicatif::ProgressBar::hidden()
        } else {
            match total {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            }
        };
        bar.set_message(label);
        Box::new(Bar(bar))
    }
}

/// What the commands pass to the library.
pub fn bars() -> Arc<dyn Progress> {
    Arc::new(Bars)
}
