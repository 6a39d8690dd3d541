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

/// The body of `resp`, read chunk by chunk; `None` as soon as it passes `limit` bytes (or
/// announces more), so that a hostile or broken server cannot make us hold more than that.
pub async fn read_capped(
    mut resp: reqwest::Response,
    limit: u64,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}
