"""The seed document's exactly-once read-process-write loop, run as its own process so a test can
SIGKILL it at any moment:

    python3 eos_processor.py kafka-python|confluent|confluent-consumer BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID

(confluent-consumer: librdkafka with KIP-848's group.protocol=consumer, so the offsets it sends to
the transaction are checked against its member epoch.)

It consumes INPUT with read_committed in group GROUP, and for each poll writes the transformed
records to OUTPUT and commits the input offsets in the same transaction (send_offsets_to_transaction),
as the seed shows, batched per poll (the seed's performance advice). Prints "ready" once it has
initialised its transactions and "committed N" after each commit.
"""

from __future__ import annotations

import sys

SESSION_TIMEOUT_MS = 6000


def transform(value: bytes) -> bytes:
    return b"processed:" + value


def run_kafka_python(bootstrap: str, source: str, sink: str, group: str, transactional_id: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id, enable_idempotence=True)
    consumer = KafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=500,
        max_poll_records=200,
    )
    producer.init_transactions()
    print("ready", flush=True)
    while True:
        batches = consumer.poll(timeout_ms=500)
        if not batches:
            continue
        try:
            producer.begin_transaction()
            offsets = {}
            for tp, records in batches.items():
                for message in records:
                    producer.send(sink, key=message.key, value=transform(message.value))
                offsets[TopicPartition(tp.topic, tp.partition)] = OffsetAndMetadata(records[-1].offset + 1, None, -1)
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            producer.commit_transaction()
            print("committed", sum(len(r) for r in batches.values()), flush=True)
        except Exception:
            producer.abort_transaction()
            raise


def run_confluent(
    bootstrap: str, source: str, sink: str, group: str, transactional_id: str, consumer_protocol: bool = False
) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id, "linger.ms": 5})
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    }
    if consumer_protocol:
        config["group.protocol"] = "consumer"
    else:
        config |= {"session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 500}
    consumer = Consumer(config)
    consumer.subscribe([source])
    producer.init_transactions(30)
    print("ready", flush=True)
    while True:
        messages = [m for m in consumer.consume(500, 0.5) if m.error() is None]
        if not messages:
            continue
        producer.begin_transaction()
        last: dict[int, int] = {}
        for m in messages:
            producer.produce(sink, key=m.key(), value=transform(m.value()))
            last[m.partition()] = m.offset()
        offsets = [TopicPartition(source, p, o + 1) for p, o in last.items()]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        print("committed", len(messages), flush=True)


if __name__ == "__main__":
    client, *args = sys.argv[1:]
    if client == "confluent-consumer":
        run_confluent(*args, consumer_protocol=True)
    else:
        {"kafka-python": run_kafka_python, "confluent": run_confluent}[client](*args)
