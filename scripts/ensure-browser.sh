#!/usr/bin/env bash
# Makes sure headless Chromium and its WebDriver (chromedriver) are installed,
# from Debian's packages, for the browser tests (tests/tests/ui.rs).
# Idempotent: does nothing when both are already there.
set -euo pipefail

log() { printf '[browser] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
log "installing chromium and chromium-driver"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
log "$(chromium --version 2>/dev/null | head -n1) and $(chromedriver --version | head -n1) installed"
