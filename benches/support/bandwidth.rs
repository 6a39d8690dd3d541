//! The machine's memory read bandwidth, measured the way a decode step reads its weights: a
//! STREAM-like sum over an array far larger than the caches, split over the benchmark's threads
//! (issue #30 compares the engine's achieved bandwidth with it). Shared by the benchmarks
//! (`#[path]`-included).

use std::time::Instant;

/// Bytes read per pass: 1 GiB, far past any cache here.
const BYTES: usize = 1 << 30;

/// Best-of-`passes` read bandwidth in GB/s with `threads` threads, each summing its own
/// contiguous share (eight independent accumulators, so the compiler vectorises the loop).
pub fn read_gbps(threads: usize, passes: usize) -> f64 {
    let data: Vec<u64> = (0..BYTES / 8).map(|i| i as u64).collect();
    let share = data.len().div_ceil(threads.max(1));
    let mut best = f64::MAX;
    let mut check = 0u64;
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        let sums: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = data
                .chunks(share)
                .map(|part| s.spawn(move || sum(part)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        best = best.min(t.elapsed().as_secs_f64());
        check = check.wrapping_add(sums.iter().fold(0, |a, b| a.wrapping_add(*b)));
    }
    // Using the sums keeps the reads from being optimised away.
    std::hint::black_box(check);
    BYTES as f64 / best / 1e9
}

fn sum(part: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for c in part.chunks_exact(8) {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*v);
        }
    }
    acc.iter().fold(0, |a, b| a.wrapping_add(*b))
}
