"""`once broker --storage postgres` with real clients: exactly once through idempotent and
transactional producers and read_committed consumers, a broker SIGKILLed and restarted on the same
database, PostgreSQL crashed and restarted mid-run, a second broker on the same database fencing
the first, one database round trip per produce request, and group offsets through a SIGKILL. Each
test gets a fresh database in a private PostgreSQL cluster (postgres_cluster.py), which runs with
fsync=off."""

from __future__ import annotations

import os
import struct
import threading
import time
import urllib.request

import pytest
from confluent_kafka import Producer, TopicPartition

import confluent_helpers as ck
from kafka_wire import connect, frame, read_frame, request_header
from postgres_cluster import PostgresCluster
from record_batches import PRODUCE, PRODUCE_VERSION, batch, good_records
from support import index_of, key_for, record_count, scaled_timeout, unique_topic, value_for

NOT_LEADER_OR_FOLLOWER = 6
FETCH = 1


@pytest.fixture(scope="module")
def pg():
    if not PostgresCluster.available() and os.environ.get("ONCE_REQUIRE_SERVICES") != "1":
        pytest.skip("PostgreSQL's server is not installed (scripts/install-deps.sh installs it)")
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.cleanup()


def start_broker(broker_factory, url: str, node_id: int = 1):
    return broker_factory(extra_args=["--storage", "postgres", "--postgres-url", url, "--node-id", str(node_id)])


def read_indices(broker, topic: str, partitions, isolation: str) -> list[int]:
    records = ck.read_to_end(broker, topic, list(partitions), **{"isolation.level": isolation})
    return [index_of(r.value) for r in records]


def metric(broker, name: str) -> float:
    text = urllib.request.urlopen(broker.metrics_url, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(text.encode())) + text.encode()


def produce_to_partitions(address, topic: str, batches: dict[int, bytes], correlation_id: int = 1) -> dict[int, int]:
    """One Produce v8 request (acks=-1) carrying one batch per partition; the error code per partition."""
    body = _string(None) + struct.pack(">hi", -1, 30000) + struct.pack(">i", 1) + _string(topic)
    body += struct.pack(">i", len(batches))
    for partition, records in batches.items():
        body += struct.pack(">ii", partition, len(records)) + records
    with connect(address) as sock:
        sock.sendall(frame(request_header(PRODUCE, PRODUCE_VERSION, correlation_id, flexible=False) + body))
        payload = read_frame(sock)
    pos = 4 + 4  # correlation id, one topic
    (n,) = struct.unpack_from(">h", payload, pos)
    pos += 2 + n
    (count,) = struct.unpack_from(">i", payload, pos)
    pos += 4
    errors = {}
    for _ in range(count):
        index, code = struct.unpack_from(">ih", payload, pos)
        pos += 4 + 2 + 8 + 8 + 8
        (record_errors,) = struct.unpack_from(">i", payload, pos)
        pos += 4
        for _ in range(record_errors):
            (m,) = struct.unpack_from(">h", payload, pos + 4)
            pos += 4 + 2 + max(m, 0)
        (m,) = struct.unpack_from(">h", payload, pos)
        pos += 2 + max(m, 0)
        errors[index] = code
    return errors


def address(broker) -> tuple[str, int]:
    return ("127.0.0.1", broker.port)


def test_idempotent_and_transactional_produce_is_read_exactly_once(pg, broker_factory):
    broker = start_broker(broker_factory, pg.new_database())
    topic = unique_topic("pg-eos")
    ck.create_topic(broker, topic, 3)
    n = record_count(20_000)
    deliveries = ck.produce_indexed(broker, topic, range(n), **{"enable.idempotence": True})

    txn = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": unique_topic("pg-txn"), "linger.ms": 5})
    txn.init_transactions(30)
    committed, aborted = range(n, n + 300), range(n + 300, n + 600)
    for indices, commit in ((committed, True), (aborted, False)):
        txn.begin_transaction()
        for i in indices:
            txn.produce(topic, key=key_for(i), value=value_for(i))
        txn.flush(30)
        txn.commit_transaction(30) if commit else txn.abort_transaction(30)

    got = read_indices(broker, topic, range(3), "read_committed")
    assert len(got) == len(set(got)), "a record was read twice"
    assert set(got) == set(deliveries) | set(committed), (
        f"missing {len(set(deliveries) | set(committed) - set(got))}, aborted read {len(set(got) & set(aborted))}")
    # The aborted records are stored (read_uncommitted sees them), so read_committed filtered them.
    assert set(aborted) <= set(read_indices(broker, topic, range(3), "read_uncommitted"))


@pytest.mark.timeout_seconds(240)
def test_sigkill_keeps_every_acked_record_and_recovers_the_open_transaction(pg, broker_factory):
    broker = start_broker(broker_factory, pg.new_database())
    topic = unique_topic("pg-kill")
    ck.create_topic(broker, topic, 2)
    n = record_count(20_000)
    deliveries = ck.produce_indexed(broker, topic, range(n), **{"enable.idempotence": True})

    transactional_id = unique_topic("pg-open")
    txn = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id, "linger.ms": 5})
    txn.init_transactions(30)
    txn.begin_transaction()
    open_indices = range(n, n + 200)
    for i in open_indices:
        txn.produce(topic, key=key_for(i), value=value_for(i))
    assert txn.flush(30) == 0
    broker.kill9()
    broker.restart()

    # The open transaction's records were acknowledged, so they are stored; until its producer
    # comes back it holds the last stable offset.
    assert set(open_indices) <= set(read_indices(broker, topic, range(2), "read_uncommitted"))
    again = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id})
    again.init_transactions(60)  # fences the old epoch and aborts what it left open
    records = ck.read_to_end(broker, topic, [0, 1], **{"isolation.level": "read_committed"})
    ck.check_exactly_once_in_order(records, deliveries)


@pytest.mark.timeout_seconds(300)
def test_postgres_restart_mid_run_loses_nothing_acked(pg, broker_factory):
    broker = start_broker(broker_factory, pg.new_database())
    topic = unique_topic("pg-restart")
    ck.create_topic(broker, topic, 2)
    n = record_count(20_000)
    recorder = ck.DeliveryRecorder()
    producer = ck.producer(broker, **{"enable.idempotence": True})

    for i in range(n // 2):
        recorder.produce(producer, topic, i)
    assert producer.flush(scaled_timeout(60)) == 0
    restarted = threading.Event()

    def restart() -> None:
        pg.restart()
        restarted.set()

    restarter = threading.Thread(target=restart, daemon=True)
    restarter.start()
    # Records go out before, during and after the restart: until it is over, then n/2 more.
    i = n // 2
    after = None
    while after is None or i < after + n // 2:
        if after is None and restarted.is_set():
            after = i
        recorder.produce(producer, topic, i)
        i += 1
        if i % 100 == 0:
            time.sleep(0.005)
    assert producer.flush(scaled_timeout(120)) == 0
    restarter.join(120)
    recorder.check(i)
    assert broker.log_text().count("postgres connected") >= 2, "the broker never reconnected: the test proved nothing"
    records = ck.read_to_end(broker, topic, [0, 1])
    ck.check_exactly_once_in_order(records, recorder.deliveries)


def fetch_error(addr, topic: str, partition: int) -> int:
    """One Fetch v4 for offset 0; the partition's error code."""
    body = struct.pack(">iiiib", -1, 0, 1, 1 << 20, 0) + struct.pack(">i", 1) + _string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, 0, 1 << 20)
    with connect(addr) as sock:
        sock.sendall(frame(request_header(FETCH, 4, 7, flexible=False) + body))
        payload = read_frame(sock)
    pos = 4 + 4 + 4  # correlation id, throttle, one topic
    (n,) = struct.unpack_from(">h", payload, pos)
    pos += 2 + n + 4 + 4  # name, one partition, its index
    return struct.unpack_from(">h", payload, pos)[0]


def errors_answered(broker, api: str, error: str) -> float:
    text = urllib.request.urlopen(broker.metrics_url, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("once_errors_total{") and f'api="{api}"' in line and f'error="{error}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_produce_request_costs_one_round_trip(pg, broker_factory):
    broker = start_broker(broker_factory, pg.new_database())
    topic = unique_topic("pg-rounds")
    ck.create_topic(broker, topic, 3)
    before = metric(broker, "once_postgres_append_round_trips_total")
    requests = 20
    for r in range(requests):
        answer = produce_to_partitions(
            address(broker), topic, {p: batch(good_records(f"r{r}p{p}", 5), 5) for p in range(3)}, correlation_id=r + 1)
        assert answer == {0: 0, 1: 0, 2: 0}
    rounds = metric(broker, "once_postgres_append_round_trips_total") - before
    # Every statement is counted, the append rounds among them.
    assert metric(broker, "once_postgres_round_trips_total") >= metric(broker, "once_postgres_append_round_trips_total") > 0
    # One round per request carrying three partitions' batches; a commit per batch would be 60.
    assert 1 <= rounds <= requests, f"{rounds} append round trips for {requests} produce requests"
    assert [ck.watermarks(broker, topic, p)[1] for p in range(3)] == [5 * requests] * 3


def test_committed_group_offsets_survive_a_sigkill(pg, broker_factory):
    broker = start_broker(broker_factory, pg.new_database())
    topic = unique_topic("pg-offsets")
    ck.create_topic(broker, topic, 2)
    ck.produce_indexed(broker, topic, range(100), **{"enable.idempotence": True})
    group = unique_topic("pg-group")
    member = ck.consumer(broker, **{"group.id": group})
    try:
        offsets = [TopicPartition(topic, 0, 17), TopicPartition(topic, 1, 23)]
        member.commit(offsets=offsets, asynchronous=False)  # answered once __consumer_offsets committed
    finally:
        member.close()
    broker.kill9()
    broker.restart()
    reader = ck.consumer(broker, **{"group.id": group})
    try:
        got = reader.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=30)
    finally:
        reader.close()
    assert [(tp.partition, tp.offset) for tp in got] == [(0, 17), (1, 23)]
