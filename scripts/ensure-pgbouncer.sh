#!/usr/bin/env bash
# Makes a PgBouncer new enough for webhookd's transaction pooling available
# (>= 1.21: protocol-level prepared statements, `max_prepared_statements`) for
# the PgBouncer tests (tests/tests/pgbouncer.rs). Debian bookworm only packages
# 1.18, so this builds Debian trixie's pgbouncer source (the upstream tarball,
# SHA-256 pinned below) once into a cache directory, installing the build
# dependencies with apt. Prints the binary's path on stdout; a fast no-op when
# it is already built. The tests look for the binary at $WEBHOOKD_PGBOUNCER or
# at the cache path printed here.
set -euo pipefail

log() { printf '[pgbouncer] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

VERSION=1.24.1
TARBALL="pgbouncer_${VERSION}.orig.tar.gz"
# From trixie's Sources index (Checksums-Sha256 of pgbouncer 1.24.1-1+deb13u2).
SHA256=da72a3aba13072876d055a3e58dd4aba4a5de4ed6148e73033185245598fd3e0
URL="http://deb.debian.org/debian/pool/main/p/pgbouncer/${TARBALL}"

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/webhookd/pgbouncer-${VERSION}"
BIN="$CACHE/bin/pgbouncer"

if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi

# Build dependencies: compiler, pkg-config, libevent, OpenSSL and c-ares
# (configure picks c-ares for DNS when present; it works without, but the
# Debian build uses it).
missing=()
for pkg in build-essential pkg-config libevent-dev libssl-dev libc-ares-dev curl ca-certificates; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log "downloading $TARBALL"
curl -sSfL --retry 3 -o "$work/$TARBALL" "$URL"
echo "$SHA256  $work/$TARBALL" | sha256sum --check --quiet - || {
    log "checksum mismatch for $TARBALL"
    exit 1
}

tar -xzf "$work/$TARBALL" -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'pgbouncer-*' | head -n1)
log "building PgBouncer $VERSION into $CACHE (a minute or two)"
# Built into a staging prefix and moved into place at the end, so an
# interrupted build never leaves a half-installed binary that looks done.
stage="$CACHE.partial"
rm -rf "$stage"
(
    cd "$src"
    ./configure --prefix="$stage" --without-pam --without-systemd >"$work/configure.log" 2>&1 ||
        { cat "$work/configure.log" >&2; exit 1; }
    make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -n 50 "$work/make.log" >&2; exit 1; }
    mkdir -p "$stage/bin"
    install -m 0755 pgbouncer "$stage/bin/pgbouncer"
)
rm -rf "$CACHE"
mv "$stage" "$CACHE"
log "$("$BIN" --version | head -n1) built"
echo "$BIN"
