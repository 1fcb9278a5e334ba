"""A transaction committed while the postgres engine's database is away: the coordinator answers
EndTxn with a code librdkafka retries (COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR, as Kafka's
coordinator turns a failed transaction-log append into), never KAFKA_STORAGE_ERROR, on which
librdkafka gives the commit up as a permanent failure. Once the database is back, the commit
lands and a read_committed reader sees every record of it once. Found by the cluster simulation
(Tests/OnceBrokerTests/Simulation/Cluster)."""

from __future__ import annotations

import threading

from confluent_kafka import KafkaException

import confluent_helpers as ck
from support import index_of, key_for, record_count, scaled_timeout, unique_topic, value_for
from test_postgres_cluster import pg, start  # noqa: F401  (the module's PostgreSQL fixture)


def test_a_commit_while_the_database_is_away_is_retried_and_lands_once(pg, broker_factory):  # noqa: F811
    url = pg.new_database()
    broker = start(broker_factory, url, 1)
    topic = unique_topic("pg-commit-outage")
    ck.create_topic(broker, topic, 2)
    producer = ck.producer(broker, **{"transactional.id": unique_topic("outage"), "transaction.timeout.ms": 120_000})
    producer.init_transactions(scaled_timeout(30))
    n = record_count(200)
    producer.begin_transaction()
    for i in range(n):
        producer.produce(topic, key=key_for(i), value=value_for(i), partition=i % 2)
    assert producer.flush(scaled_timeout(30)) == 0

    pg.stop()
    # The database comes back while the commit is being retried; the test waits on the commit,
    # never on the clock.
    back = threading.Timer(3.0, pg.start)
    back.start()
    try:
        producer.commit_transaction(scaled_timeout(120))
    except KafkaException as e:
        raise AssertionError(f"the commit was given up instead of retried: {e}") from e
    finally:
        back.join()

    assert "transaction log failure" in broker.log_text(), "the commit never met the outage: the test proved nothing"
    records = ck.read_to_end(broker, topic, [0, 1], **{"isolation.level": "read_committed"})
    assert sorted(index_of(r.value) for r in records) == list(range(n))
