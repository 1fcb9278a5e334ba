"""A transaction committed while the postgres engine's database is away: the coordinator answers
EndTxn with a code librdkafka retries (COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR, as Kafka's
coordinator turns a failed transaction-log append into), never KAFKA_STORAGE_ERROR, on which
librdkafka gives the commit up as a permanent failure. Once the database is back, the commit
lands and a read_committed reader sees every record of it once. Found by the cluster simulation
(Tests/OnceBrokerTests/Simulation/Cluster)."""

from __future__ import annotations

import threading
import time

from confluent_kafka import KafkaException

import confluent_helpers as ck
from support import Deadline, index_of, key_for, record_count, scaled_timeout, unique_topic, value_for
from test_fencing import Client, add_partition
from test_postgres_cluster import pg, start  # noqa: F401  (the module's PostgreSQL fixture)

# COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS:
# what a client retries.
RETRIABLE = {15, 16, 14, 51}


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


def test_an_add_partitions_retried_while_the_database_is_away_is_not_answered_from_memory(pg, broker_factory):  # noqa: F811
    """An AddPartitionsToTxn whose record the engine accepted but could not commit is answered
    COORDINATOR_NOT_AVAILABLE; its retry must not be answered NONE from the coordinator's memory
    while that record is still not in the database (a coordinator moving meanwhile would never
    know the partition joined). Found by the cluster simulation once its transactions spanned
    brokers (seed 277)."""
    url = pg.new_database()
    broker = start(broker_factory, url, 1)
    topic = unique_topic("pg-add-outage")
    ck.create_topic(broker, topic, 1)
    tid = unique_topic("add-outage")
    client = Client(broker)
    try:
        deadline = Deadline(scaled_timeout(30), "InitProducerId")
        while (init := client.init_producer_id(tid)).error_code != 0:
            deadline.check()
            time.sleep(0.1)
        pg.stop()
        first = add_partition(client, tid, topic, init.producer_id, init.producer_epoch)
        retried = add_partition(client, tid, topic, init.producer_id, init.producer_epoch)
        pg.start()
        assert first != 0, "the database was away, yet the addition was acknowledged"
        assert retried != 0, "the retry was answered from memory while its record was not in the database"
        failures = [line for line in broker.log_text().splitlines() if "transaction log failure" in line]
        assert any("outcomeUnknown" in line for line in failures), (
            f"the addition was refused before the engine accepted its record: the test proved nothing ({failures})")
        # Once the database is back the retry lands: the addition is acknowledged.
        deadline = Deadline(scaled_timeout(60), "the addition once the database is back")
        while (code := add_partition(client, tid, topic, init.producer_id, init.producer_epoch)) != 0:
            assert code in RETRIABLE, f"the addition failed with {code} instead of being retried"
            deadline.check()
            time.sleep(0.2)
    finally:
        client.close()
