#!/usr/bin/env bash
# Long soak and fault runs, kept out of CI (which runs short, seeded versions of the same tests):
# the broker simulation over many more seeds and steps, then the crash, idempotence and
# exactly-once pipeline interop tests with more records.
#   SOAK_SEEDS (default 5000 per configuration), SOAK_STEPS (default 2000), SOAK_RECORDS (default 500000)
# A failing simulation prints its seed; replay it with ONCE_SIMULATION_SEED=<seed>, adding
# ONCE_SIMULATION_TRACE=1 to see every step.
set -euo pipefail
cd "$(dirname "$0")/.."
ONCE_SIMULATION_SEEDS=${SOAK_SEEDS:-5000} ONCE_SIMULATION_STEPS=${SOAK_STEPS:-2000} \
    swift test -c release --filter BrokerSimulationTests
swift build -c release --product once
ONCE_BIN="$PWD/.build/release/once" ONCE_INTEROP_RECORDS=${SOAK_RECORDS:-500000} \
    python3 -m pytest -q Tests/interop/test_crash_recovery.py Tests/interop/test_idempotence.py \
    Tests/interop/test_transactions.py Tests/interop/test_exactly_once_pipeline.py
