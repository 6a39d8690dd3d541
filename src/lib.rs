//! cybergov: verifiable AI governance for Polkadot, Kusama and Paseo OpenGov.
//!
//! Three local language models (the MAGI jurors balthazar, melchior and caspar) read a
//! referendum and vote; every artefact of that decision is stored, hashed into a [`manifest`],
//! and the manifest's hash is put on chain in the same transaction as the vote, so anyone can
//! check that the vote was cast on exactly these inputs — and, because the jurors are local,
//! open-weight and greedy, re-run them and get the same bytes.
//!
//! The modules form layers that only look down; `docs/ARCHITECTURE.md` draws them and says
//! where to change what, and `tests/it/layering.rs` keeps them so.

pub mod account;
pub mod arena;
pub mod chain;
pub mod cli;
pub mod commands;
pub mod config;
pub mod env;
pub mod github;
pub mod hash;
pub mod http;
pub mod magi;
pub mod manifest;
pub mod metrics;
pub mod network;
pub mod pipeline;
pub mod progress;
pub mod proposal;
pub mod records;
pub mod retry;
pub mod secret;
pub mod stages;
pub mod store;
pub mod subsquare;
pub mod verify;
pub mod web;
pub mod wiring;
