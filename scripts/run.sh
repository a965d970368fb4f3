#!/usr/bin/env bash
# Runs the whole system locally: services, migrations, then `webhookd run`
# (admin API and UI on http://127.0.0.1:8080, metrics on /metrics).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-services.sh
cargo build --release --bins
target/release/webhookd migrate
exec target/release/webhookd run "$@"
