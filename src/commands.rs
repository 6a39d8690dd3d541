//! What each command does. Errors are reported here, at the edge, with exit codes:
//! 0 success, 1 failure (including a failed verification), 2 usage (clap).

mod arena;
mod comment;
mod demo;
mod dispatch;
mod infer;
mod models;
mod progress;
mod rerun;
mod run;
mod serve;
mod status;
mod verify;
mod vote;

use crate::cli::{Cli, Command};
use crate::config::{Config, LogFormat};
use crate::secret::Secrets;
use anyhow::Context;
use std::process::ExitCode;

/// Runs `cli` and turns the outcome into an exit code.
pub fn run(cli: Cli) -> ExitCode {
    match run_inner(cli) {
        Ok(code) => code,
        Err(e) => {
            // An error may quote a configured URL (rpc_url, database.url): never its password.
            eprintln!("error: {}", crate::secret::redact_urls(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run_inner(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    config.database.init = cli.init;
    init_logging(&config);
    set_inference_threads(config.magi.threads);
    let secrets = std::sync::Arc::new(Secrets::from_env().context("reading secrets")?);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command {
        Command::Config => {
            println!("{}", config.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { network, id } => rt.block_on(status::run(&config, &secrets, network, id)),
        Command::Verify {
            run,
            reexecute,
            base_url,
            chain,
        } => {
            let sources = verify::Sources { base_url, chain };
            rt.block_on(verify::run(&config, &secrets, &run, &sources, reexecute))
        }
        Command::Demo { dir } => rt.block_on(demo::run(&dir, &config)),
        Command::Serve { web_only } => rt.block_on(serve::run(&config, &secrets, web_only)),
        Command::Dispatch { network } => rt.block_on(dispatch::run(&config, &secrets, network)),
        Command::Run(target) => rt.block_on(run::run(&config, &secrets, &target)),
        Command::Rerun { target, from } => {
            rt.block_on(rerun::run(&config, &secrets, &target, from))
        }
        Command::Infer(target) => rt.block_on(infer::run(&config, &secrets, &target)),
        Command::Models { action } => models::run(&config, action),
        Command::Arena { action } => rt.block_on(arena::run(&config, &secrets, action)),
        Command::Vote { run, dry_run } => rt.block_on(vote::run(&config, &secrets, &run, dry_run)),
        Command::Comment(target) => rt.block_on(comment::run(&config, &secrets, &target)),
    }
}

/// Pins candle's CPU thread count. It must happen before any thread pool starts, which is why
/// it is done here, first thing, through the variable candle and rayon read.
fn set_inference_threads(threads: u32) {
    if threads > 0 {
        // SAFETY: called before the async runtime or any other thread is started.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
}

/// Opens the configured artefact store (every store-reading command starts here).
fn open_store(config: &Config, secrets: &Secrets) -> anyhow::Result<crate::store::SharedStore> {
    crate::store::open(&config.store, secrets).context("opening the store")
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    // RUST_LOG, when set, wins over the configured filter: the usual expectation when debugging.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
