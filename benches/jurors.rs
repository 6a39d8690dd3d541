//! The juror benchmark (issue #4): prompt-processing and generation tokens/s and peak RSS for
//! the juror workload on candle, side by side with llama.cpp on the same GGUF, prompt and thread
//! count where llama.cpp is installed (`pip install llama-cpp-python==0.3.36`).
//!
//! ```text
//! cargo bench --bench jurors -- --threads 2 --tokens 64 [--quant q8_0|q4_1] [--model FILE]
//!                               [--rounds 3] [--peer | --no-peer] [--python python3]
//! ```
//!
//! What is measured, all through the public [`LanguageModel`] API:
//! - the prompt is the bundled sample referendum, augmented as the pipeline does it
//!   (`content.md`) and wrapped in the first juror's rationale conversation, rendered with the
//!   model's chat template;
//! - on the engine itself: the prefill of the whole prompt from an empty cache, then N greedy
//!   decode steps of one token each, each step timed directly (the text to compare with the
//!   peer's comes from an untimed `generate(N)`);
//! - peak RSS is this process's `VmHWM` at the end (model load, every round, one deliberation);
//! - one full [`deliberate`] (rationale with the default juror decoding, then option scoring) is
//!   timed as the real juror workload.
//!
//! The peer, `scripts/bench-llamacpp.py`, runs as a separate process per round (so its RSS is
//! its own), alternating with ours so that both see the same machine load. It evaluates the
//! exact prompt text (written to a file) and generates as many tokens as candle did, greedily.
//! Rounds are summarised by their median.
//!
//! Then, issue #13's profile (same GGUF and thread count for both engines):
//! - decode-only tokens/s at 250, 1000 and 4000 tokens of context (the prompt's tokens,
//!   repeated to length; 32 greedy steps timed after the context is in the cache);
//! - one referendum end to end: all three jurors `deliberate` on one loaded model (the engine
//!   shares their common prefix and scores from the generation's cache), against llama.cpp
//!   doing the same token work the naive way: per juror one prefill and as many greedy steps
//!   as our rationale took, then one full prefill of the scoring conversation per option.
//!
//! `uptime` is printed first: the machine's load is part of every figure.
//!
//! This is a benchmark, not a test: `cargo test --all-targets` builds it and starts it without
//! the `--bench` flag that `cargo bench` passes, and then it returns at once.

use anyhow::{Context, Result, bail};
use clap::Parser;
use cybergov::magi::candle::{CandleModel, LoadOptions};
use cybergov::magi::juror::{deliberate, deliberate_together, rationale_messages};
use cybergov::magi::model::{ChatMessage, FinishReason, GenerateParams, LanguageModel};
use cybergov::magi::models;
use cybergov::magi::prompts::{JURORS, Prompts};
use cybergov::magi::settings::MagiConfig;
use cybergov::manifest::Decoding;
use cybergov::network::Network;
use cybergov::proposal::Proposal;
use cybergov::stages::augment::questions::Questions;
use cybergov::stages::augment::{AugmentConfig, augment};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[path = "support/bandwidth.rs"]
mod bandwidth;
#[path = "support/llamacpp.rs"]
mod llamacpp;
#[path = "support/peer.rs"]
mod peer;
use llamacpp::{JurorWork, PeerReport, PlanReport};
use peer::{Peer, PeerArgs};

/// The demo's sample referendum, in Subsquare's shape: the juror input.
const SAMPLE_REFERENDUM: &[u8] = include_bytes!("../src/commands/demo/sample-referendum.json");

#[derive(Parser, Debug)]
#[command(about = "Juror tokens/s and peak RSS, candle vs llama.cpp")]
struct Args {
    /// CPU threads for both engines (sets RAYON_NUM_THREADS before any candle work).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Tokens to generate (greedy; fewer if the model ends its turn).
    #[arg(long, default_value_t = 64)]
    tokens: u32,
    /// Which named SmolLM2-135M file: q8_0 (the default juror model) or q4_1 (as shipped).
    #[arg(long, default_value = "q8_0")]
    quant: String,
    /// A GGUF file to use instead of the named model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Measured rounds (ours then the peer's, alternating); medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[command(flatten)]
    peer: PeerArgs,
    /// llama.cpp context size.
    #[arg(long, default_value_t = 4096)]
    n_ctx: u32,
    /// Rounds of the decode profile and the three-juror run (alternating with the peer).
    #[arg(long, default_value_t = 1)]
    profile_rounds: usize,
    /// Passed by `cargo bench`; without it the binary does nothing (see `main`).
    #[arg(long, hide = true)]
    bench: bool,
}

/// One round's numbers for one engine.
#[derive(Clone, Debug, Default)]
struct Round {
    prompt_tokens: u32,
    prefill_s: f64,
    gen_tokens: u32,
    gen_s: f64,
}

impl Round {
    fn pp_tps(&self) -> f64 {
        f64::from(self.prompt_tokens) / self.prefill_s
    }
    fn tg_tps(&self) -> f64 {
        f64::from(self.gen_tokens) / self.gen_s
    }
}

/// Decode-only contexts of issue #13.
const DECODE_CONTEXTS: [usize; 3] = [250, 1000, 4000];
/// Greedy steps timed per context.
const DECODE_STEPS: usize = 32;

/// `ids` repeated to `n` tokens.
fn cycled(ids: &[u32], n: usize) -> Vec<u32> {
    ids.iter().copied().cycle().take(n).collect()
}

/// Our decode-only tokens/s after `context` is in the cache.
fn decode_profile(model: &CandleModel, context: &[u32]) -> Result<f64> {
    model.with_engine(|m| -> Result<f64> {
        m.rewind(0);
        let mut seq = context.to_vec();
        let mut logits = m.logits(&seq, 1)?.pop().context("logits")?;
        let t = Instant::now();
        for _ in 0..DECODE_STEPS {
            seq.push(cybergov::magi::candle::sampling::argmax(&logits));
            logits = m.logits(&seq, 1)?.pop().context("logits")?;
        }
        Ok(DECODE_STEPS as f64 / t.elapsed().as_secs_f64())
    })
}

/// Prints `| label | ours | theirs | ours / theirs |`, or says the figure was not measured:
/// a time that came out empty, negative or infinite is dropped rather than printed as a rate.
fn row(label: &str, ours: f64, theirs: Option<f64>) {
    let ok = |x: f64| x.is_finite() && x > 0.0;
    match (ok(ours), theirs) {
        (false, _) => println!("| {label} | not measured | | |"),
        (true, Some(t)) if ok(t) => println!("| {label} | {ours:.2} | {t:.2} | {:.2}× |", ours / t),
        (true, _) => println!("| {label} | {ours:.2} | n/a | |"),
    }
}

/// `VmHWM` / `VmRSS` of this process, in KiB.
fn proc_status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`. `cargo test --all-targets` builds this binary too and runs
    // it without that flag: then it measures nothing (benchmarks are not tests).
    if !std::env::args().any(|a| a == "--bench") {
        println!("jurors: a benchmark, not run as a test; run `cargo bench --bench jurors`");
        return Ok(());
    }
    let args = Args::parse();
    match std::process::Command::new("uptime").output() {
        Ok(o) => print!("uptime: {}", String::from_utf8_lossy(&o.stdout)),
        Err(e) => println!("uptime: unavailable ({e})"),
    }
    // Figures are comparable only on an idle machine (docs/BENCHMARKS.md): say so loudly.
    let load: Option<f64> = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    if let Some(l) = load.filter(|l| *l >= 0.5) {
        println!(
            "WARNING: load average {l:.2} ≥ 0.5: the machine is not idle, these figures are not for docs/BENCHMARKS.md"
        );
    }
    // SAFETY: first thing in main, before any other thread (rayon, tokio) exists.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string()) };
    let threads = candle_core::utils::get_num_threads();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args, threads))
}

/// The sample referendum as the jurors get it: `content.md`.
fn juror_content() -> Result<String> {
    let network = Network::Polkadot;
    let spec = network.default_spec();
    let proposal = Proposal::from_subsquare(network, &spec, SAMPLE_REFERENDUM)?;
    let augmented = augment(
        &proposal,
        &AugmentConfig::default(),
        &spec,
        &Questions::bundled(),
    )?;
    Ok(augmented.content_md())
}

fn model_path(args: &Args) -> Result<PathBuf> {
    if let Some(p) = &args.model {
        return Ok(p.clone());
    }
    let name = match args.quant.to_ascii_lowercase().as_str() {
        "q8_0" => "smollm2-135m-instruct-q8_0",
        "q4_1" => "smollm2-135m-instruct",
        q => bail!("--quant {q}: use q8_0 or q4_1 (or --model FILE)"),
    };
    let named = models::named(name).context("named model missing")?;
    Ok(models::ensure(
        named,
        &models::default_models_dir(),
        &cybergov::progress::Quiet,
    )?)
}

async fn measure_ours(
    model: &CandleModel,
    messages: &[ChatMessage],
    tokens: u32,
) -> Result<(Round, String, FinishReason)> {
    // Timed on the engine itself, as the decode profile is: the prefill of the whole prompt
    // from an empty cache, then `tokens` decode steps of one token each, each step timed as it
    // runs. (Two `generate` calls of different lengths subtracted from each other gave a
    // negative step under load.)
    let prompt = model.template().render(messages);
    let ids = model.encode(&prompt, true)?;
    let steps = tokens.max(1) as usize;
    let (prefill_s, gen_s) = model.with_engine(|m| -> Result<(f64, f64)> {
        m.rewind(0);
        let t = Instant::now();
        let mut logits = m.logits(&ids, 1)?.pop().context("logits")?;
        let prefill_s = t.elapsed().as_secs_f64();
        let mut seq = ids.clone();
        let mut gen_s = 0.0;
        for _ in 0..steps {
            seq.push(cybergov::magi::candle::sampling::argmax(&logits));
            let t = Instant::now();
            logits = m.logits(&seq, 1)?.pop().context("logits")?;
            gen_s += t.elapsed().as_secs_f64();
        }
        Ok((prefill_s, gen_s))
    })?;
    // The text, for comparison with the peer's greedy text (not timed).
    model.clear_cache();
    let g = model
        .generate(messages, &GenerateParams::greedy(tokens))
        .await?;
    Ok((
        Round {
            prompt_tokens: ids.len() as u32,
            prefill_s,
            gen_tokens: steps as u32,
            gen_s,
        },
        g.text,
        g.finish,
    ))
}

/// llama.cpp through llama-cpp-python.
const LLAMA_CPP: Peer<'static> = Peer {
    name: "llama.cpp",
    script: "bench-llamacpp.py",
    module: "llama_cpp",
    install: "pip install llama-cpp-python==0.3.36",
};

fn run_peer(
    args: &Args,
    model: &Path,
    prompt_file: &Path,
    tokens: u32,
    threads: usize,
) -> Result<PeerReport> {
    LLAMA_CPP.run(
        &args.peer.python,
        &[
            "--model".into(),
            model.display().to_string(),
            "--prompt-file".into(),
            prompt_file.display().to_string(),
            "--threads".into(),
            threads.to_string(),
            "--tokens".into(),
            tokens.to_string(),
            "--n-ctx".into(),
            args.n_ctx.to_string(),
        ],
    )
}

/// Where two generated texts first differ (in chars), or `None` if one is a prefix of the other.
fn divergence(a: &str, b: &str) -> Option<usize> {
    a.chars().zip(b.chars()).position(|(x, y)| x != y)
}

async fn run(args: Args, threads: usize) -> Result<()> {
    let path = model_path(&args)?;
    let prompts = Prompts::embedded();
    let content = juror_content()?;
    let messages = rationale_messages(&prompts, JURORS[0], &content);

    let load_start = Instant::now();
    let model = CandleModel::load(&path, &LoadOptions::default())?;
    let load_s = load_start.elapsed().as_secs_f64();
    let rss_after_load = proc_status_kb("VmRSS:");

    // The exact text both engines tokenize.
    let prompt = model.template().render(&messages);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-jurors");
    std::fs::create_dir_all(&dir)?;
    let prompt_file = dir.join("prompt.txt");
    std::fs::write(&prompt_file, &prompt)?;

    let peer = LLAMA_CPP.decide(&args.peer)?;

    let info = model.info();
    println!(
        "model: {} ({}, {}), sha256 {}",
        path.display(),
        info.model_id,
        info.quantization.as_deref().unwrap_or("?"),
        info.file_sha256
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    println!(
        "threads: requested {}, candle get_num_threads() = {threads}; tokens: {}; rounds: {}",
        args.threads, args.tokens, args.rounds
    );
    println!("prompt: {} ({} bytes)", prompt_file.display(), prompt.len());

    // Warm-up: first-touch page faults, thread pool start.
    model
        .generate(&messages, &GenerateParams::greedy(1))
        .await?;

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut our_text = String::new();
    let mut our_finish = FinishReason::Length;
    let mut peer_last: Option<PeerReport> = None;
    for round in 1..=args.rounds.max(1) {
        let (r, text, finish) = measure_ours(&model, &messages, args.tokens).await?;
        println!(
            "round {round} candle:    pp {:7.1} tok/s ({} tok in {:.3} s)  tg {:6.2} tok/s ({} tok in {:.3} s)",
            r.pp_tps(),
            r.prompt_tokens,
            r.prefill_s,
            r.tg_tps(),
            r.gen_tokens,
            r.gen_s
        );
        let gen_tokens = r.gen_tokens;
        ours.push(r);
        our_text = text;
        our_finish = finish;
        if peer {
            let p = run_peer(&args, &path, &prompt_file, gen_tokens, threads)?;
            let r = Round {
                prompt_tokens: p.prompt_tokens,
                prefill_s: p.prefill_s,
                gen_tokens: p.gen_tokens,
                gen_s: p.gen_s,
            };
            println!(
                "round {round} llama.cpp: pp {:7.1} tok/s ({} tok in {:.3} s)  tg {:6.2} tok/s ({} tok in {:.3} s)",
                r.pp_tps(),
                r.prompt_tokens,
                r.prefill_s,
                r.tg_tps(),
                r.gen_tokens,
                r.gen_s
            );
            theirs.push(r);
            peer_last = Some(p);
        }
    }
    if our_finish == FinishReason::Stop {
        println!(
            "note: the model ended its turn after {} of {} tokens; both engines timed that many",
            ours[0].gen_tokens, args.tokens
        );
    }

    // The real juror workload: rationale with the default juror decoding, then option scoring.
    let magi = MagiConfig::default();
    let decoding = Decoding {
        strategy: "greedy".into(),
        max_new_tokens: magi.max_new_tokens,
        threads: threads as u32,
        repeat_penalty: magi.repeat_penalty.clone(),
        repeat_last_n: magi.repeat_last_n,
    };
    model.clear_cache();
    let t = Instant::now();
    let record = deliberate(JURORS[0], &model, &prompts, &content, &decoding).await?;
    let deliberate_s = t.elapsed().as_secs_f64();
    // The juror workload's peak, before the profile's 4000-token contexts grow the KV cache.
    let peak_juror = proc_status_kb("VmHWM:");

    // Issue #13's profile: decode-only at several contexts, then the whole jury.
    let base = model.encode(&prompt, true)?;
    let contexts: Vec<Vec<u32>> = DECODE_CONTEXTS.iter().map(|&n| cycled(&base, n)).collect();
    let labels: Vec<&str> = cybergov::magi::juror::OPTIONS
        .iter()
        .map(|(l, _)| *l)
        .collect();
    let mut our_decode: Vec<Vec<f64>> = vec![Vec::new(); contexts.len()];
    let mut their_decode: Vec<Vec<f64>> = vec![Vec::new(); contexts.len()];
    let (mut our_jury, mut their_jury, mut their_best) = (Vec::new(), Vec::new(), Vec::new());
    let mut peer_plan_rss = 0u64;
    let mut votes = Vec::new();
    for round in 1..=args.profile_rounds.max(1) {
        for (i, c) in contexts.iter().enumerate() {
            let tps = decode_profile(&model, c)?;
            println!(
                "profile round {round} candle:    decode at {:4} context {tps:6.2} tok/s",
                c.len()
            );
            our_decode[i].push(tps);
        }
        model.clear_cache();
        let t = Instant::now();
        let mut work = Vec::new();
        votes.clear();
        // The three jurors share the model: they deliberate together (one batch per step).
        let records = deliberate_together(&JURORS, &model, &prompts, &content, &decoding).await?;
        let jury_s = t.elapsed().as_secs_f64();
        for (j, r) in JURORS.iter().zip(&records) {
            votes.push(format!("{j} {:?}", r.vote));
            let mut msgs = rationale_messages(&prompts, j, &content);
            let prompt_ids = model.encode(&model.template().render(&msgs), true)?;
            msgs.push(ChatMessage::assistant(r.rationale.clone()));
            msgs.push(ChatMessage::user(prompts.vote.trim_end()));
            work.push(JurorWork {
                prompt: prompt_ids,
                gen_tokens: r.completion_tokens,
                score_prompt: model.encode(&model.template().render(&msgs), true)?,
                options: labels
                    .iter()
                    .map(|l| model.encode(l, false))
                    .collect::<Result<_, _>>()?,
            });
        }
        println!(
            "profile round {round} candle:    three jurors {jury_s:.2} s, {:.2}× one ({})",
            jury_s / deliberate_s,
            votes.join(", ")
        );
        our_jury.push(jury_s);
        if peer {
            let plan = serde_json::json!({
                "decode": { "contexts": contexts, "steps": DECODE_STEPS },
                "jury": work,
            });
            let plan_file = dir.join("plan.json");
            std::fs::write(&plan_file, serde_json::to_vec(&plan)?)?;
            let p: PlanReport = LLAMA_CPP.run(
                &args.peer.python,
                &[
                    "--model".into(),
                    path.display().to_string(),
                    "--prompt-file".into(),
                    prompt_file.display().to_string(),
                    "--threads".into(),
                    threads.to_string(),
                    "--n-ctx".into(),
                    args.n_ctx.to_string(),
                    "--plan".into(),
                    plan_file.display().to_string(),
                ],
            )?;
            for (i, d) in p.decode.iter().enumerate() {
                println!(
                    "profile round {round} llama.cpp: decode at {:4} context {:6.2} tok/s",
                    d.context, d.tok_s
                );
                their_decode[i].push(d.tok_s);
            }
            println!(
                "profile round {round} llama.cpp: three jurors {:.2} s (naive: a full prefill per option)",
                p.jury_s
            );
            println!(
                "profile round {round} llama.cpp: three jurors {:.2} s at its best (shared prompt, three sequences per batch)",
                p.jury_best_s
            );
            their_jury.push(p.jury_s);
            their_best.push(p.jury_best_s);
            peer_plan_rss = peer_plan_rss.max(p.peak_rss_kb);
        }
    }
    let peak = proc_status_kb("VmHWM:");

    let med = |v: &[Round], f: fn(&Round) -> f64| median(v.iter().map(f).collect());
    let our_pp = med(&ours, Round::pp_tps);
    let our_tg = med(&ours, Round::tg_tps);

    println!();
    println!(
        "deliberate({}): {deliberate_s:.2} s wall — {} prompt + {} rationale tokens \
         (max {}, repeat_penalty {}), then scoring {} options; vote {:?}",
        JURORS[0],
        record.prompt_tokens,
        record.completion_tokens,
        decoding.max_new_tokens,
        decoding.repeat_penalty,
        record.scores.len(),
        record.vote
    );
    println!();
    let fmt_ratio = |a: f64, b: f64| format!("{:.2}×", a / b);
    println!("| metric | cybergov (candle) | llama.cpp | ratio (ours / theirs) |");
    println!("|---|---:|---:|---:|");
    match (&peer_last, theirs.is_empty()) {
        (Some(p), false) => {
            let th_pp = med(&theirs, Round::pp_tps);
            let th_tg = med(&theirs, Round::tg_tps);
            println!(
                "| prompt tokens (own tokenizer) | {} | {} | |",
                ours[0].prompt_tokens, theirs[0].prompt_tokens
            );
            row("prompt processing, tok/s (median)", our_pp, Some(th_pp));
            row(
                &format!("decode ({} steps), tok/s (median)", ours[0].gen_tokens),
                our_tg,
                Some(th_tg),
            );
            println!(
                "| peak RSS (juror workload), MiB | {:.1} | {:.1} | {} |",
                mib(peak_juror),
                mib(p.peak_rss_kb),
                fmt_ratio(peak_juror as f64, p.peak_rss_kb as f64)
            );
            println!(
                "| model load, s | {load_s:.2} | {:.2} | {} |",
                p.load_s,
                fmt_ratio(load_s, p.load_s)
            );
            println!("| one deliberate(), s | {deliberate_s:.2} | — | |");
            println!();
            println!(
                "peer: llama-cpp-python {}, RSS before loading the model {:.1} MiB (Python); {}",
                p.version,
                mib(p.baseline_rss_kb),
                p.system_info.trim()
            );
            match divergence(&our_text, &p.text) {
                None => println!("greedy texts agree over the generated tokens"),
                Some(i) => println!(
                    "greedy texts diverge at char {i}: candle {:?} / llama.cpp {:?}",
                    our_text.chars().take(i + 20).collect::<String>(),
                    p.text.chars().take(i + 20).collect::<String>()
                ),
            }
        }
        _ => {
            println!("| prompt tokens | {} | n/a | |", ours[0].prompt_tokens);
            row("prompt processing, tok/s (median)", our_pp, None);
            row(
                &format!("decode ({} steps), tok/s (median)", ours[0].gen_tokens),
                our_tg,
                None,
            );
            println!(
                "| peak RSS (juror workload), MiB | {:.1} | n/a | |",
                mib(peak_juror)
            );
            println!("| model load, s | {load_s:.2} | n/a | |");
            println!("| one deliberate(), s | {deliberate_s:.2} | — | |");
        }
    }
    println!();
    println!("| issue #13 profile | cybergov | llama.cpp | ratio (ours / theirs) |");
    println!("|---|---:|---:|---:|");
    for (i, n) in DECODE_CONTEXTS.iter().enumerate() {
        let theirs = (!their_decode[i].is_empty()).then(|| median(their_decode[i].clone()));
        row(
            &format!("decode at {n} context, tok/s (median)"),
            median(our_decode[i].clone()),
            theirs,
        );
    }
    // Issue #30: the bytes a decode step reads at each context, times the rate, against the
    // machine's own read bandwidth with the same threads.
    let machine = bandwidth::read_gbps(threads, 5);
    for (i, n) in DECODE_CONTEXTS.iter().enumerate() {
        let bytes = model.with_engine(|m| m.bytes_per_step(*n)) as f64;
        let gbps = |tps: f64| bytes * tps / 1e9;
        let ours = gbps(median(our_decode[i].clone()));
        println!(
            "| decode at {n} context, GB/s read ({:.1} MB a step; machine: {machine:.1} GB/s) | {ours:.2} | {} | {:.2}× of the machine |",
            bytes / 1e6,
            if their_decode[i].is_empty() {
                "n/a".into()
            } else {
                format!("{:.2}", gbps(median(their_decode[i].clone())))
            },
            ours / machine
        );
    }
    let theirs = (!their_jury.is_empty()).then(|| median(their_jury.clone()));
    row(
        "three jurors end to end, s, llama.cpp naive (median; ratio < 1 is faster)",
        median(our_jury.clone()),
        theirs,
    );
    row(
        "three jurors end to end, s, llama.cpp at its best (median; ratio < 1 is faster)",
        median(our_jury.clone()),
        (!their_best.is_empty()).then(|| median(their_best.clone())),
    );
    println!(
        "| three jurors (decoded together) / one deliberate() | {:.2}× | | |",
        median(our_jury.clone()) / deliberate_s
    );
    // The peer's figure is 0 when it did not run: then there is nothing to divide by.
    row(
        "peak RSS incl. the profile, MiB",
        mib(peak),
        (peer_plan_rss > 0).then(|| mib(peer_plan_rss)),
    );
    let stats = model.with_engine(|m| m.stats());
    println!(
        "engine prefix reuse over the whole benchmark: {} positions computed, {} reused",
        stats.computed, stats.reused
    );
    println!();
    println!(
        "candle RSS after load {:.1} MiB; peak (VmHWM) after load + all rounds + deliberate {:.1} MiB, after the profile too {:.1} MiB",
        mib(rss_after_load),
        mib(peak_juror),
        mib(peak)
    );
    Ok(())
}
