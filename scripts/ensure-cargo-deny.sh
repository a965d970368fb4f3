#!/usr/bin/env bash
# Makes sure cargo-deny is installed at the pinned version (from crates.io,
# built with its locked dependencies), for scripts/check-supply-chain.sh.
# Idempotent: does nothing when that version is already there. The first
# build takes a few minutes.
set -euo pipefail

VERSION=0.20.2

if cargo deny --version 2>/dev/null | grep -qx "cargo-deny $VERSION"; then
    exit 0
fi
printf '[cargo-deny] installing cargo-deny %s\n' "$VERSION" >&2
# Its own target directory, so the workspace's is not touched; removed after.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
CARGO_TARGET_DIR="$build" cargo install cargo-deny --version "$VERSION" --locked --quiet
cargo deny --version
