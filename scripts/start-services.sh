#!/usr/bin/env bash
# Starts the servers the OnceStreams tests write to, on loopback: PostgreSQL (a throwaway
# cluster in /tmp, user/password/database "once") and Redis on 6379. Safe to run again: it
# installs only what is missing and leaves running servers alone. Source it, or read the
# exports it prints, for ONCE_TEST_POSTGRES_URL and ONCE_TEST_REDIS.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for package in postgresql redis-server libsqlite3-dev; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "start-services: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PG_PORT="${ONCE_TEST_POSTGRES_PORT:-55432}"
PG_DIR="${ONCE_TEST_POSTGRES_DIR:-/tmp/once-test-postgres}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"

# PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; elif [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if ! as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    if [ ! -f "$PG_DIR/PG_VERSION" ]; then
        mkdir -p "$PG_DIR"
        [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PG_DIR"
        as_postgres "$PG_BIN/initdb" -D "$PG_DIR" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    # fsync off: a throwaway test cluster, where a commit only has to survive the consumer's crash.
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w \
        -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" start >/dev/null
fi
psql_as() { as_postgres psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qtAX "$@"; }
psql_as -c "SELECT 1 FROM pg_roles WHERE rolname = 'once'" | grep -q 1 ||
    psql_as -c "CREATE ROLE once LOGIN PASSWORD 'once'"
psql_as -c "SELECT 1 FROM pg_database WHERE datname = 'once'" | grep -q 1 ||
    psql_as -c "CREATE DATABASE once OWNER once"

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --port 6379 --bind 127.0.0.1 --daemonize yes --save "" --appendonly no >/dev/null
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

export ONCE_TEST_POSTGRES_URL="postgres://once:once@127.0.0.1:$PG_PORT/once"
export ONCE_TEST_REDIS="127.0.0.1:6379"
echo "start-services: postgres $ONCE_TEST_POSTGRES_URL, redis $ONCE_TEST_REDIS"
