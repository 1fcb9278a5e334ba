#!/usr/bin/env bash
# Broker CPU per produced record, for comparing builds of `once` (e.g. before and after a change
# on the produce path). Starts a fresh broker per run (file engine, metrics listener on, so the
# metrics code is exercised), drives it with ../shared/bench's librdkafka `eosbench`, and prints the
# broker's user+system CPU per record from /proc. The binaries take turns run by run, so load from
# elsewhere on the machine falls on each of them alike; compare the sums over many runs, since one
# run's figure is a few dozen 10 ms ticks.
# usage: bench/produce_cpu.sh "ONCE_BINARY [ONCE_BINARY ...]" [COUNT] [SIZE] [RUNS] [MODES]
# MODES is a list of eosbench producer modes: plain, idem, txn (1000 records per transaction).
set -uo pipefail
bins=$1; count=${2:-1000000}; size=${3:-100}; runs=${4:-3}; modes=${5:-plain idem txn}
bench=${EOSBENCH:-/tmp/eosbench/eosbench}
[ -x "$bench" ] || bench=$(bash "$(dirname "$0")/../../shared/bench/build.sh" | tail -1)
tck=$(getconf CLK_TCK)
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
declare -A total
for mode in $modes; do
  for run in $(seq 1 "$runs"); do
    for bin in $bins; do
      data=$(mktemp -d /tmp/produce-cpu.XXXXXX)
      "$bin" broker --data-dir "$data" --listen 127.0.0.1:19292 --metrics-listen 127.0.0.1:19293 --log-level warning \
        >/tmp/produce-cpu-broker.log 2>&1 & pid=$!
      wait_port 19292 || { echo "broker did not start"; kill $pid; exit 1; }
      extra=(); [ "$mode" = txn ] && extra=(1000)
      c0=$(cpu_ticks $pid)
      line=$(timeout 300 "$bench" P 127.0.0.1:19292 "cpu-$mode" "$count" "$size" "$mode" "${extra[@]}" 2>/dev/null | tail -1)
      c1=$(cpu_ticks $pid)
      kill $pid; wait $pid 2>/dev/null; rm -rf "$data"
      total[$bin $mode]=$(( ${total[$bin $mode]:-0} + c1 - c0 ))
      python3 -c "t=($c1-$c0)/$tck; print(f'$bin $mode run $run: $line broker_cpu_s={t:.2f} broker_cpu_us_per_rec={t/$count*1e6:.3f}')"
    done
  done
done
for mode in $modes; do
  for bin in $bins; do
    python3 -c "t=${total[$bin $mode]}/$tck; print(f'total $bin $mode: {$runs} runs broker_cpu_us_per_rec={t/($count*$runs)*1e6:.3f}')"
  done
done
