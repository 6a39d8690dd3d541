//! How a matrix product is split over threads, shared by every weight format: weight rows in
//! chunks of whole register tiles, each chunk on one rayon task, and every output element
//! computed whole by the task that owns its row. Which thread computes an element therefore
//! never changes its arithmetic, and neither does how many tokens are multiplied together.

use rayon::prelude::*;

/// Rows per register tile.
pub const TILE: usize = 4;

/// The output of [`drive`], written from several threads at disjoint indices (each chunk of
/// weight rows owns its rows' elements of every token; the output is token-major, so no chunk
/// owns a contiguous slice that safe code could hand out).
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    len: usize,
}
// SAFETY: `Out` is only a pointer and a length; what makes sharing it sound is `write`'s
// contract (one writer per index, while the borrowed output lives).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    fn new(out: &mut [f32]) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            len: out.len(),
        }
    }

    /// Writes element `i`.
    ///
    /// # Safety
    /// `i < len`; no other thread reads or writes element `i` during the call; the slice
    /// `Out::new` was made from is still mutably borrowed by the caller (so it is alive and
    /// nothing else reads it).
    unsafe fn write(self, i: usize, v: f32) {
        assert!(i < self.len, "element {i} of {}", self.len);
        // SAFETY: the caller's contract.
        unsafe { *self.ptr.add(i) = v };
    }
}

/// Where a product's `rows` outputs of token `t` go: `out[t * stride + offset + r]` (a part
/// of a stacked projection writes its own columns of the stack's output).
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// Output values per token.
    pub stride: usize,
    /// Where this product's first row goes.
    pub offset: usize,
}

/// Tokens per group: a kernel that takes several tokens at once reuses each weight block it
/// loads (and what it derives from it) for all of them.
pub const TOKENS: usize = 4;

/// A group of tokens' outputs of one tile: `[token][row]`.
pub type Group = [[f32; TILE]; TOKENS];

/// The `tile` argument of [`drive`] for a format whose kernel takes one token at a time.
pub fn per_token<F>(tile: F) -> impl Fn(usize, usize, usize, &mut Group) + Sync
where
    F: Fn(usize, usize) -> [f32; TILE] + Sync,
{
    move |r, t, k, out| {
        for (j, o) in out.iter_mut().take(k).enumerate() {
            *o = tile(r, t + j);
        }
    }
}

/// One chunk of a product's output: rows `start..end` of each of `n` tokens, written by the one
/// task that owns those rows.
pub struct Rows {
    dst: Out,
    at: Placement,
    n: usize,
    /// The chunk's first row.
    pub start: usize,
    /// One past its last row.
    pub end: usize,
}

impl Rows {
    /// Writes rows `r..r + R` of token `t` (one bounds check for the tile, one copy: a token's
    /// rows are contiguous in the output).
    #[inline(always)]
    pub fn set_tile<const R: usize>(&self, t: usize, r: usize, values: &[f32; R]) {
        assert!(t < self.n && r >= self.start && r + R <= self.end);
        let i = t * self.at.stride + self.at.offset + r;
        assert!(i + R <= self.dst.len);
        // SAFETY: rows r..r + R belong to this chunk alone and t < n, so the R elements from
        // i are inside `out` (checked) and written by this task only; `out` stays borrowed
        // until every task has finished.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), self.dst.ptr.add(i), R) };
    }

    /// Writes row `r` of token `t`.
    #[inline(always)]
    pub fn set(&self, t: usize, r: usize, v: f32) {
        assert!(t < self.n && r >= self.start && r < self.end);
        // SAFETY: row r belongs to this chunk alone and t < n, so the index is inside `out`
        // (n · stride long, checked by `spans`) and written by this task only; `out` stays
        // borrowed until every task has finished.
        unsafe { self.dst.write(t * self.at.stride + self.at.offset + r, v) };
    }
}

/// Splits `rows` weight rows into chunks of whole tiles, enough to balance the current pool,
/// and runs `chunk` on each in parallel with its part of `out` (`n` tokens placed `at`).
pub fn spans<F>(rows: usize, n: usize, at: Placement, out: &mut [f32], chunk: F)
where
    F: Fn(&Rows) + Sync,
{
    assert!(at.offset + rows <= at.stride && out.len() == n * at.stride);
    let threads = rayon::current_num_threads().max(1);
    // Enough chunks to balance, each a whole number of tiles.
    let per = rows.div_ceil(threads * 8).div_ceil(TILE).max(1) * TILE;
    let dst = Out::new(out);
    (0..rows.div_ceil(per)).into_par_iter().for_each(|c| {
        chunk(&Rows {
            dst,
            at,
            n,
            start: c * per,
            end: ((c + 1) * per).min(rows),
        })
    });
}

/// Fills `out` for `rows` weight rows and `n` tokens: `tile(r, t, k, group)` fills
/// `group[..k]` with rows `r..r + TILE` of tokens `t..t + k` (`k ≤ TOKENS`), `one(r, t)` gives
/// row `r` of token `t` alone (the remainder of a chunk). Both must compute each element with
/// the same arithmetic, whatever `k`.
pub fn drive<F, G>(rows: usize, n: usize, at: Placement, out: &mut [f32], tile: F, one: G)
where
    F: Fn(usize, usize, usize, &mut Group) + Sync,
    G: Fn(usize, usize) -> f32 + Sync,
{
    spans(rows, n, at, out, |span| {
        let mut r = span.start;
        while r < span.end {
            if r + TILE <= span.end {
                let mut group = [[0f32; TILE]; TOKENS];
                let mut t = 0;
                while t < n {
                    let k = (n - t).min(TOKENS);
                    tile(r, t, k, &mut group);
                    for (j, values) in group.iter().take(k).enumerate() {
                        for (i, &v) in values.iter().enumerate() {
                            span.set(t + j, r + i, v);
                        }
                    }
                    t += k;
                }
                r += TILE;
            } else {
                for t in 0..n {
                    span.set(t, r, one(r, t));
                }
                r += 1;
            }
        }
    });
}

/// Rows `first..first + N` of `len` values each of the row-major `v`, sliced in a loop that
/// inlines into a kernel: per-row closures through `array::from_fn` were left as calls and
/// took 8 % of a decode step.
#[inline(always)]
pub fn rows_of<T, const N: usize>(v: &[T], first: usize, len: usize) -> [&[T]; N] {
    let all = &v[first * len..(first + N) * len];
    let mut out = [&all[..0]; N];
    for (i, row) in out.iter_mut().enumerate() {
        *row = &all[i * len..(i + 1) * len];
    }
    out
}
