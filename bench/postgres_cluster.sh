#!/usr/bin/env bash
# Produce and fetch throughput through one and three postgres-engine brokers over one PostgreSQL,
# beside the file engine, in one run, with the shared librdkafka driver (../shared/bench/eosbench):
# idempotent produce (acks=all) then a read_uncommitted fetch of 100 B and 1 KB records on a topic of
# PARTITIONS partitions (keys spread the records; with three brokers the leases are spread over
# them, and the driver bootstraps from all three). Each line adds the CPU seconds of the brokers
# (summed) and of PostgreSQL (postmaster and every backend, from /proc), and for the postgres runs
# the database round trips per produce request from the brokers' metrics. The file engine runs with
# --flush always, the contract the postgres engine always has. PostgreSQL is a private cluster on
# loopback with fsync=off, so its figures are the engine's and PostgreSQL's CPU cost, not a disk's.
# usage: bench/postgres_cluster.sh [COUNT] [PARTITIONS]   (ONCE_BIN overrides the release binary)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${ONCE_SHARED:-$repo/../shared}
count=${1:-200000}; partitions=${2:-6}
once=${ONCE_BIN:-$repo/.build/release/once}
if [ -z "${ONCE_BIN:-}" ]; then (cd "$repo" && swift build -c release --product once >/dev/null) || exit 1; fi
bench=$("$shared/bench/build.sh" | tail -1)
tck=$(getconf CLK_TCK)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgdir=$(mktemp -d /tmp/once-bench-pgc-XXXX); pgport=19360
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pgdir"
as_pg "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust >/dev/null || exit 1
as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
  -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || exit 1
data=$(mktemp -d)
pids=()
stop_brokers() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done; pids=(); }
cleanup() { stop_brokers; as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null; rm -rf "$pgdir" "$data"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
brokers_ticks() { local t=0 p; for p in "${pids[@]}"; do t=$((t + $(cpu_ticks "$p"))); done; echo $t; }
pg_ticks() {
  local master; master=$(head -1 "$pgdir/data/postmaster.pid")
  local t=0 p; for p in $master $(ps --ppid "$master" -o pid=); do t=$((t + $(cpu_ticks "$p"))); done; echo $t
}
psql_() { psql -h 127.0.0.1 -p $pgport -U postgres -qtAX "$@"; }
# A metric summed over the running brokers.
metric() {
  local sum=0 n v
  for n in $(seq 1 ${#pids[@]}); do
    v=$(curl -s "http://127.0.0.1:$((19380 + n))/metrics" | awk -v m="$1" '$1 == m {print $2}')
    sum=$(python3 -c "print(int(float('${v:-0}') + $sum))")
  done
  echo $sum
}
measure() { # name driver-args...
  local name=$1; shift
  local c0 c1 p0 p1 line; c0=$(brokers_ticks); p0=$(pg_ticks)
  line=$(timeout 900 "$bench" "$@" 2>/dev/null | tail -1)
  c1=$(brokers_ticks); p1=$(pg_ticks)
  python3 -c "t=($c1-$c0)/$tck; p=($p1-$p0)/$tck; print(f'$name $line brokers_cpu_s={t:.2f} brokers_cpu_us_per_rec={t/$count*1e6:.3f} postgres_cpu_s={p:.2f}')"
}
start_brokers() { # setup
  local setup=$1 n args
  local brokers=1; [ "$setup" = postgres-x3 ] && brokers=3
  if [ "$setup" != file ]; then psql_ -c "CREATE DATABASE \"${setup//-/_}\"" >/dev/null; fi
  for n in $(seq 1 $brokers); do
    if [ "$setup" = file ]; then args=(--data-dir "$data/file" --flush always)
    else args=(--data-dir "$data/$setup-$n" --storage postgres --node-id "$n"
      --postgres-url "postgres://postgres@127.0.0.1:$pgport/${setup//-/_}"); fi
    "$once" broker "${args[@]}" --listen 127.0.0.1:$((19370 + n)) --metrics-listen 127.0.0.1:$((19380 + n)) \
      --log-level warning >"/tmp/postgres-cluster-bench-$setup-$n.log" 2>&1 & pids+=($!)
    wait_port $((19370 + n)) || { echo "broker $n of $setup did not start"; exit 1; }
  done
  bootstrap=$(for n in $(seq 1 $brokers); do printf '127.0.0.1:%s,' $((19370 + n)); done); bootstrap=${bootstrap%,}
}
# Waits until the topic's partitions are led by every broker of the setup (the placement hands
# leases off at heartbeats), and prints how many each leads.
spread() { # setup topic
  local db=${1//-/_} want=1 held
  [ "$1" = postgres-x3 ] && want=3
  [ "$1" = file ] && return 0
  for _ in $(seq 1 120); do
    held=$(psql_ -d "$db" -c "SELECT count(DISTINCT holder) FROM once.partition_leases WHERE topic = '$2' AND expires_at > now()")
    [ "${held:-0}" -ge "$want" ] && break
    sleep 0.5
  done
  echo "$1 $2 leaders: $(psql_ -d "$db" -c "SELECT string_agg(holder || ':' || n, ' ') FROM (SELECT holder, count(*) n FROM once.partition_leases WHERE topic = '$2' GROUP BY holder ORDER BY holder) x")"
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; count=$count partitions=$partitions"
for setup in file postgres-x1 postgres-x3; do
  start_brokers $setup
  for size in 100 1000; do
    topic="pgc-$setup-$size-$RANDOM"
    "$once" topic create --bootstrap-server "${bootstrap%%,*}" "$topic" --partitions "$partitions" >/dev/null || exit 1
    spread $setup "$topic"
    requests0=$(metric 'once_requests_total{api="Produce"}'); rounds0=$(metric once_postgres_append_round_trips_total)
    measure "$setup ${size}B produce" P "$bootstrap" "$topic" "$count" "$size" idem
    if [ $setup != file ]; then
      requests=$(( $(metric 'once_requests_total{api="Produce"}') - requests0 ))
      rounds=$(( $(metric once_postgres_append_round_trips_total) - rounds0 ))
      python3 -c "print(f'$setup ${size}B produce_requests=$requests append_round_trips=$rounds round_trips_per_request={$rounds/max($requests,1):.3f}')"
    fi
    measure "$setup ${size}B fetch" C "$bootstrap" "$topic" "$count" read_uncommitted
  done
  stop_brokers
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
