"""A KIP-848 member (confluent-kafka, group.protocol=consumer, with rebalance callbacks) that
changes its subscription in bursts, with an unsubscribe right after a subscribe while the
coordinator is revoking partitions from it, keeps heartbeating: it reaches every assignment its
subscriptions call for and consumes what is produced afterwards. This is librdkafka's test
0045 subscribe_many_updates in small. librdkafka 2.16 loses its rejoin when the revocation is
answered before the application's burst is processed (rd_kafka_rebalance_op_incr resets
rkcg_rebalance_rejoin) and then stays silent; Kafka's coordinator answers a group-changing
heartbeat after its write linger, and so does ours (--group-coordinator-append-linger-ms)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer

import confluent_helpers as ck
from support import Deadline, index_of, unique_topic

TOPICS = 12
WINDOW = 5
PARTITIONS = 4
PER_PARTITION = 5
WORK_S = 0.003


def wait_for_assignment(consumer: Consumer, expected: set[tuple[str, int]], what: str) -> None:
    """Polls (which runs the rebalance callbacks) until the assignment is `expected`."""
    deadline = Deadline(30, what)
    while True:
        got = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        if got == expected:
            return
        deadline.check(f"assigned {sorted(got)}, expected {sorted(expected)}")
        consumer.poll(0.1)


def run_burst(broker) -> None:
    base = unique_topic("kip848-burst")
    topics = [f"{base}-{i}" for i in range(TOPICS)]
    for topic in topics:
        ck.create_topic(broker, topic, PARTITIONS)

    callbacks: list[str] = []
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap, "group.id": base, "group.protocol": "consumer",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })
    try:
        def on_assign(_c, partitions):
            callbacks.append(f"assign {len(partitions)}")

        def on_revoke(_c, partitions):
            callbacks.append(f"revoke {len(partitions)}")

        # As 0045: windows of WINDOW topics sliding by one, an unsubscribe right after every
        # 7th subscribe, the assignment checked every 5th step and at the end.
        for i in range(TOPICS):
            window = topics[i:i + WINDOW]
            consumer.subscribe(window, on_assign=on_assign, on_revoke=on_revoke)
            unsubscribe = i % 7 == 0
            if unsubscribe:
                consumer.unsubscribe()
            else:
                # The application's own work between two subscribes: long enough for an answer
                # given at once to arrive first, shorter than Kafka's (and our) write linger.
                time.sleep(WORK_S)
            if i % 5 == 0 or i == TOPICS - 1:
                expected = set() if unsubscribe else {(t, p) for t in window for p in range(PARTITIONS)}
                wait_for_assignment(consumer, expected, f"step {i}'s assignment")
        assert any(c.startswith("revoke") for c in callbacks), "no revocation reached the application: the burst proved nothing"

        last = topics[TOPICS - 1]
        for p in range(PARTITIONS):
            ck.produce_indexed(broker, last, range(p * 100, p * 100 + PER_PARTITION), partition=p)
        expected_values = {p * 100 + k for p in range(PARTITIONS) for k in range(PER_PARTITION)}
        values: set[int] = set()
        deadline = Deadline(60, "the records produced after the burst")
        while values != expected_values:
            deadline.check(f"consumed {len(values)} of {len(expected_values)}")
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                assert msg.topic() == last
                values.add(index_of(msg.value()))
    finally:
        consumer.close()


@pytest.mark.timeout_seconds(240)
def test_subscription_burst_keeps_the_member_heartbeating(broker_factory):
    run_burst(broker_factory(extra_args=["--group-consumer-heartbeat-interval-ms", "500"]))
