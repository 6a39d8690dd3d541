//! The demo's chain: chopsticks on our governance devnet, when chopsticks is installed.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The checkout the binary was built from: where `tests/node` and `tests/devnet` are.
fn checkout() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running chopsticks; stopped when dropped.
pub struct Devnet {
    /// `ws://127.0.0.1:<port>`.
    pub ws_url: String,
    _child: tokio::process::Child,
}

impl Devnet {
    /// Starts chopsticks on `tests/devnet/spec.json` if both are there; `None` if chopsticks is
    /// not installed. Its log goes to `dir/chopsticks.log`.
    pub async fn start_if_installed(dir: &Path) -> anyhow::Result<Option<Self>> {
        let bin = checkout().join("tests/node/node_modules/.bin/chopsticks");
        let spec = checkout().join("tests/devnet/spec.json");
        if !bin.exists() || !spec.exists() {
            return Ok(None);
        }
        // Ask the OS for a free port, then hand it to chopsticks.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.join("chopsticks.log"))?;
        let child = tokio::process::Command::new(&bin)
            .arg("--genesis")
            .arg(&spec)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--build-block-mode", "Instant"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "chopsticks did not listen on port {port} within 60 s (see {})",
                dir.join("chopsticks.log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Some(Self {
            ws_url: format!("ws://127.0.0.1:{port}"),
            _child: child,
        }))
    }
}

/// The bundled job graph without its vote stage: infer hands over to comment directly.
pub fn graph_without_vote() -> anyhow::Result<String> {
    let mut graph: toml::Table = crate::pipeline::graph::BUNDLED.parse()?;
    let stages = graph
        .get_mut("stages")
        .and_then(toml::Value::as_table_mut)
        .context("the bundled graph has [stages]")?;
    let vote = stages
        .remove("vote")
        .context("the bundled graph has a vote stage")?;
    let after_vote = vote.get("next").cloned().context("vote has next")?;
    stages
        .get_mut("infer")
        .and_then(toml::Value::as_table_mut)
        .context("the bundled graph has an infer stage")?
        .insert("next".into(), after_vote);
    Ok(toml::to_string(&graph)?)
}
