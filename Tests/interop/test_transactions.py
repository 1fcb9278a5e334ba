"""Transactions and read_committed against a real broker, with the seed document's client shapes:
confluent-kafka (librdkafka) and kafka-python transactional producers, read_committed and
read_uncommitted consumers, zombie fencing, timeouts, and SIGKILL of the broker mid-transaction and
between EndTxn and its markers."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition

import confluent_helpers as ck
from support import Deadline, unique_topic


def txn_producer(broker, transactional_id: str, **overrides) -> Producer:
    config = {
        "bootstrap.servers": broker.bootstrap,
        "transactional.id": transactional_id,
        "linger.ms": 5,
        "retry.backoff.ms": 50,
        **overrides,
    }
    producer = Producer(config)
    producer.init_transactions(30)
    return producer


def read_values(broker, topic: str, isolation: str, partitions=(0,)) -> list[bytes]:
    """Every value a fresh consumer with this isolation level reads from the start to the end it sees."""
    return [r.value for r in ck.read_to_end(broker, topic, list(partitions), **{"isolation.level": isolation})]


def write_m1_to_m7(broker, topic: str):
    """The seed's m1..m7: m1 m2 plain, m3-m5 in an aborted transaction, m6 m7 committed. Returns
    the transactional producer and the plain one."""
    ck.create_topic(broker, topic, 1)
    p = txn_producer(broker, unique_topic("tid"))
    plain = ck.producer(broker)
    plain.produce(topic, value=b"m1")
    plain.produce(topic, value=b"m2")
    plain.flush(30)
    p.begin_transaction()
    for v in (b"m3", b"m4", b"m5"):
        p.produce(topic, value=v)
    p.flush(30)  # librdkafka purges unsent messages on abort; these must reach the log first
    p.abort_transaction(30)
    p.begin_transaction()
    for v in (b"m6", b"m7"):
        p.produce(topic, value=v)
    p.commit_transaction(30)
    return p, plain


def test_committed_visible_aborted_hidden_librdkafka(broker):
    topic = unique_topic("txn-ck")
    write_m1_to_m7(broker, topic)
    assert read_values(broker, topic, "read_committed") == [b"m1", b"m2", b"m6", b"m7"]
    assert read_values(broker, topic, "read_uncommitted") == [b"m1", b"m2", b"m3", b"m4", b"m5", b"m6", b"m7"]


def test_pending_transaction_holds_read_committed_at_lso(broker):
    """The seed's picture: m1 m2 committed, m3-m5 aborted, m6 m7 committed, m8 pending; a plain m9
    written after m8 waits behind it until the transaction ends."""
    topic = unique_topic("txn-lso")
    p, plain = write_m1_to_m7(broker, topic)
    p.begin_transaction()
    p.produce(topic, value=b"m8")
    p.flush(30)
    plain.produce(topic, value=b"m9")
    plain.flush(30)

    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap, "group.id": "lso-reader", "enable.auto.commit": False,
        "isolation.level": "read_committed", "enable.partition.eof": True,
    })
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen: list[bytes] = []
    deadline = Deadline(30, "read_committed reader reaching the LSO")
    eof = False
    while not eof:
        deadline.check()
        for msg in consumer.consume(100, 0.5):
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                eof = True
            else:
                seen.append(msg.value())
    assert seen == [b"m1", b"m2", b"m6", b"m7"], "the reader stops at m8's transaction"
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    assert high > 8

    p.commit_transaction(30)
    deadline = Deadline(30, "m8 and m9 after the commit")
    while len(seen) < 6:
        deadline.check()
        for msg in consumer.consume(100, 0.5):
            if msg.error() is None:
                seen.append(msg.value())
    consumer.close()
    assert seen == [b"m1", b"m2", b"m6", b"m7", b"m8", b"m9"]


def test_committed_visible_aborted_hidden_kafka_python(broker):
    topic = unique_topic("txn-kp")
    ck.create_topic(broker, topic, 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=unique_topic("kp-tid"), enable_idempotence=True)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, value=b"aborted-1")
    producer.send(topic, value=b"aborted-2")
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(topic, value=b"committed-1")
    producer.send(topic, value=b"committed-2")
    producer.commit_transaction()
    producer.close(10)

    def read(isolation: str) -> list[bytes]:
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level=isolation, enable_auto_commit=False)
        tp = KTopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        values: list[bytes] = []
        deadline = Deadline(30, f"{isolation} read")
        while consumer.position(tp) < end:
            deadline.check()
            for records in consumer.poll(500).values():
                values += [r.value for r in records]
        consumer.close()
        return values

    assert read("read_committed") == [b"committed-1", b"committed-2"]
    assert read("read_uncommitted") == [b"aborted-1", b"aborted-2", b"committed-1", b"committed-2"]


def test_zombie_is_fenced(broker):
    topic = unique_topic("txn-zombie")
    ck.create_topic(broker, topic, 1)
    tid = unique_topic("tid")
    zombie = txn_producer(broker, tid)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie")
    zombie.flush(30)

    successor = txn_producer(broker, tid)  # fences the zombie and aborts its open transaction
    successor.begin_transaction()
    successor.produce(topic, value=b"successor")
    successor.commit_transaction(30)

    with pytest.raises(KafkaException) as raised:
        zombie.produce(topic, value=b"zombie-2")
        zombie.commit_transaction(30)
    error = raised.value.args[0]
    assert error.fatal() or error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), error
    assert read_values(broker, topic, "read_committed") == [b"successor"]


@pytest.mark.timeout_seconds(90)
def test_abandoned_transaction_is_aborted_by_its_timeout(broker):
    topic = unique_topic("txn-timeout")
    ck.create_topic(broker, topic, 1)
    abandoned = txn_producer(broker, unique_topic("tid"), **{"transaction.timeout.ms": 3000})
    abandoned.begin_transaction()
    abandoned.produce(topic, value=b"abandoned")
    abandoned.flush(30)
    # The producer goes silent; the coordinator must abort on its own so readers are not stuck.
    plain = ck.producer(broker)
    plain.produce(topic, value=b"after")
    plain.flush(30)
    deadline = Deadline(30, "the timeout abort")
    while True:
        deadline.check()
        values = read_values(broker, topic, "read_committed")
        if values:
            break
        time.sleep(0.5)
    assert values == [b"after"]


@pytest.mark.timeout_seconds(120)
def test_broker_sigkill_mid_transaction(broker):
    """The broker dies with a transaction open; after restart the producer commits it."""
    topic = unique_topic("txn-kill")
    ck.create_topic(broker, topic, 1)
    p = txn_producer(broker, unique_topic("tid"), **{"message.timeout.ms": 60000})
    p.begin_transaction()
    for i in range(100):
        p.produce(topic, value=b"v%d" % i)
    p.flush(30)
    broker.kill9()
    broker.restart()
    for i in range(100, 200):
        p.produce(topic, value=b"v%d" % i)
    p.commit_transaction(60)
    assert read_values(broker, topic, "read_committed") == [b"v%d" % i for i in range(200)]


@pytest.mark.timeout_seconds(120)
def test_broker_sigkill_between_end_txn_and_markers(broker_factory):
    """The broker makes PrepareCommit durable and dies before any marker; the restarted broker
    writes them, and the producer's retried commit succeeds."""
    broker = broker_factory(env={"ONCE_FAULT_CRASH_BEFORE_MARKERS": "1"})
    topic = unique_topic("txn-prepare")
    ck.create_topic(broker, topic, 2)
    p = txn_producer(broker, unique_topic("tid"), **{"message.timeout.ms": 60000, "transaction.timeout.ms": 60000})
    p.begin_transaction()
    for i in range(50):
        p.produce(topic, value=b"v%d" % i, partition=i % 2)
    p.flush(30)
    assert read_values(broker, topic, "read_committed", partitions=(0, 1)) == []

    import threading

    result: list[object] = []
    committing = threading.Thread(target=lambda: result.append(_commit(p)), daemon=True)
    committing.start()
    deadline = Deadline(30, "the injected crash")
    while broker.is_alive():
        deadline.check()
        time.sleep(0.05)
    assert "exiting before writing markers" in broker.log_text()
    broker.env.pop("ONCE_FAULT_CRASH_BEFORE_MARKERS")
    broker.restart()
    committing.join(60)
    assert result == [None], f"commit after the broker's restart failed: {result}"
    values = sorted(read_values(broker, topic, "read_committed", partitions=(0, 1)), key=lambda v: int(v[1:]))
    assert values == [b"v%d" % i for i in range(50)]


def _commit(producer: Producer):
    try:
        producer.commit_transaction(60)
        return None
    except KafkaException as error:
        return error


def test_txn_cli_lists_describes_and_aborts_a_hung_transaction(broker):
    import subprocess
    from once_broker import broker_binary

    def once(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(broker_binary()), "txn", *args, "--bootstrap-server", broker.bootstrap],
            capture_output=True, text=True, timeout=60,
        )

    topic = unique_topic("txn-cli")
    ck.create_topic(broker, topic, 1)
    tid = unique_topic("hung")
    hung = txn_producer(broker, tid, **{"transaction.timeout.ms": 600000})
    hung.begin_transaction()
    hung.produce(topic, value=b"stuck")
    hung.flush(30)

    listed = once("list")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split("\t")[0] == tid and line.split("\t")[2] == "Ongoing" for line in listed.stdout.splitlines())
    described = once("describe", tid)
    assert described.returncode == 0, described.stderr
    assert "Ongoing" in described.stdout and f"{topic}-0" in described.stdout

    aborted = once("abort", tid)
    assert aborted.returncode == 0, aborted.stderr
    assert "fenced" in aborted.stdout
    # The reader is no longer held back, and the stuck record is gone for read_committed.
    plain = ck.producer(broker)
    plain.produce(topic, value=b"after")
    plain.flush(30)
    assert read_values(broker, topic, "read_committed") == [b"after"]
    again = once("abort", tid)
    assert again.returncode != 0 and "nothing to abort" in again.stderr
    missing = once("describe", "no-such-id")
    assert missing.returncode != 0 and "TRANSACTIONAL_ID_NOT_FOUND" in missing.stderr
