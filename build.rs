//! Records the git commit cybergov is built from, for the provenance of every manifest.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CYBERGOV_BUILD_COMMIT={commit}");
    // The ledger's migrations are embedded by `sqlx::migrate!`: a new file must rebuild it.
    println!("cargo:rerun-if-changed=migrations");
    // Rebuild when HEAD moves (a commit or a checkout); a worktree's .git is a file.
    for path in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
