#!/usr/bin/env bash
# Runs the whole test suite against the real Postgres and RabbitMQ:
# formatting, lints, then every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-services.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
