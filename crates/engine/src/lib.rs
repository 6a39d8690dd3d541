//! cybergov's inference engine: decoder-only transformers from GGUF files on CPU, with a
//! fixed arithmetic for every value it computes (see [`kernels`]), so outputs are the same
//! bits whatever the thread count and however tokens are batched — which is what lets the
//! [`transformer`]'s KV cache be reused across requests that share a prefix.

pub mod kernels;
pub mod transformer;
