//! `RunId`: which run of which referendum on which network. Every artefact of a run, its
//! ledger rows, its remark and its workflow dispatch name the same three numbers; one type
//! keeps them together, so that a referendum index is never passed where a run was meant.

use crate::network::Network;
use crate::store::layout::{ReferendumLayout, RunLayout};
use std::fmt;

/// One run of one referendum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId {
    /// The network.
    pub network: Network,
    /// The referendum index.
    pub referendum: u32,
    /// The run, from 1; a rerun is run + 1.
    pub run: u32,
}

impl RunId {
    /// Run `run` of `network` #`referendum`.
    pub fn new(network: Network, referendum: u32, run: u32) -> Self {
        Self {
            network,
            referendum,
            run,
        }
    }

    /// The run's folder in the store.
    pub fn layout(&self) -> RunLayout {
        self.referendum_layout().run(self.run)
    }

    /// The referendum's folder in the store.
    pub fn referendum_layout(&self) -> ReferendumLayout {
        ReferendumLayout::new(self.network, self.referendum)
    }

    /// Another run of the same referendum.
    pub fn with_run(&self, run: u32) -> Self {
        Self { run, ..*self }
    }
}

impl From<RunLayout> for RunId {
    fn from(layout: RunLayout) -> Self {
        Self::new(
            layout.referendum.network,
            layout.referendum.referendum,
            layout.run,
        )
    }
}

/// `polkadot #123 run 2`, as logs and errors name a run.
impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} #{} run {}", self.network, self.referendum, self.run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_names_its_folder_and_reads_back_from_it() {
        let id = RunId::new(Network::Kusama, 42, 3);
        assert_eq!(id.layout().prefix(), "proposals/kusama/42/runs/3/");
        assert_eq!(RunId::from(id.layout()), id);
        assert_eq!(id.with_run(4).run, 4);
        assert_eq!(id.to_string(), "kusama #42 run 3");
    }
}
