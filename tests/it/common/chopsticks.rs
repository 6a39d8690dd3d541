//! Chopsticks running the project's governance devnet (`tests/devnet/spec.json`) on loopback.
//!
//! Each [`Chopsticks`] is one `chopsticks` process on a free port, killed when dropped. At most
//! [`MAX_INSTANCES`] run at once per test binary (each takes ≈250 MB), so tests that run in
//! parallel queue for a slot.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The genesis hash chopsticks reports for a chain started from a spec (`--genesis`): a
/// devnet's own, which configurations pointed at it declare as `genesis_hash`.
pub const DEVNET_GENESIS: &str =
    "0x4545454545454545454545454545454545454545454545454545454545454545";

/// Concurrent chopsticks processes per test binary.
pub const MAX_INSTANCES: usize = 2;

/// A running chopsticks.
pub struct Chopsticks {
    child: tokio::process::Child,
    /// `ws://127.0.0.1:<port>`.
    pub ws_url: String,
    /// `http://127.0.0.1:<port>` (chopsticks answers JSON-RPC over HTTP on the same port).
    pub http_url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
    _permit: OwnedSemaphorePermit,
}

fn slots() -> std::sync::Arc<Semaphore> {
    static SLOTS: OnceLock<std::sync::Arc<Semaphore>> = OnceLock::new();
    SLOTS
        .get_or_init(|| std::sync::Arc::new(Semaphore::new(MAX_INSTANCES)))
        .clone()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Chopsticks {
    /// Starts chopsticks on the devnet spec and waits until it answers JSON-RPC. Panics with
    /// a clear message when node, chopsticks or the spec is missing.
    pub async fn start() -> Self {
        let permit = slots().acquire_owned().await.expect("semaphore");
        let bin = root().join("tests/node/node_modules/.bin/chopsticks");
        assert!(
            bin.exists(),
            "{} is missing: install the test tools with `npm ci --prefix tests/node` (needs node)",
            bin.display()
        );
        let spec = root().join("tests/devnet/spec.json");
        assert!(
            spec.exists(),
            "{} is missing: the devnet chain spec is committed; rebuild it with scripts/build-devnet.sh",
            spec.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("chopsticks.log");
        let port = free_port();
        let out = std::fs::File::create(&log).expect("log file");
        let child = tokio::process::Command::new(&bin)
            .arg("--genesis")
            .arg(&spec)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--build-block-mode", "Instant"])
            .current_dir(dir.path())
            .stdout(Stdio::from(out.try_clone().expect("log")))
            .stderr(Stdio::from(out))
            .kill_on_drop(true)
            .spawn()
            .expect("starting chopsticks (is node installed?)");
        let mut me = Chopsticks {
            child,
            ws_url: format!("ws://127.0.0.1:{port}"),
            http_url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
            _permit: permit,
        };
        if !me.wait_ready(Duration::from_secs(90)).await {
            let _ = me.child.kill().await;
            panic!("chopsticks did not become ready; its log:\n{}", me.log());
        }
        me
    }

    async fn wait_ready(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        let http = cybergov::http::client_builder()
            .build()
            .expect("an HTTP client");
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                eprintln!("chopsticks exited early: {status}");
                return false;
            }
            let ok = http
                .post(&self.http_url)
                .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "chain_getHeader", "params": []}))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ok.is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    }

    /// One JSON-RPC call over HTTP; panics on an RPC error.
    pub async fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let resp: serde_json::Value = cybergov::http::client_builder()
            .build()
            .expect("an HTTP client")
            .post(&self.http_url)
            .json(
                &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            )
            .send()
            .await
            .expect("chopsticks answers")
            .json()
            .await
            .expect("JSON-RPC response");
        if let Some(err) = resp.get("error") {
            panic!("{method} failed: {err}");
        }
        resp["result"].clone()
    }

    /// The best block number.
    pub async fn best_number(&self) -> u64 {
        let header = self.rpc("chain_getHeader", serde_json::json!([])).await;
        let n = header["number"].as_str().expect("header number");
        u64::from_str_radix(n.trim_start_matches("0x"), 16).expect("hex number")
    }

    /// The account's next nonce.
    pub async fn nonce(&self, ss58: &str) -> u64 {
        self.rpc("system_accountNextIndex", serde_json::json!([ss58]))
            .await
            .as_u64()
            .expect("nonce")
    }

    /// The log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
