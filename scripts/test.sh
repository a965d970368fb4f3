#!/usr/bin/env bash
# Runs the whole test suite against the real Postgres and RabbitMQ:
# formatting, lints, then every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-services.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Advisories (offline, from the shared RustSec snapshot), licences, bans and
# sources under deny.toml; installs the pinned cargo-deny when missing.
scripts/check-supply-chain.sh
# No module of a crate imports one that imports it back (docs/ARCHITECTURE.md,
# "Module dependencies").
cargo run --quiet --locked -p modcheck
# Alert rules (promtool), dashboard and manifests; every metric they use must exist.
scripts/check-deploy.sh
scripts/ensure-browser.sh
# php-cli and Debian's php-amqplib for the PHP publisher's tests (tests/tests/php_publisher.rs).
scripts/ensure-php.sh
# PgBouncer >= 1.21 for the transaction pooling tests (tests/tests/pgbouncer.rs):
# built once from Debian trixie's source into a cache directory.
WEBHOOKD_PGBOUNCER="$(scripts/ensure-pgbouncer.sh)"
export WEBHOOKD_PGBOUNCER
# The graphql-ws reference client the subscription tests drive, at its
# locked versions (tests/graphql-ws/package-lock.json).
(cd tests/graphql-ws && npm ci --no-audit --no-fund --silent)
# The verification examples' toolchains (php-cli, golang-go, a venv with the
# pinned standardwebhooks, npm ci) for tests/tests/verify_examples.rs.
WEBHOOKD_VERIFY_PYTHON="$(scripts/ensure-verify-tools.sh)"
export WEBHOOKD_VERIFY_PYTHON
cargo test --workspace --locked
# The outage tests stop the shared Postgres and RabbitMQ, which would break any
# test running beside them: they run alone, one at a time, after the rest.
cargo test -p webhookd-e2e --test outages --locked -- --ignored --test-threads=1
# A three-node RabbitMQ cluster of its own (127.0.0.1:5681-5683, beside the
# machine's node) with nodes killed and stopped under load: every confirmed
# event delivered (docs/RELIABILITY.md, "Broker cluster"). About two minutes.
scripts/cluster-test.sh
