#!/usr/bin/env bash
# Broker memory with one large postgres-engine partition: COUNT idempotent 1 KB records produced
# (the shared librdkafka driver), the broker SIGKILLed and restarted, then its RSS after it gained
# the partition and after a consumer read it from the start. Pass ONCE_BIN to measure another
# build (the engine before the bounded cache loaded every batch at start).
# usage: bench/postgres_cache_rss.sh [COUNT]     (uses .build/debug/once unless ONCE_BIN is set)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${ONCE_SHARED:-$repo/../shared}
count=${1:-200000}
once=${ONCE_BIN:-$repo/.build/debug/once}
bench=$("$shared/bench/build.sh" | tail -1)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgdir=$(mktemp -d /tmp/once-bench-pg-XXXX); pgport=19260
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pgdir"
as_pg "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust >/dev/null || exit 1
as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
  -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || exit 1
data=$(mktemp -d)
bp=
cleanup() { [ -n "$bp" ] && kill -9 $bp 2>/dev/null; wait 2>/dev/null; as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null; rm -rf "$pgdir" "$data"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
psql -h 127.0.0.1 -p $pgport -U postgres -qtAX -c "CREATE DATABASE bench" >/dev/null
start() {
  "$once" broker --data-dir "$data" --storage postgres --postgres-url "postgres://postgres@127.0.0.1:$pgport/bench" \
    --listen 127.0.0.1:19261 --metrics-listen 127.0.0.1:19262 --log-level warning >>"$data/broker.log" 2>&1 & bp=$!
  wait_port 19261 || { echo "the broker did not start"; exit 1; }
}
start
echo "empty broker rss_mb=$(rss_mb $bp)"
topic="pgrss-$RANDOM"
"$bench" P 127.0.0.1:19261 "$topic" "$count" 1000 idem >/dev/null 2>&1 || { echo "produce failed"; exit 1; }
echo "after produce rss_mb=$(rss_mb $bp)"
kill -9 $bp; wait $bp 2>/dev/null
t0=$(date +%s.%N); start; t1=$(date +%s.%N)
sleep 2
echo "after restart rss_mb=$(rss_mb $bp) start_s=$(python3 -c "print(f'{$t1-$t0:.2f}')")"
curl -s http://127.0.0.1:19262/metrics | grep -E "^once_postgres_(cache|batches)" | tr '\n' ' '; echo
line=$("$bench" C 127.0.0.1:19261 "$topic" "$count" read_uncommitted 2>/dev/null | tail -1)
echo "after reading all from the start rss_mb=$(rss_mb $bp) consumer: $line"
curl -s http://127.0.0.1:19262/metrics | grep -E "^once_postgres_(cache|batches|round)" || true
[ -n "${ONCE_BENCH_PAUSE:-}" ] && sleep "$ONCE_BENCH_PAUSE"
