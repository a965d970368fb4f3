#!/usr/bin/env bash
# cargo deny check: advisories, licences, bans (duplicate versions warn) and
# sources, under deny.toml, offline. The advisories come from the RustSec
# snapshot shipped beside the repository (shared/rustsec-advisory-db, its
# SNAPSHOT.txt names the date); cargo-deny reads a git checkout, so the
# snapshot is committed into a throwaway repository for the run. A missing
# snapshot fails the run: the check is never silently skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-cargo-deny.sh

snapshot=""
for candidate in "${RUSTSEC_DB:-$PWD/../shared/rustsec-advisory-db}" /work/shared/rustsec-advisory-db; do
    if [ -f "$candidate/SNAPSHOT.txt" ] && [ -d "$candidate/crates" ]; then
        snapshot="$candidate"
        break
    fi
done
if [ -z "$snapshot" ]; then
    echo "error: no RustSec advisory snapshot: looked at ${RUSTSEC_DB:-$PWD/../shared/rustsec-advisory-db} and /work/shared/rustsec-advisory-db (set RUSTSEC_DB to its directory)" >&2
    exit 1
fi

dbs="$(mktemp -d)"
trap 'rm -rf "$dbs"' EXIT
# The directory cargo-deny derives from deny.toml's db-urls entry.
checkout="$dbs/advisory-db-3157b0e258782691"
cp -R "$snapshot" "$checkout"
chmod -R u+w "$checkout"
git -C "$checkout" init --quiet
git -C "$checkout" add --all
git -C "$checkout" -c user.name=webhookd -c user.email=ci@webhookd.invalid -c commit.gpgsign=false \
    commit --quiet --message "$(head -n1 "$snapshot/SNAPSHOT.txt")"

# cargo-deny reads the metadata of every platform's packages offline: fetch
# them first (a new machine's registry cache holds only what its builds used).
cargo fetch --locked --quiet
echo "[cargo-deny] advisories from $(head -c 120 "$snapshot/SNAPSHOT.txt")" >&2
WEBHOOKD_ADVISORY_DBS="$dbs" cargo deny --locked --offline check
