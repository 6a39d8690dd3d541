//! Times a prefill and then decode steps of the engine alone, for profilers (`perf record`):
//! `cargo run --release -p cybergov-engine --example decode -- MODEL.gguf CONTEXT STEPS [THREADS]
//! [ROUNDS] [PREFILL_ROUNDS]`. The context is token ids cycled to length; the steps are greedy;
//! each round rewinds to the context and decodes again, and the best and the median round are
//! printed (on a shared machine the best round is the one least disturbed by other tenants), with
//! a hash of the logits' bits after the context (two builds with the same arithmetic agree).

use candle_core::quantized::gguf_file;
use cybergov_engine::transformer::{Config, Transformer, Weights};
use std::sync::Arc;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let (path, context, steps) = (
        &args[1],
        args[2].parse::<usize>()?,
        args[3].parse::<usize>()?,
    );
    let threads = args.get(4).map_or(Ok(2), |t| t.parse::<usize>())?;
    let rounds = args.get(5).map_or(Ok(5), |t| t.parse::<usize>())?;
    let prefill_rounds = args.get(6).map_or(Ok(1), |t| t.parse::<usize>())?.max(1);
    let mut f = std::fs::File::open(path)?;
    let ct = gguf_file::Content::read(&mut f)?;
    let cfg = Config::from_gguf(&ct, context + steps + 8)?;
    let w = Arc::new(Weights::load(&ct, &mut f, cfg)?);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    pool.install(|| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut m = Transformer::new(w);
        // Within the vocabulary of any model (a random-weight model may have a small one).
        let vocab = m.config().vocab as u32;
        let context_ids: Vec<u32> = (0..context as u32)
            .map(|i| (100 + i % 5000) % vocab)
            .collect();
        // The prefill of the context, timed too: it is the whole of a juror's prompt work.
        // PREFILL_ROUNDS > 1 repeats it from an empty cache (best and median printed).
        let mut first = Vec::new();
        let mut prefills = Vec::new();
        for _ in 0..prefill_rounds {
            m.rewind(0);
            let t = Instant::now();
            first = m.logits(&context_ids, 1)?.pop().ok_or("no logits")?;
            prefills.push(context as f64 / t.elapsed().as_secs_f64());
        }
        prefills.sort_by(f64::total_cmp);
        // The bits of the last position's logits, to compare two builds' arithmetic.
        let bits = first.iter().fold(0u64, |h, v| {
            (h ^ u64::from(v.to_bits())).wrapping_mul(0x100_0000_01b3)
        });
        println!("logits after the context: {bits:016x}");
        println!(
            "prefill of {context} tokens, {prefill_rounds} rounds: best {:.1} tok/s, median {:.1}",
            prefills[prefills.len() - 1],
            prefills[prefills.len() / 2]
        );
        let mut rates = Vec::new();
        for _ in 0..rounds {
            let (mut ids, mut logits) = (context_ids.clone(), first.clone());
            m.rewind(context);
            let t = Instant::now();
            for _ in 0..steps {
                let next = logits
                    .iter()
                    .enumerate()
                    .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                    .0;
                ids.push(next as u32);
                logits = m.logits(&ids, 1)?.pop().ok_or("no logits")?;
            }
            rates.push(steps as f64 / t.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "{steps} steps at {context} context, {rounds} rounds: best {:.2} tok/s, median {:.2}",
            rates[rates.len() - 1],
            rates[rates.len() / 2]
        );
        Ok(())
    })
}
