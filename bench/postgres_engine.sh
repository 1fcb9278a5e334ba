#!/usr/bin/env bash
# The postgres engine beside the file engine in one run, with the shared librdkafka driver
# (../shared/bench/eosbench): idempotent produce (acks=all) and read_uncommitted fetch of 100 B
# and 1 KB records, then the database round trips per produce request from the broker's metrics.
# The file engine runs with --flush always, the contract the postgres engine always has (nothing
# acknowledged before it is durable). PostgreSQL is a private cluster on loopback started here
# with fsync=off, so the postgres figures are the engine's cost, not a disk's.
# usage: bench/postgres_engine.sh [COUNT]     (builds the release binary first)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${ONCE_SHARED:-$repo/../shared}
count=${1:-200000}
(cd "$repo" && swift build -c release --product once >/dev/null) || exit 1
bench=$("$shared/bench/build.sh" | tail -1)
once="$repo/.build/release/once"
tck=$(getconf CLK_TCK)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgdir=$(mktemp -d /tmp/once-bench-pg-XXXX); pgport=19250
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pgdir"
as_pg "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust >/dev/null || exit 1
as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
  -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || exit 1
data=$(mktemp -d)
cleanup() { kill $bp 2>/dev/null; wait 2>/dev/null; as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null; rm -rf "$pgdir" "$data"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# PostgreSQL's CPU: the postmaster and every backend and worker it forked.
pg_ticks() {
  local master; master=$(head -1 "$pgdir/data/postmaster.pid")
  local t=0 p; for p in $master $(ps --ppid "$master" -o pid=); do t=$((t + $(cpu_ticks "$p"))); done; echo $t
}
metric() { curl -s "http://127.0.0.1:19202/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
measure() { # name pid driver-args...
  local name=$1 pid=$2; shift 2
  local c0 c1 p0 p1 line; c0=$(cpu_ticks "$pid"); p0=$(pg_ticks)
  line=$(timeout 600 "$bench" "$@" 2>/dev/null | tail -1)
  c1=$(cpu_ticks "$pid"); p1=$(pg_ticks)
  python3 -c "t=($c1-$c0)/$tck; p=($p1-$p0)/$tck; print(f'$name $line broker_cpu_s={t:.2f} broker_cpu_us_per_rec={t/$count*1e6:.3f} postgres_cpu_s={p:.2f}')"
}
for engine in file postgres; do
  if [ $engine = file ]; then args=(--data-dir "$data/file" --flush always)
  else
    psql -h 127.0.0.1 -p $pgport -U postgres -qtAX -c "CREATE DATABASE bench" >/dev/null
    args=(--data-dir "$data/pg" --storage postgres --postgres-url "postgres://postgres@127.0.0.1:$pgport/bench")
  fi
  "$once" broker "${args[@]}" --listen 127.0.0.1:19201 --metrics-listen 127.0.0.1:19202 --log-level warning \
    >"/tmp/postgres-bench-$engine.log" 2>&1 & bp=$!
  wait_port 19201 || { echo "the $engine broker did not start"; exit 1; }
  for size in 100 1000; do
    topic="pgb-$engine-$size-$RANDOM"
    requests0=$(metric 'once_requests_total{api="Produce"}'); rounds0=$(metric once_postgres_append_round_trips_total)
    measure "$engine ${size}B" $bp P 127.0.0.1:19201 "$topic" "$count" "$size" idem
    if [ $engine = postgres ]; then
      requests=$(( $(metric 'once_requests_total{api="Produce"}') - ${requests0:-0} ))
      rounds=$(( $(metric once_postgres_append_round_trips_total) - ${rounds0:-0} ))
      python3 -c "print(f'postgres ${size}B produce_requests=$requests append_round_trips=$rounds round_trips_per_request={$rounds/max($requests,1):.3f}')"
    fi
    measure "$engine ${size}B" $bp C 127.0.0.1:19201 "$topic" "$count" read_uncommitted
  done
  kill $bp; wait $bp 2>/dev/null
done
