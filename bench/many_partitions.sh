#!/usr/bin/env bash
# Cost of 10,000 partitions on one broker (RSS, descriptors, Metadata latency, spread vs single
# partition produce, restart after kill -9 with the log filled). Builds the release binary first.
# usage: bench/many_partitions.sh [--partitions N] [--fill-gb G] [--records N]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
(cd "$repo" && swift build -c release --product once >/dev/null)
exec python3 "$repo/bench/many_partitions.py" "$@"
