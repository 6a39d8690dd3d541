//! The `cybergov` binary: parse the command line, hand over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cybergov::cli::Cli::parse();
    cybergov::commands::run(cli)
}
