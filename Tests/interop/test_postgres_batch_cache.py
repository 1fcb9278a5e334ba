"""The postgres engine's bounded batch cache with real clients: a broker whose partitions keep only
16 KiB of committed batches in memory, SIGKILLed and restarted, serves a confluent-kafka consumer
a partition many times larger than that from the beginning, every record once and in order, under
read_committed (aborted transactions in the old part filtered) and read_uncommitted (they are
there). The metrics prove the reads went to the database and the cache stayed within its bound."""

from __future__ import annotations

import os

import pytest
from confluent_kafka import Producer

import confluent_helpers as ck
from postgres_cluster import PostgresCluster
from support import index_of, key_for, record_count, unique_topic, value_for
from test_postgres_storage import metric

CACHE_BYTES = 16 * 1024


@pytest.fixture(scope="module")
def pg():
    if not PostgresCluster.available() and os.environ.get("ONCE_REQUIRE_SERVICES") != "1":
        pytest.skip("PostgreSQL's server is not installed (scripts/install-deps.sh installs it)")
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.cleanup()


def read_indices(broker, topic: str, isolation: str) -> tuple[list[int], int]:
    """The indices read from the start in offset order, and the payload bytes they carried."""
    records = ck.read_to_end(broker, topic, [0], **{"isolation.level": isolation})
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets)), "offsets repeated or out of order"
    return [index_of(r.value) for r in records], sum(len(r.key) + len(r.value) for r in records)


@pytest.mark.timeout_seconds(300)
def test_a_partition_far_larger_than_the_cache_is_read_from_the_start_exactly_once(pg, broker_factory):
    broker = broker_factory(
        extra_args=["--storage", "postgres", "--postgres-url", pg.new_database(), "--postgres-cache-bytes", str(CACHE_BYTES)])
    topic = unique_topic("pg-cache")
    ck.create_topic(broker, topic, 1)
    n = record_count(20_000)
    first = range(0, n)
    ck.produce_indexed(broker, topic, first, partition=0, **{"enable.idempotence": True, "batch.num.messages": 50})

    # Transactions, half aborted, then more records after them: the aborted ones lie deep in the
    # part only the table holds.
    txn = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": unique_topic("pg-cache-txn"), "linger.ms": 5})
    txn.init_transactions(30)
    committed: list[int] = []
    aborted: list[int] = []
    in_order: list[int] = list(first)
    start = n
    for round_ in range(6):
        indices = list(range(start, start + 200))
        start += 200
        txn.begin_transaction()
        for i in indices:
            txn.produce(topic, key=key_for(i), value=value_for(i), partition=0)
        txn.flush(30)
        if round_ % 2 == 0:
            txn.commit_transaction(30)
            committed += indices
        else:
            txn.abort_transaction(30)
            aborted += indices
        in_order += indices
    last = range(start, start + n)
    ck.produce_indexed(broker, topic, last, partition=0, **{"enable.idempotence": True, "batch.num.messages": 50})
    in_order += list(last)

    # The restarted broker gains the partition from the database: nothing of it in memory.
    broker.kill9()
    broker.restart()

    aborted_set = set(aborted)
    read_committed, _ = read_indices(broker, topic, "read_committed")
    assert read_committed == [i for i in in_order if i not in aborted_set]
    read_uncommitted, payload = read_indices(broker, topic, "read_uncommitted")
    assert read_uncommitted == in_order
    # Otherwise the cache could have held it all and the test would prove nothing.
    assert payload > 10 * CACHE_BYTES, payload
    misses = metric(broker, "once_postgres_cache_misses_total")
    batches_read = metric(broker, "once_postgres_batches_read_total")
    # Both reads went to the table for (nearly) every batch; the internal partitions stay cached.
    assert misses >= 2 and batches_read >= 2 * (2 * n) / 50 * 0.9, (misses, batches_read)
    # Partitions led here: the topic's and the two internal topics'; each within its bound.
    assert metric(broker, "once_postgres_cache_bytes") <= 3 * CACHE_BYTES
