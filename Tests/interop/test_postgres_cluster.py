"""Three `once broker --storage postgres` processes over one database: membership (every broker's
Metadata names every live broker; a SIGKILLed one drops out when its heartbeat expires, a stopped
one at once; a second live broker with the same node id refuses to start), leadership (each
partition's leader and epoch come from its lease; a broker that does not lead a partition refuses
Produce, Fetch and ListOffsets with NOT_LEADER_OR_FOLLOWER, and a stale or future
currentLeaderEpoch is refused as Kafka refuses it), and failover (a SIGKILLed leader's leases move
at epoch+1 during idempotent produce with nothing acked lost; a stopped one's are released; a
SIGSTOPped leader woken after its lease moved never appends and steps down; PostgreSQL restarted
under three brokers loses nothing acked)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

import confluent_helpers as ck
from kafka_wire import connect, frame, read_frame, request_header
from postgres_cluster import PostgresCluster
from record_batches import batch, good_records
from support import record_count, scaled_timeout, unique_topic, wait_until
from test_postgres_storage import NOT_LEADER_OR_FOLLOWER, _string, address, fetch_error, produce_to_partitions

FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75
LIST_OFFSETS = 2
# Short enough that a SIGKILLed broker drops out quickly; the test waits for it, never times it.
SESSION = ["--broker-session-timeout-ms", "3000", "--broker-heartbeat-interval-ms", "300"]


@pytest.fixture(scope="module")
def pg():
    if not PostgresCluster.available() and os.environ.get("ONCE_REQUIRE_SERVICES") != "1":
        pytest.skip("PostgreSQL's server is not installed (scripts/install-deps.sh installs it)")
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.cleanup()


def start(broker_factory, url: str, node_id: int, start: bool = True):
    return broker_factory(
        start=start, extra_args=["--storage", "postgres", "--postgres-url", url, "--node-id", str(node_id), *SESSION])


def three(pg, broker_factory, topics: dict[str, int] | None = None):
    """Three brokers, once leadership has spread over them; `topics` are created through the
    first before the others start, since a broker loads the topic list from the database when it
    starts."""
    url = pg.new_database()
    first = start(broker_factory, url, 1)
    for topic, partitions in (topics or {}).items():
        ck.create_topic(first, topic, partitions)
    brokers = [first, *(start(broker_factory, url, n) for n in (2, 3))]
    wait_until(lambda: spread(pg, url, [1, 2, 3]), 60, "leadership spread over the three brokers")
    return url, brokers


def lease_counts(pg, url: str) -> tuple[dict[int, int], int]:
    """Live leases per holder, and how many lease rows there are (live or not)."""
    rows = pg.psql(
        "SELECT holder, count(*) FROM once.partition_leases WHERE expires_at > now() GROUP BY holder", database(url))
    total = int(pg.psql("SELECT count(*) FROM once.partition_leases", database(url)))
    return {int(h): int(c) for h, c in (line.split("|") for line in rows.splitlines() if line)}, total


def spread(pg, url: str, nodes: list[int]) -> bool:
    """Whether every lease is held, by the given brokers only, and evenly (counts differ by one at most)."""
    counts, total = lease_counts(pg, url)
    held = [counts.get(n, 0) for n in nodes]
    return set(counts) <= set(nodes) and sum(held) == total and max(held) - min(held) <= 1


def database(url: str) -> str:
    return url.rsplit("/", 1)[1]


def lease(pg, url: str, topic: str, partition: int) -> tuple[int, int]:
    holder, epoch = pg.psql(
        f"SELECT holder, leader_epoch FROM once.partition_leases WHERE topic = '{topic}' AND partition = {partition}",
        database(url)).split("|")
    return int(holder), int(epoch)


def brokers_in_metadata(broker) -> dict[int, int]:
    """Node id to advertised port, as this broker's Metadata answers."""
    md = ck.admin(broker).list_topics(timeout=10)
    return {b.id: b.port for b in md.brokers.values()}


def leaders_in_metadata(broker, topic: str) -> dict[int, int]:
    md = ck.admin(broker).list_topics(topic, timeout=10)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


def leader_epochs(broker, topic: str, partition: int) -> list[int]:
    """The leader epoch librdkafka reads from each record's batch header, in offset order."""
    client = ck.consumer(broker)
    epochs: list[int] = []
    try:
        client.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        while True:
            msg = client.poll(10)
            assert msg is not None, f"no end of {topic}[{partition}] after {len(epochs)} records"
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                return epochs
            epochs.append(msg.leader_epoch())
    finally:
        client.close()


def list_offsets_error(addr, topic: str, partition: int, current_leader_epoch: int) -> int:
    """One ListOffsets v4 (latest offset) carrying `current_leader_epoch`; the partition's error code."""
    body = struct.pack(">ib", -1, 0) + struct.pack(">i", 1) + _string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iiq", partition, current_leader_epoch, -1)
    with connect(addr) as sock:
        sock.sendall(frame(request_header(LIST_OFFSETS, 4, 8, flexible=False) + body))
        payload = read_frame(sock)
    pos = 4 + 4 + 4
    (n,) = struct.unpack_from(">h", payload, pos)
    pos += 2 + n + 4 + 4
    return struct.unpack_from(">h", payload, pos)[0]


def test_every_broker_names_every_live_broker_and_the_lease_holder_as_leader(pg, broker_factory):
    topic = unique_topic("cluster-md")
    url, brokers = three(pg, broker_factory, {topic: 3})
    expected = {n: b.port for n, b in zip((1, 2, 3), brokers)}
    for b in brokers:
        wait_until(lambda b=b: brokers_in_metadata(b) == expected, 30, f"{b.bootstrap} naming all three brokers")
    holders = {p: lease(pg, url, topic, p)[0] for p in range(3)}
    assert set(holders.values()) <= {1, 2, 3}
    for b in brokers:
        wait_until(lambda b=b: leaders_in_metadata(b, topic) == holders, 30, f"{b.bootstrap} naming the lease holders")


def test_a_non_leader_sends_clients_to_the_leader_and_epochs_are_checked(pg, broker_factory):
    topic = unique_topic("cluster-lead")
    url, brokers = three(pg, broker_factory, {topic: 1})
    holder, epoch = lease(pg, url, topic, 0)
    leader = brokers[holder - 1]
    others = [b for n, b in zip((1, 2, 3), brokers) if n != holder]
    for b in others:
        wait_until(lambda b=b: leaders_in_metadata(b, topic) == {0: holder}, 30, "the others seeing the lease")
        assert produce_to_partitions(address(b), topic, {0: batch(good_records("elsewhere", 1), 1)}) == {0: NOT_LEADER_OR_FOLLOWER}
        assert fetch_error(address(b), topic, 0) == NOT_LEADER_OR_FOLLOWER
        assert list_offsets_error(address(b), topic, 0, -1) == NOT_LEADER_OR_FOLLOWER
    assert produce_to_partitions(address(leader), topic, {0: batch(good_records("here", 2), 2)}) == {0: 0}
    assert list_offsets_error(address(leader), topic, 0, epoch) == 0
    assert list_offsets_error(address(leader), topic, 0, -1) == 0
    if epoch > 0:
        assert list_offsets_error(address(leader), topic, 0, epoch - 1) == FENCED_LEADER_EPOCH
    assert list_offsets_error(address(leader), topic, 0, epoch + 1) == UNKNOWN_LEADER_EPOCH
    values = [r.value for r in ck.read_to_end(others[0], topic, [0])]
    assert values == [b"here-v0", b"here-v1"]


@pytest.mark.timeout_seconds(300)
def test_brokers_started_in_turn_share_leadership_by_hand_off_under_an_idempotent_producer(pg, broker_factory):
    topic = unique_topic("cluster-join")
    url = pg.new_database()
    brokers = [start(broker_factory, url, 1)]
    ck.create_topic(brokers[0], topic, 6)
    # Alone over the database, the first leads everything.
    assert spread(pg, url, [1]) and lease_counts(pg, url)[0].get(1, 0) >= 6
    before = {p: lease(pg, url, topic, p) for p in range(6)}
    n = record_count(30_000)
    recorder = ck.DeliveryRecorder()
    producer = ck.producer(brokers[0], **{"enable.idempotence": True})
    for i in range(n):
        # The others join while records are in flight; each start returns once it serves.
        if i in (n // 3, 2 * n // 3):
            brokers.append(start(broker_factory, url, len(brokers) + 1))
        recorder.produce(producer, topic, i)
    assert producer.flush(scaled_timeout(120)) == 0
    recorder.check(n)
    wait_until(lambda: spread(pg, url, [1, 2, 3]), 60, "leadership spread over the three brokers")
    # Handed off, not taken at start: the joiners started without a lease another broker held.
    assert "handed off leadership" in brokers[0].log_text()
    after = {p: lease(pg, url, topic, p) for p in range(6)}
    for p in range(6):
        moved = after[p][0] != before[p][0]
        assert (after[p][1] > before[p][1]) if moved else (after[p] == before[p]), (before, after)
    holders = {p: holder for p, (holder, _) in after.items()}
    for b in brokers:
        wait_until(lambda b=b: leaders_in_metadata(b, topic) == holders, 30, f"{b.bootstrap} naming the lease holders")
    ck.check_exactly_once_in_order(ck.read_to_end(brokers[0], topic, list(range(6))), recorder.deliveries)


def test_a_killed_broker_drops_out_when_its_heartbeat_expires_and_a_stopped_one_at_once(pg, broker_factory):
    url, brokers = three(pg, broker_factory)
    ports = {n: b.port for n, b in zip((1, 2, 3), brokers)}
    wait_until(lambda: brokers_in_metadata(brokers[0]) == ports, 30, "all three in Metadata")
    brokers[1].kill9()
    del ports[2]
    wait_until(lambda: brokers_in_metadata(brokers[0]) == ports, 30, "the killed broker leaving Metadata")
    assert brokers[2].stop() == 0
    # The stopped broker deleted its row; the killed one's stays, expired, until its id registers again.
    assert pg.psql("SELECT node_id FROM once.brokers ORDER BY node_id", database(url)).split() == ["1", "2"]
    del ports[3]
    wait_until(lambda: brokers_in_metadata(brokers[0]) == ports, 30, "the stopped broker leaving Metadata")
    # A restart with the killed broker's id waits out its stale row, then joins.
    brokers[1].restart()
    ports[2] = brokers[1].port
    wait_until(lambda: brokers_in_metadata(brokers[0]) == ports, 30, "the restarted broker in Metadata")


def test_a_second_live_broker_with_the_same_node_id_refuses_to_start(pg, broker_factory):
    url = pg.new_database()
    first = start(broker_factory, url, 1)
    twin = start(broker_factory, url, 1, start=False)
    done = subprocess.run(twin.command(), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "node id 1" in line]
    assert len(lines) == 1 and "--node-id" in lines[0], done.stdout + done.stderr
    assert brokers_in_metadata(first) == {1: first.port}


@pytest.mark.timeout_seconds(300)
def test_sigkill_of_the_leader_during_idempotent_produce_moves_its_leases_and_loses_nothing(pg, broker_factory):
    topic = unique_topic("cluster-failover")
    url, brokers = three(pg, broker_factory, {topic: 3})
    before = {p: lease(pg, url, topic, p) for p in range(3)}
    killed = before[0][0]
    n = record_count(20_000)
    recorder = ck.DeliveryRecorder()
    producer = ck.producer(
        brokers[0], **{"bootstrap.servers": ",".join(b.bootstrap for b in brokers), "enable.idempotence": True})
    for i in range(n // 2):
        recorder.produce(producer, topic, i)
    producer.flush(0)
    brokers[killed - 1].kill9()
    for i in range(n // 2, n):
        recorder.produce(producer, topic, i)
    assert producer.flush(scaled_timeout(120)) == 0
    recorder.check(n)
    # The killed broker's leases moved to the live brokers, each at one epoch more; the others stayed.
    after = {p: lease(pg, url, topic, p) for p in range(3)}
    assert killed not in {holder for holder, _ in after.values()}
    for p in range(3):
        if before[p][0] == killed:
            assert after[p][1] == before[p][1] + 1, (before, after)
        else:
            assert after[p] == before[p], (before, after)
    assert {d.partition for d in recorder.deliveries.values()} == {0, 1, 2}
    records = ck.read_to_end(brokers[0], topic, [0, 1, 2])
    ck.check_exactly_once_in_order(records, recorder.deliveries)


def test_a_graceful_stop_releases_the_leases_to_the_live_brokers(pg, broker_factory):
    topic = unique_topic("cluster-stop")
    url, brokers = three(pg, broker_factory, {topic: 2})
    before = {p: lease(pg, url, topic, p) for p in range(2)}
    stopped = before[0][0]
    live = [n for n in (1, 2, 3) if n != stopped]
    assert brokers[stopped - 1].stop() == 0
    wait_until(lambda: spread(pg, url, live), 60, "the released leases taken by the live brokers")
    for p in range(2):
        holder, epoch = lease(pg, url, topic, p)
        assert holder in live
        assert epoch == before[p][1] + (1 if before[p][0] == stopped else 0), (before, p, holder, epoch)
    bootstrap = ",".join(brokers[n - 1].bootstrap for n in live)
    producer = ck.producer(brokers[live[0] - 1], **{"bootstrap.servers": bootstrap})
    for p in range(2):
        producer.produce(topic, value=b"after-stop", partition=p)
    assert producer.flush(60) == 0
    assert [r.value for r in ck.read_to_end(brokers[live[1] - 1], topic, [0, 1])] == [b"after-stop"] * 2


@pytest.mark.timeout_seconds(300)
def test_a_leader_paused_past_its_lease_never_appends_and_steps_down(pg, broker_factory):
    topic = unique_topic("cluster-pause")
    url, brokers = three(pg, broker_factory, {topic: 1})
    paused_node = lease(pg, url, topic, 0)[0]
    paused = brokers[paused_node - 1]
    assert produce_to_partitions(address(paused), topic, {0: batch(good_records("before", 2), 2)}) == {0: 0}
    os.kill(paused.process.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: lease(pg, url, topic, 0)[0] != paused_node, 60, "the paused leader's lease taken")
        holder, new_epoch = lease(pg, url, topic, 0)
        assert produce_to_partitions(address(brokers[holder - 1]), topic, {0: batch(good_records("new", 1), 1)}) == {0: 0}
    finally:
        os.kill(paused.process.pid, signal.SIGCONT)
    stored = pg.psql(f"SELECT count(*) FROM once.batches WHERE topic = '{topic}'", database(url))
    # Woken, it still believes it may lead until its next heartbeat; whichever it answers from, the
    # append is refused, in the database's transaction at the latest.
    assert produce_to_partitions(address(paused), topic, {0: batch(good_records("zombie", 1), 1)}) == {0: NOT_LEADER_OR_FOLLOWER}
    wait_until(lambda: "lost leadership" in paused.log_text(), 60, "the woken broker stepping down")
    wait_until(lambda: leaders_in_metadata(paused, topic) == {0: holder}, 60, "the woken broker naming the new leader")
    assert pg.psql(f"SELECT count(*) FROM once.batches WHERE topic = '{topic}'", database(url)) == stored
    values = [r.value for r in ck.read_to_end(brokers[holder - 1], topic, [0])]
    assert values == [b"before-v0", b"before-v1", b"new-v0"]
    # Each batch carries the epoch of the leader that wrote it.
    assert leader_epochs(brokers[holder - 1], topic, 0) == [new_epoch - 1] * 2 + [new_epoch]


@pytest.mark.timeout_seconds(300)
def test_a_postgres_restart_under_three_brokers_loses_nothing_acked(pg, broker_factory):
    topic = unique_topic("cluster-pg-restart")
    url, brokers = three(pg, broker_factory, {topic: 2})
    n = record_count(20_000)
    recorder = ck.DeliveryRecorder()
    producer = ck.producer(
        brokers[0], **{"bootstrap.servers": ",".join(b.bootstrap for b in brokers), "enable.idempotence": True})
    for i in range(n):
        if i == n // 2:
            producer.flush(0)
            pg.restart()
        recorder.produce(producer, topic, i)
    assert producer.flush(scaled_timeout(120)) == 0
    recorder.check(n)
    # Brokers reconnect when they next need the database; the ones serving the producer did.
    assert any(b.log_text().count("postgres connected") >= 2 for b in brokers), "no broker reconnected: the test proved nothing"
    ck.check_exactly_once_in_order(ck.read_to_end(brokers[0], topic, [0, 1]), recorder.deliveries)
