#!/usr/bin/env bash
# Builds the release binaries and runs the performance scenarios of
# docs/PERFORMANCE.md against local Postgres and RabbitMQ, printing one
# Markdown table. Arguments go to webhookd-bench, e.g.
#   scripts/bench.sh --scenarios drain1,steady1
#   scripts/bench.sh --backlogs 1000,100000
#   scripts/bench.sh --set WEBHOOKD__BROKER__PREFETCH=512
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-services.sh
cargo build --release --locked -p webhookd -p webhookd-producer -p webhookd-bench
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/webhookd-bench" "$@"
