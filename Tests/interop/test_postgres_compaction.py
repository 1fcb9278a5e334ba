"""Compaction on the postgres engine with real clients: two brokers over one database, a compacted
topic with overwrites, tombstones and committed and aborted transactions. Its leader's cleaner
keeps the latest value per key at its offset, drops the tombstones once delete.retention.ms passed
after the pass that stamped them, and the abort markers once nothing of their transactions is
left (the aborted-transaction index forgets them first). A read_committed consumer sees exactly
the committed latest values before cleaning, after it, after the leader is SIGKILLed and the
other broker took the partition over, and after the new leader cleaned what was produced since.
The partitions keep 1 KiB in memory, so the reads are the table's. Every wait polls for an
outcome; no assertion depends on how fast anything ran."""

from __future__ import annotations

import os

import pytest
from confluent_kafka.admin import NewTopic

import confluent_helpers as ck
from postgres_cluster import PostgresCluster
from support import unique_topic, wait_until
from test_compaction import COMPACT, FAST_CLEANER, contents, in_transaction, metric, produce_all, txn_producer
from test_postgres_cluster import SESSION, database, lease

RETENTION_MS = 3000


@pytest.fixture(scope="module")
def pg():
    if not PostgresCluster.available() and os.environ.get("ONCE_REQUIRE_SERVICES") != "1":
        pytest.skip("PostgreSQL's server is not installed (scripts/install-deps.sh installs it)")
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.cleanup()


def latest(items: list[tuple[bytes, bytes | None]]) -> list[tuple[bytes, bytes]]:
    """The last value per key, in the order those last writes were made, tombstoned keys left out."""
    last: dict[bytes, tuple[int, bytes | None]] = {}
    for position, (key, value) in enumerate(items):
        last[key] = (position, value)
    return [(k, v) for k, (_, v) in sorted(last.items(), key=lambda kv: kv[1][0]) if v is not None]


@pytest.mark.timeout_seconds(300)
def test_a_compacted_topic_is_cleaned_by_its_leader_and_read_exactly_across_a_leader_change(pg, broker_factory):
    url = pg.new_database()
    args = ["--storage", "postgres", "--postgres-url", url, *SESSION, *FAST_CLEANER, "--postgres-cache-bytes", "1024"]
    # The second broker starts after the transactions: a transaction must touch only partitions
    # its coordinator leads (README, "Coordinators").
    brokers = [broker_factory(extra_args=[*args, "--node-id", "1"])]
    topic = unique_topic("pg-compact")
    config = dict(COMPACT, **{"delete.retention.ms": str(RETENTION_MS)})
    client = ck.admin(brokers[0])
    client.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(timeout=30)

    plain = [(f"k{i % 20}".encode(), f"v{i}".encode()) for i in range(600)] + [(f"k{i}".encode(), None) for i in range(5)]
    produce_all(brokers[0], topic, plain)
    producer = txn_producer(brokers[0], topic + "-p")
    committed_txns = [(b"t1", b"c1"), (b"t2", b"c2"), (b"t4", b"c4"), (b"t5", b"c5"), (b"t6", b"c6")]
    in_transaction(producer, topic, [(b"t1", b"c1"), (b"t2", b"c2")], commit=True)
    in_transaction(producer, topic, [(b"t1", b"a1"), (b"t3", b"a3")], commit=False)
    in_transaction(producer, topic, [(b"t4", b"c4"), (b"t5", b"c5")], commit=True)
    in_transaction(producer, topic, [(b"t2", b"a2")], commit=False)
    in_transaction(producer, topic, [(b"t6", b"c6")], commit=True)
    producer.flush(30)
    expected = latest(plain) + committed_txns

    def read_committed(via) -> list[tuple[bytes, bytes | None]]:
        return [(k, v) for _, k, v in contents(via, topic, "read_committed")]

    def controls() -> int:
        return int(pg.psql(f"SELECT count(*) FROM once.batches WHERE topic = '{topic}' AND is_control", database(url)))

    def cleaned(via, want) -> bool:
        return read_committed(via) == want

    # Whatever the cleaner has done so far, read_committed sees the committed values only, each
    # key's latest one last.
    first_read = read_committed(brokers[0])
    assert latest(first_read) == expected, "read_committed saw aborted or missing values"
    assert b"a1" not in [v for _, v in first_read] and b"a2" not in [v for _, v in first_read]

    holder = brokers[0]
    wait_until(lambda: cleaned(holder, expected) and controls() == 3, 120,
               "the leader's cleaner to leave one value per key, no tombstone and the three commit markers")
    # A pass counts what it removed once it ends, a moment after its commit shows.
    wait_until(lambda: metric(holder, "once_log_cleaner_abort_markers_removed_total") >= 2, 60,
               "the cleaner to count the abort markers it removed")
    assert metric(holder, "once_log_cleaner_abort_markers_removed_total") == 2
    uncommitted = [v for _, _, v in contents(holder, topic)]
    assert b"a1" not in uncommitted and b"a2" not in uncommitted and None not in uncommitted

    # A second broker joins and takes its share of the leases; then the topic's leader dies and
    # the other broker takes the partition over, at one epoch more, and serves it as cleaned.
    brokers.append(broker_factory(extra_args=[*args, "--node-id", "2"]))
    wait_until(lambda: int(pg.psql("SELECT count(DISTINCT holder) FROM once.partition_leases", database(url))) == 2, 60,
               "the second broker to take its share of the leases")
    killed, epoch = lease(pg, url, topic, 0)
    brokers[killed - 1].kill9()
    survivor = brokers[2 - killed]
    wait_until(lambda: lease(pg, url, topic, 0) == (3 - killed, epoch + 1), 60, "the surviving broker to take the lease")
    assert read_committed(survivor) == expected

    # The new leader cleans what comes next: every plain key written again.
    more = [(f"k{i % 20}".encode(), f"w{i}".encode()) for i in range(100)]
    cleans_before = metric(survivor, "once_log_cleaner_cleans_total")
    produce_all(survivor, topic, more)
    final = committed_txns + latest(more)
    wait_until(lambda: cleaned(survivor, final), 120, "the new leader's cleaner to compact the new overwrites")
    wait_until(lambda: metric(survivor, "once_log_cleaner_cleans_total") > cleans_before, 60,
               "the new leader to count its clean")
