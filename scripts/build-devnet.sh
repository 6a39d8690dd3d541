#!/usr/bin/env bash
# Builds the governance devnet (tests/devnet: runtime wasm + native genesis writer) and writes its
# raw chain spec, tests/devnet/spec.json, which the chain tests start chopsticks on.
#
#   scripts/build-devnet.sh           rebuild and overwrite tests/devnet/spec.json
#   scripts/build-devnet.sh --check   rebuild into a temporary file and compare it with the
#                                     committed spec; exit status 1 if they differ
#
# A cold build takes 15-30 minutes on two cores (the runtime is compiled twice: natively for the
# genesis writer, and to wasm). The toolchain is pinned in tests/devnet/rust-toolchain.toml,
# because another rustc gives another (equivalent, but not byte-identical) wasm.
set -euo pipefail

mode=write
case "${1:-}" in
	"") ;;
	--check) mode=check ;;
	*)
		echo "usage: $0 [--check]" >&2
		exit 2
		;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
devnet=$root/tests/devnet
spec=$devnet/spec.json

# The wasm depends on the absolute path of the runtime crate, even with source paths remapped:
# substrate-wasm-builder compiles it as a path dependency from outside its own workspace, so
# cargo hashes the full path into the crate's `-C metadata`, which orders functions and custom
# sections in the wasm. Building through one fixed path makes every checkout build the same
# wasm. (The target directory is still tests/devnet/target, through the link.)
build_root=${DEVNET_BUILD_ROOT:-/tmp/cybergov-devnet}
if [ -e "$build_root" ] && [ ! -L "$build_root" ]; then
	echo "$build_root exists and is not a symlink; remove it or set DEVNET_BUILD_ROOT" >&2
	exit 1
fi
ln -sfn "$devnet" "$build_root"
cd "$build_root"

# Install what the build needs: the pinned toolchain and the wasm target substrate-wasm-builder
# uses with Rust >= 1.84 (`wasm32v1-none`: core and alloc come prebuilt for the MVP feature set,
# so neither `rust-src` nor `wasm32-unknown-unknown` is needed).
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
	rustup toolchain install "$toolchain" --profile minimal --no-self-update
fi
if ! rustup target list --installed --toolchain "$toolchain" | grep -qx wasm32v1-none; then
	rustup target add --toolchain "$toolchain" wasm32v1-none
fi

# Cargo.lock is committed: `--locked` builds exactly the dependency versions the spec came from.
start=$(date +%s)
cargo +"$toolchain" build --locked --release -p devnet-genesis --manifest-path "$build_root/Cargo.toml"
echo "build took $(($(date +%s) - start)) s"

if [ "$mode" = write ]; then
	target/release/devnet-genesis "$spec"
	ls -l "$spec"
	sha256sum "$spec"
	exit 0
fi

fresh=$(mktemp --suffix=.json)
trap 'rm -f "$fresh"' EXIT
target/release/devnet-genesis "$fresh"
if cmp -s "$fresh" "$spec"; then
	echo "tests/devnet/spec.json matches the source ($(sha256sum <"$spec" | cut -d' ' -f1))"
	exit 0
fi

# Say what differs: the runtime code (a different toolchain, dependency or runtime source) or
# the genesis state (the genesis writer or the pallets' genesis logic).
echo "tests/devnet/spec.json does NOT match the source" >&2
python3 - "$spec" "$fresh" <<'EOF' >&2 || true
import json, sys
committed, fresh = (json.load(open(p))["genesis"]["raw"]["top"] for p in sys.argv[1:3])
code = "0x3a636f6465"  # ":code"
if committed.get(code) != fresh.get(code):
    print("  the runtime code differs")
keys = {k for k in committed.keys() | fresh.keys() if k != code and committed.get(k) != fresh.get(k)}
if keys:
    print(f"  {len(keys)} storage entries differ, e.g. {sorted(keys)[:3]}")
EOF
exit 1
