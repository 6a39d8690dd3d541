#!/usr/bin/env bash
# The project's test command (README, .ci/run and .github/workflows/ci.yml all call this).
# Installs what the tests need, then runs format, lint and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain"
cargo --version
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== node tools (chopsticks runs the devnet; types-support ships real chain metadata)"
# npm ci installs exactly package-lock.json; it is skipped when that same lock is already installed.
stamp=tests/node/node_modules/.installed-package-lock.json
if ! cmp -s tests/node/package-lock.json "$stamp" 2>/dev/null; then
  npm ci --prefix tests/node --no-audit --no-fund
  cp tests/node/package-lock.json "$stamp"
fi

echo "== format"
cargo fmt --all -- --check

echo "== lint"
cargo clippy --locked --all-targets -- -D warnings

echo "== tests"
# CI=true makes insta refuse to write snapshots, so a changed output fails instead of passing.
cargo test --locked --all-targets
