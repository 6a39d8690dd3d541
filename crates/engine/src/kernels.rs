//! The engine's compute kernels: deterministic by construction (see each module), on the
//! current rayon pool.

pub mod attention;
pub mod ops;
pub mod q8;
