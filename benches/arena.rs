//! The arena's benchmark (issue #16): the bootstrap of online Elo — 1 000 resamples of 10 000
//! battles — in cybergov against the same computation in Python with pandas, as FastChat's
//! `elo_analysis.py` does it (`scripts/bench-arena.py`), on the same battles, side by side.
//!
//! ```text
//! cargo bench --bench arena -- [--battles 10000] [--rounds 1000] [--models 8]
//!                              [--peer | --no-peer] [--python python3]
//! ```
//!
//! The battles are simulated between models of known strengths (a tenth ties, a twentieth both
//! bad) and written to a CSV the peer reads; each side times only its bootstrap (reading the
//! battles excluded) and reports its process's peak RSS. The two draw different resamples (each
//! its own generator), so their medians agree only to within the bootstrap's noise; the
//! largest gap between them is printed as a check that both computed the same thing.
//!
//! A benchmark, not a test: `cargo test --all-targets` builds it and starts it without the
//! `--bench` flag that `cargo bench` passes, and then it returns at once.

use anyhow::Result;
use clap::Parser;
use cybergov::arena::ratings::{Battle, Outcome, SplitMix64, bootstrap};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

// Shared with the other benchmarks; this one uses a part of each.
#[allow(dead_code)]
#[path = "support/db.rs"]
mod db;
#[path = "support/peer.rs"]
mod peer;
use peer::{Peer, PeerArgs};

/// pandas, run by `scripts/bench-arena.py`.
const PANDAS: Peer<'static> = Peer {
    name: "pandas (FastChat's bootstrap)",
    script: "bench-arena.py",
    module: "pandas",
    install: "pip install numpy pandas",
};

#[derive(Parser, Debug)]
#[command(about = "Bootstrap Elo in cybergov against pandas")]
struct Args {
    /// Battles.
    #[arg(long, default_value_t = 10_000)]
    battles: usize,
    /// Bootstrap rounds.
    #[arg(long, default_value_t = 1000)]
    rounds: u32,
    /// Models.
    #[arg(long, default_value_t = 8)]
    models: usize,
    /// Seed of the simulation and of our resampling.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    peer: PeerArgs,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, serde::Deserialize)]
struct PandasReport {
    pandas: String,
    seconds: f64,
    rss_mb: f64,
    median: BTreeMap<String, f64>,
}

/// `n` battles between `models` models, model `i` of strength 1.25^i.
fn simulate(n: usize, models: usize, seed: u64) -> Vec<Battle> {
    let mut rng = SplitMix64::new(seed);
    let unit = |rng: &mut SplitMix64| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let strength = |i: usize| 1.25f64.powi(i as i32);
    (0..n)
        .map(|_| {
            let i = rng.below(models);
            let j = (i + 1 + rng.below(models - 1)) % models;
            let roll = unit(&mut rng);
            let outcome = if roll < 0.05 {
                Outcome::BothBad
            } else if roll < 0.15 {
                Outcome::Tie
            } else if unit(&mut rng) < strength(i) / (strength(i) + strength(j)) {
                Outcome::A
            } else {
                Outcome::B
            };
            Battle {
                a: format!("model-{i}"),
                b: format!("model-{j}"),
                outcome,
            }
        })
        .collect()
}

fn csv(battles: &[Battle]) -> String {
    let mut out = String::from("model_a,model_b,winner\n");
    for b in battles {
        let winner = match b.outcome {
            Outcome::A => "model_a",
            Outcome::B => "model_b",
            Outcome::Tie => "tie",
            Outcome::BothBad => "tie (bothbad)",
        };
        let _ = writeln!(out, "{},{},{winner}", b.a, b.b);
    }
    out
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("arena: a benchmark, not run as a test; run `cargo bench --bench arena`");
        return Ok(());
    }
    let args = Args::parse();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "arena: bootstrap Elo, {} rounds over {} battles of {} models; load {}",
        args.rounds,
        args.battles,
        args.models,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let with_peer = PANDAS.decide(&args.peer)?;
    let battles = simulate(args.battles, args.models.max(2), args.seed);
    let started = Instant::now();
    let ours = bootstrap(&battles, 4.0, args.rounds, args.seed);
    let seconds = started.elapsed().as_secs_f64();
    let rss = db::vm_hwm_mb();
    println!("{:<10} {:>10} {:>10}", "", "seconds", "RSS (MB)");
    println!("{:<10} {seconds:>10.3} {rss:>10.1}", "cybergov");
    if with_peer {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("battles.csv");
        std::fs::write(&path, csv(&battles))?;
        let p: PandasReport = PANDAS.run(
            &args.peer.python,
            &[
                "--battles".into(),
                path.display().to_string(),
                "--rounds".into(),
                args.rounds.to_string(),
            ],
        )?;
        println!("{:<10} {:>10.3} {:>10.1}", "pandas", p.seconds, p.rss_mb);
        let gap = ours
            .iter()
            .filter_map(|(m, r)| Some((r.median - p.median.get(m)?).abs()))
            .fold(0.0, f64::max);
        println!(
            "pandas {}: ours / theirs: time {:.4}× ({:.0}× faster), RSS {:.2}×; largest gap between the two medians {gap:.2} points",
            p.pandas,
            seconds / p.seconds,
            p.seconds / seconds,
            rss / p.rss_mb
        );
    }
    for (m, r) in &ours {
        println!(
            "  {m}: median {:.1} [{:.1}, {:.1}]",
            r.median, r.low, r.high
        );
    }
    Ok(())
}
