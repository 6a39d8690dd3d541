//! The integration tests, as one binary: every module links the crate (candle, subxt, the AWS
//! SDK, sqlx) once instead of once per file. Shared helpers live in [`common`].

mod common;

mod architectures;
mod arena;
mod arena_session;
mod augment;
mod batching;
mod browser;
mod chain_devnet;
mod chain_offline;
mod cli;
mod comment;
mod config;
mod engine;
mod faults;
mod gemma;
mod github;
mod hub;
mod kquant;
mod layering;
mod leaks;
mod ledger;
mod magi;
mod manifest;
mod openai;
mod pipeline;
mod pipeline_crash;
mod serve_openai;
mod service;
mod sidecar;
mod smollm2;
mod store;
mod subsquare;
mod tally;
mod verify;
mod verify_sh;
mod web;
mod workflow;
