//! The Subsquare stand-in (`cybergov::subsquare::standin`) plus the tests' fixtures.

pub use cybergov::subsquare::standin::*;

/// Starts a stand-in on an ephemeral loopback port; it lives as long as the runtime.
pub async fn spawn_subsquare() -> SubsquareServer {
    spawn().await.expect("start the Subsquare stand-in")
}

/// A fixture served as referendum `index`: its `referendumIndex` says so (the client refuses an
/// answer about another referendum).
pub fn fixture_as(name: &str, index: u32) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
    v["referendumIndex"] = index.into();
    serde_json::to_vec(&v).unwrap()
}

/// Reads a fixture from `tests/fixtures/subsquare/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/subsquare")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}
