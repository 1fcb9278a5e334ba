#!/usr/bin/env bash
# Long soak and fault runs, kept out of CI (which runs short, seeded versions of the same tests):
# the broker simulation over many more seeds and steps, the decoder, record-validator and
# request-handler fuzzers (the filter matches HandlerFuzzTests too) with a fresh seed and many
# more inputs, then the crash, idempotence, exactly-once pipeline and mutated-frame interop tests
# with more records and frames. The cluster simulation (brokers over one simulated database) runs
# its own seeds, from 100000 so they differ from CI's.
#   SOAK_SEEDS (default 5000 per configuration), SOAK_STEPS (default 2000), SOAK_SHORT_SEEDS (default
#   50000 seeds of 60 steps in each main configuration), SOAK_RECORDS (default 500000),
#   SOAK_CLUSTER_SEEDS (default 5000), SOAK_CLUSTER_STEPS (default 400),
#   SOAK_FUZZ_SEED (default random), SOAK_FUZZ_ITERATIONS (default 2000000),
#   SOAK_FUZZ_FRAMES (default 100000)
# A failing simulation prints its seed; replay it with ONCE_SIMULATION_SEED=<seed>, adding
# ONCE_SIMULATION_TRACE=1 to see every step (the cluster simulation: ONCE_CLUSTER_SIMULATION_SEED
# and ONCE_CLUSTER_SIMULATION_STEPS, which print its trace).
# A fuzzer prints its seed first; replay it with ONCE_FUZZ_SEED=<seed> (ONCE_FUZZ_TRACE=1 prints
# every input before it runs).
set -euo pipefail
cd "$(dirname "$0")/.."
ONCE_SIMULATION_SEEDS=${SOAK_SEEDS:-5000} ONCE_SIMULATION_STEPS=${SOAK_STEPS:-2000} \
    swift test -c release --filter BrokerSimulationTests
ONCE_SIMULATION_FIRST_SEED=2000001 ONCE_SIMULATION_SEEDS=${SOAK_SHORT_SEEDS:-50000} ONCE_SIMULATION_STEPS=60 \
    swift test -c release --filter "BrokerSimulationTests/(crashesUnderFlushNone|powerLossUnderFlushAlways|powerLossUnderFlushNone)"
ONCE_CLUSTER_SIMULATION_FIRST_SEED=100000 ONCE_CLUSTER_SIMULATION_SEEDS=${SOAK_CLUSTER_SEEDS:-5000} \
    ONCE_CLUSTER_SIMULATION_STEPS=${SOAK_CLUSTER_STEPS:-400} \
    swift test -c release --filter ClusterSimulationTests/seedsHoldEveryInvariant
fuzz_seed=${SOAK_FUZZ_SEED:-$(( (RANDOM << 15) | RANDOM ))}
ONCE_FUZZ_SEED=$fuzz_seed ONCE_FUZZ_ITERATIONS=${SOAK_FUZZ_ITERATIONS:-2000000} \
    swift test -c release --filter FuzzTests
swift build -c release --product once
ONCE_BIN="$PWD/.build/release/once" ONCE_INTEROP_RECORDS=${SOAK_RECORDS:-500000} \
    python3 -m pytest -q Tests/interop/test_crash_recovery.py Tests/interop/test_idempotence.py \
    Tests/interop/test_transactions.py Tests/interop/test_exactly_once_pipeline.py
ONCE_BIN="$PWD/.build/release/once" ONCE_FUZZ_SEED=$fuzz_seed ONCE_FUZZ_FRAMES=${SOAK_FUZZ_FRAMES:-100000} \
    python3 -m pytest -q -s Tests/interop/test_fuzz_frames.py
