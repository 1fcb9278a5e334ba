#!/usr/bin/env bash
# The project's test command: builds the broker, runs every Swift test, then drives the
# release broker with real Kafka clients (Tests/interop). Extra arguments go to pytest,
# e.g. `./scripts/test.sh -k kcat`. ONCE_INTEROP_RECORDS=5000 makes the big tests small.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== swift build -c release --product once"
swift build -c release --product once

echo "== swift test"
swift test

ONCE_BIN="$(swift build -c release --show-bin-path)/once"
export ONCE_BIN
export PYTHONDONTWRITEBYTECODE=1
echo "== interop tests against $ONCE_BIN"
python3 -m pytest -q Tests/interop "$@"
