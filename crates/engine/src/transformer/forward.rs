//! One forward pass over a batch of segments: new tokens of one or more sequences, each at its
//! own positions and with its own cache, computed as one set of rows.
//!
//! Every matrix product runs over all rows of all segments together, so a weight block is read
//! once for the whole batch (three jurors decoding one token each read the weights once, not
//! three times). What depends on a sequence — its positions, its cache, its attention — is
//! done per segment. Because every kernel computes a row the same way whatever rows surround
//! it, a sequence's values do not depend on what it was batched with.

use super::{Activation, Transformer, attention, ops};
use crate::kernels::attention::Shape;
use crate::kernels::half::f32_to_f16;
use rayon::prelude::*;

/// New tokens of one sequence, appended at positions `p0..p0 + ids.len()`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Segment<'a> {
    /// Which sequence (its cache).
    pub seq: usize,
    /// The first new position.
    pub p0: usize,
    /// The new tokens.
    pub ids: &'a [u32],
}

impl Transformer {
    /// Runs `segs`, appending each to its sequence's cache (not to its token list: the caller
    /// does that once the pass succeeded); leaves the final hidden states of all rows, segment
    /// after segment, in `scratch.x`.
    pub(super) fn forward(&mut self, segs: &[Segment<'_>]) -> Result<(), super::EngineError> {
        let w = self.w.clone();
        let c = &w.cfg;
        let n: usize = segs.iter().map(|s| s.ids.len()).sum();
        let hd = c.head_dim;
        let (hidden, qd, kvd, ff) = (c.hidden, c.q_dim(), c.kv_dim(), c.ff);
        let qkvd = qd + 2 * kvd;
        // The sequence and the position of every row.
        let rows: Vec<(usize, usize)> = segs
            .iter()
            .flat_map(|s| (0..s.ids.len()).map(move |t| (s.seq, s.p0 + t)))
            .collect();
        let s = &mut self.scratch;
        s.x.resize(n * hidden, 0.0);
        for (t, &id) in segs.iter().flat_map(|s| s.ids).enumerate() {
            if id as usize >= c.vocab {
                return Err(super::EngineError::Format(format!(
                    "token {id} outside the vocabulary"
                )));
            }
            let row = &mut s.x[t * hidden..(t + 1) * hidden];
            w.embed.dequantize_row(id as usize, row);
            if c.embed_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= c.embed_scale);
            }
        }
        s.h.resize(n * hidden, 0.0);
        s.qkv.resize(n * qkvd, 0.0);
        s.q.resize(n * qd, 0.0);
        s.att.resize(n * qd, 0.0);
        s.o.resize(n * hidden, 0.0);
        s.gu.resize(n * 2 * ff, 0.0);
        s.act.resize(n * ff, 0.0);
        let half = hd / 2;
        // (cos, sin) of every row's position, for the global and for the local layers.
        let tables = |freqs: &[f64]| {
            let (mut cos, mut sin) = (vec![0f32; n * half], vec![0f32; n * half]);
            for (t, &(_, p)) in rows.iter().enumerate() {
                let range = t * half..(t + 1) * half;
                ops::rope_table(freqs, p, &mut cos[range.clone()], &mut sin[range]);
            }
            (cos, sin)
        };
        let global = tables(&w.freqs);
        let mut normed = vec![0f32; hd];
        let local = w.freqs_local.as_deref().map(tables);
        let attend = self.attention;
        for (li, l) in w.layers.iter().enumerate() {
            let (cos, sin) = match (&local, l.local) {
                (Some(t), true) => t,
                _ => &global,
            };
            let shape = Shape {
                heads: c.heads,
                kv_heads: c.kv_heads,
                head_dim: hd,
                window: c.sliding.filter(|_| l.local).map(|(window, _)| window),
                softcap: c.attn_softcap,
            };
            // Attention block.
            norm_rows(&s.x, &l.attn_norm, c.eps, hidden, &mut s.h);
            s.acts.quantize(&s.h, hidden);
            l.wqkv.matmul(&s.acts, &mut s.qkv);
            for (t, &(seq, p)) in rows.iter().enumerate() {
                let row = &mut s.qkv[t * qkvd..(t + 1) * qkvd];
                if let Some(b) = &l.bqkv {
                    for (x, b) in row.iter_mut().zip(b) {
                        *x += b;
                    }
                }
                let (cs, sn) = (
                    &cos[t * half..(t + 1) * half],
                    &sin[t * half..(t + 1) * half],
                );
                if let Some((qn, kn)) = &l.qk_norm {
                    for (i, head) in row[..qd + kvd].chunks_exact_mut(hd).enumerate() {
                        let w = if i < c.heads { qn } else { kn };
                        ops::rms_norm(head, w, c.eps, &mut normed);
                        head.copy_from_slice(&normed);
                    }
                }
                for head in row[..qd + kvd].chunks_exact_mut(hd) {
                    ops::rope(head, cs, sn, c.rope_style);
                }
                s.q[t * qd..(t + 1) * qd].copy_from_slice(&row[..qd]);
                let cache = &mut self.seqs[seq].cache;
                let cap = cache.cap;
                let kc = &mut cache.k_t[li];
                for (j, &x) in row[qd..qd + kvd].iter().enumerate() {
                    // Element j is dimension j % hd of KV head j / hd.
                    kc[attention::key_index(j / hd, j % hd, p, hd, cap)] = f32_to_f16(x);
                }
                for (g, v) in row[qd + kvd..].chunks_exact(hd).enumerate() {
                    let at = attention::value_index(g, 0, p, hd, cap);
                    for (c, &x) in cache.v[li][at..at + hd].iter_mut().zip(v) {
                        *c = f32_to_f16(x);
                    }
                }
            }
            // Each segment attends its own cache; the segments run side by side.
            let seqs = &self.seqs;
            let outs = split_rows(&mut s.att, segs.iter().map(|g| g.ids.len() * qd));
            let mut start = 0;
            let parts: Vec<_> = segs
                .iter()
                .zip(outs)
                .map(|(g, out)| {
                    let q = &s.q[start..start + out.len()];
                    start += out.len();
                    (g, q, out)
                })
                .collect();
            parts.into_par_iter().for_each(|(g, q, out)| {
                let cache = &seqs[g.seq].cache;
                let kv = attention::Kv {
                    k_t: &cache.k_t[li],
                    v: &cache.v[li],
                    cap: cache.cap,
                };
                attend(q, kv, shape, g.p0, out);
            });
            s.acts.quantize(&s.att, qd);
            l.wo.matmul(&s.acts, &mut s.o);
            add_normed(
                &mut s.x,
                &s.o,
                l.post_norms.as_ref().map(|n| n.0.as_slice()),
                c.eps,
                &mut s.h,
            );
            // Feed-forward block.
            norm_rows(&s.x, &l.ffn_norm, c.eps, hidden, &mut s.h);
            s.acts.quantize(&s.h, hidden);
            l.wgu.matmul(&s.acts, &mut s.gu);
            s.act
                .par_chunks_mut(ff)
                .zip(s.gu.par_chunks(2 * ff))
                .for_each(|(a, gu)| match c.activation {
                    Activation::Silu => ops::silu_mul(&gu[..ff], &gu[ff..], a),
                    Activation::GeluTanh => ops::gelu_tanh_mul(&gu[..ff], &gu[ff..], a),
                });
            s.acts.quantize(&s.act, ff);
            l.wdown.matmul(&s.acts, &mut s.o);
            add_normed(
                &mut s.x,
                &s.o,
                l.post_norms.as_ref().map(|n| n.1.as_slice()),
                c.eps,
                &mut s.h,
            );
        }
        Ok(())
    }

    /// Logits of the hidden states in `scratch.x` at `rows`, in that order: one product over
    /// the vocabulary for all of them.
    pub(super) fn head(&mut self, rows: &[usize]) -> Vec<Vec<f32>> {
        let w = &self.w;
        let hidden = w.cfg.hidden;
        let s = &mut self.scratch;
        let mut h = vec![0f32; rows.len() * hidden];
        for (o, &r) in h.chunks_exact_mut(hidden).zip(rows) {
            ops::rms_norm(
                &s.x[r * hidden..(r + 1) * hidden],
                &w.output_norm,
                w.cfg.eps,
                o,
            );
        }
        s.acts.quantize(&h, hidden);
        let out_w = w.output.as_ref().unwrap_or(&w.embed);
        let vocab = out_w.rows();
        let mut logits = vec![0f32; rows.len() * vocab];
        out_w.matmul(&s.acts, &mut logits);
        if let Some(cap) = w.cfg.final_softcap {
            ops::soft_cap(&mut logits, cap);
        }
        logits.chunks_exact(vocab).map(<[f32]>::to_vec).collect()
    }
}

/// `buf` cut into consecutive pieces of `lens`.
fn split_rows(mut buf: &mut [f32], lens: impl Iterator<Item = usize>) -> Vec<&mut [f32]> {
    let mut out = Vec::new();
    for len in lens {
        let (a, b) = std::mem::take(&mut buf).split_at_mut(len);
        out.push(a);
        buf = b;
    }
    out
}

fn norm_rows(x: &[f32], w: &[f32], eps: f32, dim: usize, out: &mut [f32]) {
    for (xr, o) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        ops::rms_norm(xr, w, eps, o);
    }
}

/// `x += y`, with `y` first RMS-normalised by `norm` when there is one (Gemma's post-norms),
/// through `scratch` (a free buffer as long as `x`).
fn add_normed(x: &mut [f32], y: &[f32], norm: Option<&[f32]>, eps: f32, scratch: &mut [f32]) {
    match norm {
        Some(w) => {
            norm_rows(y, w, eps, w.len(), scratch);
            add(x, scratch);
        }
        None => add(x, y),
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
