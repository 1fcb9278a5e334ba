"""The idempotent producer against a real broker: acknowledgements lost by a proxy that cuts the
connection after forwarding a Produce request, and a broker killed with SIGKILL mid-stream. Every
record must be stored exactly once, at contiguous offsets. The same lossy run with idempotence off
stores duplicates, which shows the check can fail."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from kafka import KafkaProducer

import confluent_helpers as ck
from lossy_proxy import LossyProxy
from support import Deadline, index_of, key_for, unique_topic, value_for

RECORDS = 12_000


def start_behind_proxy(broker_factory, *, loss_rate: float, seed: int, max_losses: int = 40):
    """A broker that advertises a lossy proxy's address, so every client connection goes through it."""
    broker = broker_factory(start=False)
    proxy = LossyProxy(broker.port, loss_rate=loss_rate, seed=seed, max_losses=max_losses)
    broker.extra_args += ["--advertised-listener", proxy.address]
    broker.start()
    return broker, proxy


def produce_all(config: dict, topic: str, count: int) -> list[str]:
    """Produces `count` indexed records with librdkafka; returns delivery errors."""
    errors: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))

    producer = Producer(config)
    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=key_for(i), value=value_for(i), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0, "records still unacknowledged"
    return errors


def stored_indices(broker, topic: str) -> list[tuple[int, int]]:
    """(offset, record index) of everything in partition 0, read straight from the broker."""
    return [(r.offset, index_of(r.value)) for r in ck.read_to_end(broker, topic, [0])]


def assert_exactly_once_contiguous(stored: list[tuple[int, int]], count: int) -> None:
    offsets = [o for o, _ in stored]
    indices = [i for _, i in stored]
    duplicates = len(indices) - len(set(indices))
    assert duplicates == 0, f"{duplicates} records stored more than once"
    assert sorted(indices) == list(range(count)), f"missing records: {sorted(set(range(count)) - set(indices))[:10]}"
    assert offsets == list(range(len(offsets))), "offsets are not contiguous from 0"
    assert indices == sorted(indices), "records are not in produce order"


def librdkafka_config(proxy: LossyProxy, idempotent: bool) -> dict:
    return {
        "bootstrap.servers": proxy.address,
        "enable.idempotence": idempotent,
        "acks": "all",
        # Small batches: many Produce requests, so many chances to lose a response.
        "linger.ms": 2,
        "batch.num.messages": 100,
        "max.in.flight.requests.per.connection": 5 if idempotent else 1,
        "retry.backoff.ms": 50,
        "reconnect.backoff.ms": 20,
        "message.timeout.ms": 120_000,
    }


@pytest.mark.timeout_seconds(240)
def test_librdkafka_idempotent_producer_survives_lost_acks(broker_factory):
    broker, proxy = start_behind_proxy(broker_factory, loss_rate=0.15, seed=1)
    topic = unique_topic("idem-lossy")
    ck.create_topic(broker, topic, 1)
    errors = produce_all(librdkafka_config(proxy, idempotent=True), topic, RECORDS)
    assert not errors, errors[:5]
    assert proxy.losses > 0, "the proxy lost no acknowledgement; the test proved nothing"
    assert_exactly_once_contiguous(stored_indices(broker, topic), RECORDS)


@pytest.mark.timeout_seconds(240)
def test_without_idempotence_lost_acks_store_duplicates(broker_factory):
    broker, proxy = start_behind_proxy(broker_factory, loss_rate=0.15, seed=1)
    topic = unique_topic("plain-lossy")
    ck.create_topic(broker, topic, 1)
    produce_all(librdkafka_config(proxy, idempotent=False), topic, RECORDS)
    assert proxy.losses > 0
    indices = [i for _, i in stored_indices(broker, topic)]
    assert set(indices) == set(range(RECORDS)), "even without idempotence nothing acknowledged is lost"
    assert len(indices) > RECORDS, "retries after lost acknowledgements should have written duplicates"


@pytest.mark.timeout_seconds(240)
def test_kafka_python_idempotent_producer_survives_lost_acks(broker_factory):
    broker, proxy = start_behind_proxy(broker_factory, loss_rate=0.15, seed=2)
    topic = unique_topic("idem-lossy-kp")
    ck.create_topic(broker, topic, 1)
    producer = KafkaProducer(
        bootstrap_servers=proxy.address,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        batch_size=4096,
        retry_backoff_ms=50,
        reconnect_backoff_ms=20,
        request_timeout_ms=30_000,
        delivery_timeout_ms=120_000,
    )
    futures = [producer.send(topic, key=key_for(i), value=value_for(i)) for i in range(RECORDS)]
    producer.flush(120)
    for f in futures:
        f.get(timeout=60)
    producer.close(10)
    assert proxy.losses > 0
    assert_exactly_once_contiguous(stored_indices(broker, topic), RECORDS)


@pytest.mark.timeout_seconds(240)
def test_idempotent_producer_survives_broker_sigkill(broker_factory):
    broker = broker_factory()
    topic = unique_topic("idem-kill")
    ck.create_topic(broker, topic, 1)
    errors: list[str] = []
    acked = [0]

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[0] += 1

    producer = Producer({
        "bootstrap.servers": broker.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "batch.num.messages": 200,
        "retry.backoff.ms": 50,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "message.timeout.ms": 120_000,
    })
    kills = 0
    for i in range(RECORDS):
        producer.produce(topic, key=key_for(i), value=value_for(i), on_delivery=on_delivery)
        producer.poll(0)
        if i in (RECORDS // 3, 2 * RECORDS // 3):
            # Let some requests be in flight, then kill the broker under them.
            deadline = Deadline(30, "some acknowledgements before the kill")
            while acked[0] < i // 2:
                deadline.check()
                producer.poll(0.05)
            broker.kill9()
            kills += 1
            broker.restart()
    assert producer.flush(120) == 0
    assert not errors, errors[:5]
    assert kills == 2
    assert_exactly_once_contiguous(stored_indices(broker, topic), RECORDS)


def test_producers_describe_shows_idempotent_producers(broker):
    import subprocess
    from once_broker import broker_binary

    topic = unique_topic("idem-describe")
    ck.create_topic(broker, topic, 2)
    errors = produce_all(
        {"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}, topic, 500
    )
    assert not errors
    out = subprocess.run(
        [str(broker_binary()), "producers", "describe", topic, "--bootstrap-server", broker.bootstrap],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.strip().splitlines()[1:]]
    assert {row[0] for row in rows} == {"0", "1"}, out.stdout
    assert len({row[1] for row in rows}) == 1, "one producer id wrote both partitions"
    assert all(row[2] == "0" for row in rows), "epoch 0"
    assert sum(int(row[3]) + 1 for row in rows) == 500, "last sequences account for every record"
