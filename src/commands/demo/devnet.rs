//! The demo's chain: chopsticks on our governance devnet, installed on first use when node and
//! npm are there.

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

/// The chopsticks version the tests pin (tests/node/package-lock.json); the demo installs the
/// same one.
pub const CHOPSTICKS_VERSION: &str = "1.5.1";

/// The genesis hash chopsticks reports for a chain started from a spec: the devnet's own,
/// declared as the demo network's `genesis_hash`.
pub const DEVNET_GENESIS: &str =
    "0x4545454545454545454545454545454545454545454545454545454545454545";

/// Why the demo has no chain: what to install, in words a newcomer can act on.
pub const NO_NODE: &str = "node and npm are not installed, so the demo leaves out the vote stage; install Node.js 20 or newer with npm (Debian/Ubuntu: `sudo apt-get install nodejs npm`; macOS: `brew install node`) and run the demo again: it then installs chopsticks into its cache and casts the vote on a local devnet";

/// Where chopsticks is, or how it can be had.
pub enum Chopsticks {
    /// Installed: the `chopsticks` script.
    At(PathBuf),
    /// Not installed and cannot be: why, in words.
    Unavailable(String),
}

/// Finds chopsticks: the checkout's test tools (`npm ci --prefix tests/node`), else the demo's
/// own copy in the cache, else installs that copy with npm (pinned by the checkout's
/// package-lock.json, integrity-checked by `npm ci`), saying so, since it takes a while.
pub async fn chopsticks(cache: &Path, log: &Path) -> anyhow::Result<Chopsticks> {
    let found = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // chopsticks is a node program: without node no copy of it runs.
    if !found("node") {
        return Ok(Chopsticks::Unavailable(NO_NODE.into()));
    }
    let in_checkout = checkout().join("tests/node/node_modules/.bin/chopsticks");
    if in_checkout.exists() {
        return Ok(Chopsticks::At(in_checkout));
    }
    let home = cache.join(format!("chopsticks-{CHOPSTICKS_VERSION}"));
    let cached = home.join("node_modules/.bin/chopsticks");
    if cached.exists() {
        return Ok(Chopsticks::At(cached));
    }
    if !found("npm") {
        return Ok(Chopsticks::Unavailable(NO_NODE.into()));
    }
    println!(
        "  chain      installing chopsticks {CHOPSTICKS_VERSION} into {} (first run only; a few minutes; log: {})",
        home.display(),
        log.display()
    );
    std::fs::create_dir_all(&home)?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(checkout().join("tests/node").join(file), home.join(file))
            .with_context(|| format!("copying tests/node/{file}"))?;
    }
    let out = std::fs::File::create(log)?;
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&home)
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .await
        .context("running npm ci")?;
    if !status.success() || !cached.exists() {
        return Ok(Chopsticks::Unavailable(format!(
            "installing chopsticks with npm failed ({status}; see {}), so the demo leaves out the vote stage",
            log.display()
        )));
    }
    println!("  chain      chopsticks {CHOPSTICKS_VERSION} installed");
    Ok(Chopsticks::At(cached))
}

impl Devnet {
    /// Starts chopsticks (`bin`) on `tests/devnet/spec.json`. Its log goes to
    /// `dir/chopsticks.log`.
    pub async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let spec = checkout().join("tests/devnet/spec.json");
        anyhow::ensure!(
            spec.exists(),
            "{} is missing: the devnet's chain spec comes with the checkout",
            spec.display()
        );
        // Ask the OS for a free port, then hand it to chopsticks.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.join("chopsticks.log"))?;
        let child = tokio::process::Command::new(bin)
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
        Ok(Self {
            ws_url: format!("ws://127.0.0.1:{port}"),
            _child: child,
        })
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
