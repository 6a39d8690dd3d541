//! The pipeline's stages as plain library functions over the store: each reads its inputs from
//! the store, writes its outputs there, and is a no-op when its outputs already exist. The job
//! graph schedules them; the CLI can call each one by hand.

pub mod augment;
pub mod comment;
pub mod dispatch;
pub mod infer;
pub mod provenance;
pub mod scrape;
pub mod vote;
