"""Topic metadata follows the database on every broker of a postgres cluster: a topic created
through one broker is produced to and consumed through the others at once (a broker finds it on a
miss and on its heartbeat, without a restart); one deleted through a broker disappears from all of
them, and partitions added through one appear on the others with a leader."""

from __future__ import annotations

import threading

from confluent_kafka.admin import NewPartitions

import confluent_helpers as ck
from support import index_of, record_count, scaled_timeout, unique_topic, value_for, wait_until
from test_postgres_cluster import leaders_in_metadata, pg, start  # noqa: F401 (pg is a fixture)


def test_a_topic_created_through_one_broker_is_served_through_the_others_at_once(pg, broker_factory):
    url = pg.new_database()
    brokers = [start(broker_factory, url, n) for n in (1, 2, 3)]
    topic = unique_topic("cluster-new-topic")
    # Created after all three started: before, only a restart made the others see it.
    ck.create_topic(brokers[0], topic, 3)
    n = record_count(4000)
    recorder = ck.DeliveryRecorder()

    def produce_through(broker, indexes: range) -> None:
        # Bootstrapped only at this broker, so its Metadata is what names the topic and leaders.
        producer = ck.producer(broker, **{"enable.idempotence": True, "allow.auto.create.topics": False})
        for i in indexes:
            recorder.produce(producer, topic, i)
        assert producer.flush(scaled_timeout(120)) == 0

    threads = [
        threading.Thread(target=produce_through, args=(brokers[1], range(0, n // 2))),
        threading.Thread(target=produce_through, args=(brokers[2], range(n // 2, n))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.check(n)
    for reader in brokers[1:]:
        records = ck.read_to_end(reader, topic, [0, 1, 2])
        # Each producer's records are in its own order; the two interleave.
        for indexes in (range(0, n // 2), range(n // 2, n)):
            ck.check_exactly_once_in_order(
                [r for r in records if index_of(r.value) in indexes], {i: recorder.deliveries[i] for i in indexes})


def test_deleting_and_growing_a_topic_through_one_broker_shows_on_the_others(pg, broker_factory):
    url = pg.new_database()
    brokers = [start(broker_factory, url, n) for n in (1, 2, 3)]
    grown, deleted = unique_topic("cluster-grown"), unique_topic("cluster-deleted")
    ck.create_topic(brokers[0], grown, 1)
    ck.create_topic(brokers[0], deleted, 1)
    for b in brokers[1:]:
        wait_until(lambda b=b: ck.partition_count(b, deleted) == 1, 30, f"{b.bootstrap} seeing {deleted}")

    client = ck.admin(brokers[1])
    client.delete_topics([deleted], operation_timeout=30)[deleted].result(timeout=60)
    client.create_partitions([NewPartitions(grown, 3)])[grown].result(timeout=60)
    live = {1, 2, 3}
    for b in (brokers[0], brokers[2]):
        wait_until(lambda b=b: ck.partition_count(b, deleted) is None, 30, f"{b.bootstrap} dropping {deleted}")
        wait_until(
            lambda b=b: set(leaders_in_metadata(b, grown)) == {0, 1, 2}
            and set(leaders_in_metadata(b, grown).values()) <= live,
            30, f"{b.bootstrap} naming a leader for each of {grown}'s 3 partitions")
    # The added partitions take records through a broker that did not add them.
    deliveries = ck.produce_indexed(brokers[2], grown, range(3), partition=2)
    values = [r.value for r in ck.read_to_end(brokers[0], grown, [2])]
    assert values == [value_for(i) for i in range(3)] and len(deliveries) == 3
