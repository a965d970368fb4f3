#!/usr/bin/env bash
# Makes sure the PHP command line and Debian's php-amqplib are installed, for
# the PHP publisher's tests (clients/php, tests/tests/php_publisher.rs).
# Idempotent: does nothing when both are already there.
set -euo pipefail

log() { printf '[php] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian's php-amqplib installs its autoloader here (see
# clients/php/tests/bootstrap.php, which looks for it).
AMQPLIB_AUTOLOAD=/usr/share/php/PhpAmqpLib/autoload.php

if command -v php >/dev/null 2>&1 && [ -f "$AMQPLIB_AUTOLOAD" ]; then
    exit 0
fi
log "installing php-cli and php-amqplib"
# Several engineers share the machine: wait for another apt run's lock
# instead of failing at once.
apt_get() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}
apt_get update -qq
apt_get install -y -qq --no-install-recommends php-cli php-amqplib >/dev/null
command -v php >/dev/null && [ -f "$AMQPLIB_AUTOLOAD" ]
log "$(php --version | head -n1) and php-amqplib installed"
