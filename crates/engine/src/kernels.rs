//! The engine's compute kernels: deterministic by construction (see each module), on the
//! current rayon pool.

pub mod acts;
pub mod attention;
pub mod half;
pub mod kquant;
pub mod matrix;
pub mod ops;
pub mod q6k;
pub mod q8;
pub mod tiles;
