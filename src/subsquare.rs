//! Subsquare: the referendum texts cybergov reads and the comments it writes (docs/DESIGN.md §6).
//!
//! - [`client`]: HTTP with timeouts, retries (backoff + jitter on 429, 5xx and timeouts) and a
//!   configurable User-Agent; referendum detail and list.
//! - [`comments`]: reading a referendum's comments and posting one.
//! - [`sima`]: the SIMA comment entity, and signing it with the proxy's sr25519 key.

pub mod client;
pub mod comments;
pub mod sima;
pub mod standin;

pub use client::{
    ReferendaPage, ReferendumSummary, SubsquareClient, SubsquareConfig, SubsquareError,
};
