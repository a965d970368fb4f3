#!/usr/bin/env bash
# Makes sure Postgres and RabbitMQ answer on 127.0.0.1: starts the local Debian
# services, installing them with apt when they are absent. Idempotent.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    log "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 what=$2
    for _ in $(seq 1 120); do
        port_open "$port" && return 0
        sleep 0.5
    done
    log "$what did not open port $port"
    return 1
}

ensure_postgres() {
    if port_open 5432 && psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        apt_install postgresql postgresql-client
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    # Local development and tests connect as postgres over TCP without a password.
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba" 2>/dev/null; then
        log "allowing trust auth on 127.0.0.1 for local development ($hba)"
        local tmp
        tmp=$(mktemp)
        { printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n'; as_root cat "$hba"; } >"$tmp"
        as_root cp "$tmp" "$hba"
        rm -f "$tmp"
    fi
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null ||
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    wait_port 5432 PostgreSQL
    for _ in $(seq 1 60); do
        psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    log "PostgreSQL does not accept connections"
    return 1
}

ensure_rabbitmq() {
    if port_open 5672; then
        return 0
    fi
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        apt_install rabbitmq-server
    fi
    log "starting RabbitMQ"
    as_root rabbitmq-server -detached >/dev/null 2>&1 || true
    as_root rabbitmqctl await_startup --timeout 120 >/dev/null 2>&1 || true
    wait_port 5672 RabbitMQ
}

command -v psql >/dev/null 2>&1 || apt_install postgresql-client
ensure_postgres
ensure_rabbitmq
log "PostgreSQL and RabbitMQ are up"
