//! `cybergov serve` workers as child processes, for the crash and fault tests.

use super::pipeline::World;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child `cybergov` whose stderr is read on a thread: the lines containing `FAULT-PAUSE` are
/// sent as they come, and every line is kept.
pub struct Watched {
    /// The process.
    pub child: Child,
    /// Its `FAULT-PAUSE` lines.
    pub paused: std::sync::mpsc::Receiver<String>,
    /// Every line of its stderr so far.
    pub lines: Arc<Mutex<Vec<String>>>,
}

/// Spawns `cmd` (stdout discarded) and watches its stderr.
pub fn watch(mut cmd: Command) -> Watched {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn cybergov");
    let stderr = child.stderr.take().unwrap();
    let (tx, paused) = std::sync::mpsc::channel();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("FAULT-PAUSE") {
                let _ = tx.send(line.clone());
            }
            if std::env::var("CRASH_TEST_VERBOSE").is_ok() {
                eprintln!("[cybergov] {line}");
            }
            kept.lock().unwrap().push(line);
        }
    });
    Watched {
        child,
        paused,
        lines,
    }
}

/// Starts `cybergov serve` with `extra` variables; the first line containing `FAULT-PAUSE` is
/// sent back.
pub fn serve(w: &World, extra: &[(&str, &str)]) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = w.cybergov(&["serve"]);
    cmd.envs(extra.iter().copied());
    let watched = watch(cmd);
    (watched.child, watched.paused)
}

/// Sends `signal` (`STOP`, `CONT`, `TERM`) to `child`.
pub fn signal(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal}");
}

/// Sends SIGTERM and waits for a graceful exit.
pub fn terminate(child: &mut Child) {
    signal(child, "TERM");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
