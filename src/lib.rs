//! cybergov: verifiable AI governance for Polkadot, Kusama and Paseo OpenGov.
//!
//! Three local language models (the MAGI jurors balthazar, melchior and caspar) read a
//! referendum and vote; every artefact of that decision is stored, hashed into a [`manifest`],
//! and the manifest's hash is put on chain in the same transaction as the vote, so anyone can
//! check that the vote was cast on exactly these inputs — and, because the jurors are local,
//! open-weight and greedy, re-run them and get the same bytes.
//!
//! Module map (one concern each):
//! - [`config`], [`secret`]: configuration from file + environment; secrets kept apart.
//! - [`network`], [`account`]: networks as data; accounts as raw keys rendered per network.
//! - [`store`]: the append-only artefact store (local folder or S3) and its key layout.
//! - [`manifest`]: the manifest, its canonical bytes, and verification against a store.
//! - [`magi`]: the jurors, the model interface they and augmentation share, and the tally.
//! - [`subsquare`], [`proposal`]: referenda in from Subsquare (with retries), parsed strictly.
//! - [`augment`]: cleaned, fitted, quoted juror input (`content.md`) and its record.
//! - [`comment`]: the SIMA-signed rationale comment, posted once.
//! - [`chain`]: the vote on chain: proxied ConvictionVoting vote + manifest remark, receipts.
//! - [`hash`]: SHA-256 as the project spells it.
//! - [`runner`], [`github`]: where the infer stage runs (in-process or GitHub Actions).
//! - [`verify`]: public verification over HTTP, the chain check via Sidecar, re-execution.
//! - [`cli`], [`commands`]: the command line and what each command does.

pub mod account;
pub mod augment;
pub mod chain;
pub mod cli;
pub mod commands;
pub mod comment;
pub mod config;
pub mod github;
pub mod hash;
pub mod magi;
pub mod manifest;
pub mod network;
pub mod proposal;
pub mod runner;
pub mod secret;
pub mod stages;
pub mod store;
pub mod subsquare;
pub mod verify;
