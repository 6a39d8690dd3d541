//! HTTP clients: every `reqwest` client cybergov builds starts here.
//!
//! The whole binary has one TLS crypto back-end, ring (see `Cargo.toml`: aws-lc-rs is the
//! slowest C build of a cold build). reqwest is built without a provider of its own, so the
//! process-wide default must be installed before its first client; doing it here, where every
//! client is made, means no caller can forget it.

/// A `reqwest` client builder with the process's TLS provider installed.
pub fn client_builder() -> reqwest::ClientBuilder {
    // `Err` only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
