#!/usr/bin/env bash
# Starts a three-broker Once cluster on loopback: Debian's PostgreSQL (a throwaway cluster in /tmp,
# as scripts/start-services.sh starts it) and three `once broker --storage postgres` processes on
# 127.0.0.1:19092, 19093 and 19094 (node ids 1, 2, 3). `scripts/start-cluster.sh stop` stops the
# brokers (SIGTERM: each hands its leases to the others) and PostgreSQL.
# ONCE_BIN names the binary (default: `once` on PATH, else .build/debug/once).
set -euo pipefail

DIR="${ONCE_CLUSTER_DIR:-/tmp/once-cluster}"
PG_PORT="${ONCE_CLUSTER_POSTGRES_PORT:-55433}"
PG_DIR="$DIR/postgres"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
BIN="${ONCE_BIN:-$(command -v once || echo "$(dirname "$0")/../.build/debug/once")}"

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; elif [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = stop ]; then
    pids=()
    for pidfile in "$DIR"/broker-*.pid; do
        [ -f "$pidfile" ] || continue
        pids+=("$(cat "$pidfile")")
        kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    # The brokers release their leases in the database as they stop: keep it up until they are gone.
    for pid in "${pids[@]}"; do
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" -m fast stop >/dev/null 2>&1 || true
    echo "start-cluster: stopped"
    exit 0
fi

[ -n "$PG_BIN" ] || { echo "start-cluster: PostgreSQL's server is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "start-cluster: no once binary at $BIN (swift build --product once, or set ONCE_BIN)" >&2; exit 1; }
mkdir -p "$DIR"
if ! as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    if [ ! -f "$PG_DIR/PG_VERSION" ]; then
        mkdir -p "$PG_DIR"
        [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR" "$PG_DIR"
        as_postgres "$PG_BIN/initdb" -D "$PG_DIR" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    # fsync off: a cluster to try things on; a production database keeps fsync on.
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w \
        -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
fi
psql_as() { as_postgres psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qtAX "$@"; }
psql_as -c "SELECT 1 FROM pg_database WHERE datname = 'once'" | grep -q 1 || psql_as -c "CREATE DATABASE once"
export ONCE_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/once"

for node in 1 2 3; do
    pidfile="$DIR/broker-$node.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then continue; fi
    port=$((19091 + node))
    log="$DIR/broker-$node.log"
    "$BIN" broker --storage postgres --node-id "$node" --listen "127.0.0.1:$port" \
        --metrics-listen "127.0.0.1:$((19190 + node))" >"$log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 600); do
        grep -qs "ready on" "$log" && break
        kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "start-cluster: broker $node exited:" >&2; tail -5 "$log" >&2; exit 1; }
        sleep 0.1
    done
    grep -q "ready on" "$log" || { echo "start-cluster: broker $node printed no ready line; see $log" >&2; exit 1; }
done
echo "start-cluster: brokers 127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094 over $ONCE_POSTGRES_URL (logs in $DIR)"
