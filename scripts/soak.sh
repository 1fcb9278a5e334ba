#!/usr/bin/env bash
# Long soak and fault runs, kept out of CI (which runs short, seeded versions of the same tests):
# the transaction simulation over many more seeds and steps, then the crash, idempotence and
# exactly-once pipeline interop tests with more records.
#   SOAK_SEEDS (default 2000), SOAK_STEPS (default 5000), SOAK_RECORDS (default 500000)
# A failing simulation prints its seed; replay it with ONCE_SIM_FIRST_SEED=<seed> ONCE_SIM_SEEDS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ONCE_SIM_SEEDS=${SOAK_SEEDS:-2000} ONCE_SIM_STEPS=${SOAK_STEPS:-5000} \
    swift test -c release --filter TransactionSimulationTests
swift build -c release --product once
ONCE_BIN="$PWD/.build/release/once" ONCE_INTEROP_RECORDS=${SOAK_RECORDS:-500000} \
    python3 -m pytest -q Tests/interop/test_crash_recovery.py Tests/interop/test_idempotence.py \
    Tests/interop/test_transactions.py Tests/interop/test_exactly_once_pipeline.py
