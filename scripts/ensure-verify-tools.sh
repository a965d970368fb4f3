#!/usr/bin/env bash
# Makes the toolchains of the signature verification examples (examples/verify/)
# available for their end-to-end tests (tests/tests/verify_examples.rs):
#   - php-cli and golang-go (and npm, python3-venv) from Debian's packages
#     (apt), when missing;
#   - a Python venv in a cache directory with the pinned, hash-checked
#     examples/verify/python/requirements.txt (the official `standardwebhooks`);
#   - `npm ci` in examples/verify/node (the official `standardwebhooks`, locked).
# A fast no-op when everything is already there. Prints the venv's python on
# stdout; the tests look for it at $WEBHOOKD_VERIFY_PYTHON, else at that path
# under ~/.cache (or $XDG_CACHE_HOME).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[verify-tools] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages: the command each one provides.
missing=()
command -v php >/dev/null 2>&1 || missing+=(php-cli)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    # Another script may be running apt at the same moment: wait for its lock.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: the venv is rebuilt when requirements.txt changed since it was made.
requirements=examples/verify/python/requirements.txt
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/webhookd/verify-venv"
if ! cmp -s <(sha256sum <"$requirements") "$VENV/.requirements-digest" 2>/dev/null; then
    log "creating $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        --require-hashes --no-deps -r "$requirements"
    # Written last, so an interrupted install is redone rather than trusted.
    sha256sum <"$requirements" >"$VENV/.requirements-digest"
fi

# Node: reinstall when the lock file changed since the last `npm ci`.
node_dir=examples/verify/node
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] ||
    ! cmp -s <(sha256sum <"$node_dir/package-lock.json") "$node_dir/node_modules/.lock-digest" 2>/dev/null; then
    log "npm ci in $node_dir"
    (cd "$node_dir" && npm ci --no-audit --no-fund --silent)
    sha256sum <"$node_dir/package-lock.json" >"$node_dir/node_modules/.lock-digest"
fi

echo "$VENV/bin/python"
