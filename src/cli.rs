//! Command-line definitions, and nothing else: what each command does lives in
//! [`crate::commands`].

use crate::network::Network;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// cybergov: three local language models vote on OpenGov referenda, and anyone can verify it.
#[derive(Debug, Parser)]
#[command(name = "cybergov", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Configuration file (default: $CYBERGOV_CONFIG, else ./cybergov.toml if present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Make the configured SQLite database a cybergov ledger even though it already exists
    /// without one (an empty database, or another program's): cybergov refuses such a file
    /// otherwise, so that a wrong path never silently becomes a new, empty ledger.
    #[arg(long, global = true)]
    pub init: bool,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// A referendum on a network.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Network: polkadot, kusama or paseo.
    #[arg(long, value_parser = parse_network)]
    pub network: Network,
    /// Referendum index (a non-negative whole number).
    #[arg(long)]
    pub id: u32,
}

/// A referendum and optionally one of its runs.
#[derive(Debug, Clone, Args)]
pub struct RunTarget {
    #[command(flatten)]
    /// Which referendum.
    pub target: Target,
    /// Run number (default: the latest run).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub run: Option<u32>,
}

/// How `cybergov verify` finds the vote on chain: never from the run being checked.
#[derive(Debug, Clone, Args)]
pub struct ChainArgs {
    /// JSON-RPC endpoint of the network's governance chain (default: the network's rpc_url,
    /// or its sidecar_url when vote.transport is "sidecar").
    #[arg(long, value_name = "URL", conflicts_with = "sidecar")]
    pub rpc_url: Option<String>,
    /// Substrate API Sidecar to read the chain from instead of JSON-RPC.
    #[arg(long, value_name = "URL")]
    pub sidecar: Option<String>,
    /// The account whose vote it is, the proxy's real account (default: the network's
    /// real_account).
    #[arg(long, value_name = "ADDRESS")]
    pub real: Option<String>,
    /// First block to search for the vote (default: the referendum's submission, or
    /// --max-blocks below the last).
    #[arg(long, value_name = "N")]
    pub from_block: Option<u64>,
    /// Last block to search for the vote (default: the best block).
    #[arg(long, value_name = "N")]
    pub to_block: Option<u64>,
    /// Search at most this many blocks when --from-block is not given.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    pub max_blocks: u64,
    /// Exit 0 on NOT VOTED (a dry run): consistent artefacts, no vote on chain.
    #[arg(long)]
    pub allow_unvoted: bool,
}

/// The stages of the job graph, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StageName {
    /// Find referenda to vote on.
    Dispatch,
    /// Fetch the referendum from Subsquare.
    Scrape,
    /// Clean the text and add neutral analysis.
    Augment,
    /// Run the three jurors and tally.
    Infer,
    /// Cast the vote with the manifest remark.
    Vote,
    /// Post the rationale comment.
    Comment,
}

/// cybergov's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scheduler and workers (hourly dispatch, then every stage as it comes due) and
    /// the HTTP server (health checks, JSON API).
    Serve {
        /// Only the HTTP server, read-only: no dispatch, no stage runs (a public mirror).
        #[arg(long)]
        web_only: bool,
    },
    /// Find ongoing referenda without a completed run and schedule them, once.
    Dispatch {
        /// Only this network (default: every enabled network).
        #[arg(long, value_parser = parse_network)]
        network: Option<Network>,
    },
    /// Run one referendum through every stage, in the foreground.
    Run(Target),
    /// Start a new run (run + 1) of a referendum; earlier runs stay untouched.
    Rerun {
        #[command(flatten)]
        /// Which referendum.
        target: Target,
        /// Start from this stage, reusing the earlier ones' outputs.
        #[arg(long, value_enum)]
        from: Option<StageName>,
    },
    /// Show referenda, their runs, and what each run has produced.
    Status {
        /// Only this network.
        #[arg(long, value_parser = parse_network)]
        network: Option<Network>,
        /// Only this referendum (needs --network).
        #[arg(long, requires = "network")]
        id: Option<u32>,
    },
    /// Run the three jurors and the tally for one referendum; write the manifest.
    Infer(RunTarget),
    /// Cast the vote of a run on chain, with the manifest hash as remark.
    Vote {
        #[command(flatten)]
        /// Which run.
        run: RunTarget,
        /// Build and show the transaction, submit nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Post the rationale comment of a run to Subsquare.
    Comment(RunTarget),
    /// Verify a run: manifest hash, every artefact, the hash chain, the vote and remark on chain.
    Verify {
        #[command(flatten)]
        /// Which run.
        run: RunTarget,
        /// Also re-run the jurors and compare their outputs byte for byte.
        #[arg(long)]
        reexecute: bool,
        /// Read the artefacts from this public base URL instead of the configured store.
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
        /// Where and what to look for on chain.
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Run the whole pipeline offline on a bundled sample referendum.
    Demo {
        /// Where the demo keeps its store and database.
        #[arg(long, default_value = "cybergov-demo", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the effective configuration (file + environment; secrets are never part of it).
    Config,
    /// Manage the juror models: list the known ones, fetch them into the cache.
    Models {
        /// What to do.
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Compare juror models in public: how their decisions agree with how referenda ended.
    Arena {
        /// What to do.
        #[command(subcommand)]
        action: ArenaAction,
    },
}

/// `cybergov arena …`.
#[derive(Debug, Subcommand)]
pub enum ArenaAction {
    /// Prepare a review session: the candidate and the juror's model each write a rationale,
    /// as that juror, on the newest stored proposals (one round each). Prints the session.
    Prepare {
        /// The candidate: a named model (`cybergov models list`), a Hub file pinned by its
        /// hash (`hf:OWNER/REPO@REVISION/FILE#sha256=HEX`) or a path to a `.gguf`.
        #[arg(long)]
        candidate: String,
        /// The juror whose model is the incumbent and whose persona both models take.
        #[arg(long, default_value = "balthazar")]
        juror: String,
        /// Who will judge (recorded with each battle and published with it).
        #[arg(long)]
        reviewer: String,
        /// Rounds, one stored proposal each.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
        rounds: u16,
    },
    /// Judge a prepared session here: per round, the proposal and two anonymous rationales;
    /// answer a, b, t (tie) or x (both bad). Stop at any time and resume later.
    Review {
        /// The session `arena prepare` printed.
        session: String,
    },
    /// Every model's ratings from the battles (online Elo, bootstrap median and 95 % interval,
    /// Bradley–Terry) and the upgrade rule's decision for each prepared pair.
    Leaderboard,
    /// Publish the battles, ratings and decisions as artefacts with a manifest (`arena/{n}/`).
    Publish,
    /// Recheck a publication in the store: its manifest and hashes, and its ratings and
    /// decisions recomputed from its battles.
    Verify {
        /// The publication (default: the latest).
        #[arg(long)]
        publication: Option<u32>,
    },
    /// Each juror model's agreement with how the referenda in the store ended (Subsquare's
    /// state now), with a 95 % interval.
    Agreement {
        /// Only this network.
        #[arg(long, value_parser = parse_network)]
        network: Option<Network>,
    },
}

/// `cybergov models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// List the named models, their pinned hashes and whether they are cached.
    List,
    /// Fetch a named model (default: every configured juror's), check its hash, requantize.
    Fetch {
        /// A model name (see `cybergov models list`) or a Hugging Face Hub file pinned by its
        /// hash, `hf:OWNER/REPO@REVISION/FILE#sha256=HEX` (default: every configured juror's).
        name: Option<String>,
    },
}

fn parse_network(s: &str) -> Result<Network, String> {
    s.parse()
        .map_err(|e: crate::network::UnknownNetwork| e.to_string())
}
