#!/usr/bin/env bash
# Runs the whole system locally: services, migrations, then `webhookd run`
# (admin API on http://127.0.0.1:8080, metrics on /metrics). Extra arguments
# go to `webhookd run` (e.g. --role worker).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-services.sh
cargo build --release --bins
cargo run --quiet --release --bin webhookd -- migrate
exec cargo run --quiet --release --bin webhookd -- run "$@"
