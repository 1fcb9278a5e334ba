#!/usr/bin/env bash
# The project's test command, the one CI runs: installs what the tests need (kcat, librdkafka,
# the Python clients, PostgreSQL, Redis), starts PostgreSQL and Redis on loopback, builds the
# broker, runs every Swift test, then drives the release broker with real Kafka clients
# (Tests/interop). Extra arguments go to pytest, e.g. `./scripts/test.sh -k kcat`.
# ONCE_INTEROP_RECORDS=5000 makes the big tests small.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
# Sourced for its exports (ONCE_TEST_POSTGRES_URL, ONCE_TEST_REDIS); with the services started
# here, a test that cannot reach them fails rather than skips.
source scripts/start-services.sh
export ONCE_REQUIRE_SERVICES="${ONCE_REQUIRE_SERVICES:-1}"

echo "== swift build -c release --product once"
swift build -c release --product once

echo "== swift test"
swift test

# On top of the default run's 1,900 seeds of 300 steps: 1,000 more seeds of 60 steps in each of
# the simulation's three main configurations (about 45 s on two cores), so every CI run tries
# thousands of seeds. The delayed-request and cleaner runs need long seeds to prove anything.
echo "== broker simulation, short seeds"
ONCE_SIMULATION_FIRST_SEED=1000001 ONCE_SIMULATION_SEEDS=1000 ONCE_SIMULATION_STEPS=60 \
    swift test --skip-build --filter "BrokerSimulationTests/(crashesUnderFlushNone|powerLossUnderFlushAlways|powerLossUnderFlushNone)"

# The PostgreSQL store is its own package so OnceClient users never resolve postgres-nio;
# its tests (and the demo binary test_streams.py runs) build there.
echo "== swift test --package-path Packages/OnceStreamsPostgres"
swift test --package-path Packages/OnceStreamsPostgres

ONCE_BIN="$(swift build -c release --show-bin-path)/once"
export ONCE_BIN
export PYTHONDONTWRITEBYTECODE=1
echo "== interop tests against $ONCE_BIN"
python3 -m pytest -q Tests/interop "$@"
