#!/usr/bin/env bash
# The project's test command (README, .ci/run and .github/workflows/ci.yml all call this).
# Installs what the tests need, then runs format, lint and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain"
cargo --version
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== format"
cargo fmt --all -- --check

echo "== lint"
cargo clippy --locked --all-targets -- -D warnings

echo "== tests"
# CI=true makes insta refuse to write snapshots, so a changed output fails instead of passing.
cargo test --locked --all-targets
