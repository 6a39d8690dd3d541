//! The KV cache of one sequence, and copying a cached prefix from one sequence to another.

use super::attention;

/// Per-layer keys (in tiles of eight positions, see [`attention::key_index`]) and values
/// (head-major, see [`attention::value_index`]), in half precision, sized for the whole
/// context up front. The buffers are zero-allocated, so the memory becomes resident only as
/// positions are written.
pub(super) struct KvCache {
    pub k_t: Vec<Vec<u16>>,
    pub v: Vec<Vec<u16>>,
    /// Positions per key row: the context rounded up to 8 (attention reads keys 8 at a time).
    pub cap: usize,
}

impl KvCache {
    pub fn new(layers: usize, kv_dim: usize, context: usize) -> Self {
        let cap = context.div_ceil(8) * 8;
        let n = cap * kv_dim;
        Self {
            k_t: (0..layers).map(|_| vec![0u16; n]).collect(),
            v: (0..layers).map(|_| vec![0u16; n]).collect(),
            cap,
        }
    }

    /// Copies the keys and values of positions `0..len` from `from` (a cache of the same
    /// shape). Whole tiles of eight are copied: positions past `len` in the last one are
    /// overwritten before anything reads them, as in any cache.
    pub fn copy_prefix(&mut self, from: &KvCache, len: usize, kv_heads: usize, head_dim: usize) {
        let tiles = len.div_ceil(8) * 8 * head_dim;
        for (to, from) in self.k_t.iter_mut().zip(&from.k_t) {
            for g in 0..kv_heads {
                let start = attention::key_index(g, 0, 0, head_dim, self.cap);
                to[start..start + tiles].copy_from_slice(&from[start..start + tiles]);
            }
        }
        for (to, from) in self.v.iter_mut().zip(&from.v) {
            for g in 0..kv_heads {
                let start = attention::value_index(g, 0, 0, head_dim, self.cap);
                let end = start + len * head_dim;
                to[start..end].copy_from_slice(&from[start..end]);
            }
        }
    }
}

/// One sequence: its cache and the tokens whose keys and values it holds, in order.
pub(super) struct Sequence {
    pub cache: KvCache,
    pub tokens: Vec<u32>,
}
