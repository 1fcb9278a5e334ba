"""Transactions across a cluster of three `once broker --storage postgres` processes: the
transaction coordinator (the leader of `__transaction_state-0`) writes markers to partitions other
brokers lead through WriteTxnMarkers, and each partition leader checks a transactional write with
the coordinator through AddPartitionsToTxn (KIP-890) before appending it."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import confluent_helpers as ck
import kafka_wire as wire
from once_broker import broker_binary
from support import Deadline, index_of, record_count, scaled_timeout, unique_topic, wait_until
from test_verify import summary
from test_postgres_cluster import SESSION, lease, leaders_in_metadata, pg, spread, three  # noqa: F401  (pg is a fixture)

HERE = Path(__file__).resolve().parent
WRITE_TXN_MARKERS = 27
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
INVALID_REQUEST = 42
INVALID_PRODUCER_EPOCH = 47


def bootstrap(brokers) -> str:
    return ",".join(b.bootstrap for b in brokers)


def spread_topic(pg, broker_factory, partitions: int = 6):
    topic = unique_topic("cluster-txn")
    url, brokers = three(pg, broker_factory, {topic: partitions})
    def led_by_all() -> dict[int, int] | None:
        leaders = leaders_in_metadata(brokers[0], topic)
        return leaders if set(leaders.values()) == {1, 2, 3} else None

    leaders = wait_until(led_by_all, 60, "the topic's partitions led by all three brokers")
    return url, brokers, topic, leaders


def txn_producer(brokers, tid: str) -> Producer:
    producer = Producer({
        "bootstrap.servers": bootstrap(brokers), "transactional.id": tid, "linger.ms": 5,
        "transaction.timeout.ms": 60000, "message.timeout.ms": 60000,
    })
    producer.init_transactions(scaled_timeout(60))
    return producer


class Cluster:
    """What the confluent helpers take for a broker: a bootstrap list naming several."""

    def __init__(self, brokers) -> None:
        self.bootstrap = bootstrap(brokers)


def read_committed(brokers, topic: str, partitions: int) -> list[bytes]:
    return [r.value for r in ck.read_to_end(
        Cluster(brokers), topic, range(partitions), seconds=scaled_timeout(120), **{"isolation.level": "read_committed"})]


def stable_at_end(brokers, topic: str, partition: int) -> bool:
    """Whether the partition's last stable offset is its high watermark: no transaction open there."""
    committed = ck.consumer(Cluster(brokers), **{"isolation.level": "read_committed"})
    try:
        lso = committed.get_watermark_offsets(TopicPartition(topic, partition), timeout=20, cached=False)[1]
    finally:
        committed.close()
    return lso == ck.watermarks(Cluster(brokers), topic, partition)[1]


def test_a_transaction_over_partitions_led_by_three_brokers_commits_and_aborts(pg, broker_factory):
    url, brokers, topic, leaders = spread_topic(pg, broker_factory)
    coordinator, _ = lease(pg, url, "__transaction_state", 0)
    assert any(node != coordinator for node in leaders.values()), "some partition is led away from the coordinator"
    producer = txn_producer(brokers, unique_topic("tid-spread"))
    committed: list[bytes] = []
    for txn in range(12):
        producer.begin_transaction()
        values = []
        for p in leaders:
            for i in range(5):
                values.append(f"t{txn}-p{p}-{i}".encode())
                producer.produce(topic, value=values[-1], partition=p)
        if txn % 3 == 2:
            producer.abort_transaction(scaled_timeout(30))
        else:
            producer.commit_transaction(scaled_timeout(30))
            committed += values
    # The commit is answered before the markers for other leaders land (as Kafka's), so the last
    # transaction's records show once they do.
    seen = wait_until(lambda: (lambda got: got if len(got) >= len(committed) else None)(
        read_committed(brokers, topic, len(leaders))), scaled_timeout(60), "the last transaction's markers")
    assert sorted(seen) == sorted(committed), "exactly the committed records, each once"
    # Every partition's last stable offset reached its end: no marker is missing anywhere.
    for p in leaders:
        wait_until(lambda: stable_at_end(brokers, topic, p), scaled_timeout(60), f"partition {p}'s LSO reaching its end")


@pytest.mark.timeout_seconds(420)
def test_sigkill_of_the_transaction_coordinator_mid_run_leaves_every_committed_record_once(pg, broker_factory):
    url, brokers, topic, leaders = spread_topic(pg, broker_factory)
    coordinator, _ = lease(pg, url, "__transaction_state", 0)
    survivors = [b for n, b in zip((1, 2, 3), brokers) if n != coordinator]
    committed: list[bytes] = []
    uncertain: list[list[bytes]] = []
    stop = threading.Event()
    failures: list[str] = []
    transactions = {"done": 0}

    def run() -> None:
        tid = unique_topic("tid-failover")
        producer = txn_producer(survivors, tid)
        txn = 0
        while not stop.is_set():
            values = [f"t{txn}-p{p}".encode() for p in leaders]
            txn += 1
            try:
                producer.begin_transaction()
                for p, value in zip(leaders, values):
                    producer.produce(topic, value=value, partition=p)
                producer.commit_transaction(scaled_timeout(60))
                committed.extend(values)
                transactions["done"] += 1
            except KafkaException as e:
                error = e.args[0]
                uncertain.append(values)
                if error.txn_requires_abort():
                    try:
                        producer.abort_transaction(scaled_timeout(60))
                    except KafkaException as again:
                        failures.append(f"abort failed: {again}")
                        return
                elif error.retriable():
                    continue
                else:
                    # Fatal (fenced or a lost answer to commit): a new instance fences this one.
                    producer = txn_producer(survivors, tid)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        wait_until(lambda: transactions["done"] >= 5, scaled_timeout(60), "transactions before the kill")
        brokers[coordinator - 1].kill9()
        wait_until(lambda: lease(pg, url, "__transaction_state", 0)[0] != coordinator, 60, "the coordinator moving")
        before = transactions["done"]
        wait_until(lambda: transactions["done"] >= before + 5, scaled_timeout(120), "transactions after the failover")
    finally:
        stop.set()
        worker.join(scaled_timeout(180))
    assert not worker.is_alive(), "the producer's last transaction hung"
    assert not failures, failures
    # The last commit's markers for other leaders may still be on their way.
    seen = wait_until(lambda: (lambda got: got if set(committed) <= set(got) else None)(
        read_committed(survivors, topic, len(leaders))), scaled_timeout(60), "every committed record")
    assert len(seen) == len(set(seen)), "no record twice"
    # A transaction whose commit answer was lost is there whole or not at all.
    for values in uncertain:
        present = [v in set(seen) for v in values]
        assert all(present) or not any(present), values
    assert set(seen) <= set(committed) | {v for values in uncertain for v in values}
    # The last stable offset moved past every transaction, those the failover interrupted included.
    for p in leaders:
        wait_until(lambda: stable_at_end(survivors, topic, p), scaled_timeout(60), f"partition {p}'s LSO reaching its end")


def transaction_state(brokers, tid: str) -> str:
    """The coordinator's state for `tid`, as `once txn describe` (DescribeTransactions) shows it."""
    out = subprocess.run(
        [str(broker_binary()), "txn", "describe", tid, "--bootstrap-server", bootstrap(brokers)],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("state:"))


@pytest.mark.timeout_seconds(420)
def test_a_commit_is_answered_while_a_partition_leader_is_paused_and_its_markers_land_once_it_wakes(pg, broker_factory):
    """Kafka's coordinator answers EndTxn once the prepare record is written and sends the markers
    afterwards. The leader of one partition of the transaction is SIGSTOPped right before the
    commit: the commit is answered all the same (the inter-broker request timeout is far longer
    than the commit's, so a coordinator waiting for that leader's answer would fail it), the
    transaction stays PrepareCommit while the paused leader holds its lease (the session is long,
    so it keeps it), the producer's next transaction waits on CONCURRENT_TRANSACTIONS, and once
    the leader wakes its marker lands and every committed record is read once."""
    topic = unique_topic("cluster-txn-pause")
    url = pg.new_database()
    session = ["--broker-session-timeout-ms", "600000", "--broker-heartbeat-interval-ms", "300",
               "--inter-broker-request-timeout-ms", "600000"]

    def start(node: int):
        return broker_factory(extra_args=["--storage", "postgres", "--postgres-url", url, "--node-id", str(node), *session])

    first = start(1)
    ck.create_topic(first, topic, 6)
    brokers = [first, start(2), start(3)]
    wait_until(lambda: spread(pg, url, [1, 2, 3]), 60, "leadership spread over the three brokers")
    leaders = wait_until(
        lambda: (lambda m: m if set(m.values()) == {1, 2, 3} else None)(leaders_in_metadata(brokers[0], topic)), 60,
        "the topic's partitions led by all three brokers")
    coordinator, _ = lease(pg, url, "__transaction_state", 0)
    paused_node = next(node for node in (1, 2, 3) if node != coordinator)
    by_leader = {node: next(p for p, n in leaders.items() if n == node) for node in (1, 2, 3)}
    paused = brokers[paused_node - 1]
    live = [b for node, b in zip((1, 2, 3), brokers) if node != paused_node]
    live_partitions = [p for node, p in by_leader.items() if node != paused_node]
    tid = unique_topic("tid-pause")
    producer = txn_producer(live, tid)
    producer.begin_transaction()
    first_txn = {p: f"first-p{p}".encode() for p in by_leader.values()}
    for p, value in first_txn.items():
        producer.produce(topic, value=value, partition=p)
    assert producer.flush(scaled_timeout(30)) == 0
    second_txn = [f"second-p{p}".encode() for p in live_partitions]
    outcome: dict[str, object] = {}

    def next_transaction() -> None:
        try:
            producer.begin_transaction()
            for p, value in zip(live_partitions, second_txn):
                producer.produce(topic, value=value, partition=p)
            producer.commit_transaction(scaled_timeout(180))
            outcome["committed"] = True
        except KafkaException as e:
            outcome["error"] = e

    os.kill(paused.process.pid, signal.SIGSTOP)
    worker = threading.Thread(target=next_transaction)
    try:
        producer.commit_transaction(scaled_timeout(60))
        # The coordinator's own marker (written before the answer) and the live leader's (sent
        # right after it) land; the paused leader's cannot, so the transaction stays prepared.
        expected = sorted(first_txn[p] for p in live_partitions)
        wait_until(lambda: sorted(read_committed_partitions(live, topic, live_partitions)) == expected,
                   scaled_timeout(60), "the live leaders' markers")
        assert transaction_state(live, tid) == "PrepareCommit"
        worker.start()
        assert transaction_state(live, tid) == "PrepareCommit"
        assert worker.is_alive(), "the next transaction committed while the last one was still prepared"
    finally:
        os.kill(paused.process.pid, signal.SIGCONT)
    worker.join(scaled_timeout(240))
    assert not worker.is_alive(), "the next transaction never committed"
    assert outcome == {"committed": True}, outcome
    assert lease(pg, url, topic, by_leader[paused_node])[0] == paused_node, "the paused leader kept its lease"
    everything = sorted([*first_txn.values(), *second_txn])
    # The second commit, too, is answered before its marker for the other live leader lands.
    seen = wait_until(lambda: (lambda got: got if len(got) >= len(everything) else None)(
        read_committed(brokers, topic, len(leaders))), scaled_timeout(60), "both transactions' markers")
    assert sorted(seen) == everything, "exactly the committed records, each once"
    for p in leaders:
        wait_until(lambda: stable_at_end(brokers, topic, p), scaled_timeout(60), f"partition {p}'s LSO reaching its end")
    wait_until(lambda: transaction_state(brokers, tid) == "CompleteCommit", scaled_timeout(60), "the second transaction complete")


def read_committed_partitions(brokers, topic: str, partitions: list[int]) -> list[bytes]:
    return [r.value for r in ck.read_to_end(
        Cluster(brokers), topic, partitions, seconds=scaled_timeout(120), **{"isolation.level": "read_committed"})]


def once_describe_producers(broker, topic: str, partition: int) -> list[list[str]]:
    out = subprocess.run(
        [str(broker_binary()), "producers", "describe", topic, "--partition", str(partition),
         "--bootstrap-server", broker.bootstrap], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.split("\t") for line in out.stdout.splitlines()[1:]]


def write_marker(broker, topic: str, partition: int, producer_id: int, epoch: int, commit: bool, coordinator_epoch: int) -> int:
    """A raw WriteTxnMarkers v2 for one partition, as a coordinator sends it; the partition's error code."""
    name = topic.encode()
    body = (wire.uvarint(2)
            + struct.pack(">qh?", producer_id, epoch, commit)
            + wire.uvarint(2) + wire.uvarint(len(name) + 1) + name + wire.uvarint(2) + struct.pack(">i", partition) + b"\x00"
            + struct.pack(">i", coordinator_epoch) + struct.pack(">b", 0) + b"\x00"
            + b"\x00")
    host, port = broker.bootstrap.split(":")
    with wire.connect((host, int(port))) as sock:
        sock.sendall(wire.frame(wire.request_header(WRITE_TXN_MARKERS, 2, 1, flexible=True) + body))
        payload = wire.read_frame(sock)
    pos = 5 + 1 + 8 + 1
    pos += 1 + payload[pos] - 1
    pos += 1
    (_index, error) = struct.unpack_from(">ih", payload, pos)
    return error


def test_write_txn_markers_from_a_coordinator_are_answered_per_partition(pg, broker_factory):
    url, brokers, topic, leaders = spread_topic(pg, broker_factory)
    by_node = dict(zip((1, 2, 3), brokers))
    partition = next(iter(leaders))
    leader = by_node[leaders[partition]]
    other = next(b for n, b in by_node.items() if n != leaders[partition])
    producer = txn_producer(brokers, unique_topic("tid-raw"))
    producer.begin_transaction()
    producer.produce(topic, value=b"open", partition=partition)
    producer.flush(30)
    assert read_committed(brokers, topic, len(leaders)) == []
    row = next(r for r in once_describe_producers(leader, topic, partition) if int(r[5]) >= 0)
    producer_id, epoch = int(row[1]), int(row[2])

    assert write_marker(other, topic, partition, producer_id, epoch, True, 0) == NOT_LEADER_OR_FOLLOWER
    assert write_marker(leader, unique_topic("missing"), 0, producer_id, epoch, True, 0) == UNKNOWN_TOPIC_OR_PARTITION
    assert write_marker(leader, topic, partition, producer_id, epoch, True, -1) == INVALID_REQUEST, "only a coordinator commits"
    assert write_marker(leader, topic, partition, producer_id, epoch - 1, True, 0) == INVALID_PRODUCER_EPOCH
    # A coordinator's COMMIT ends the partition's transaction: the record becomes readable.
    assert write_marker(leader, topic, partition, producer_id, epoch, True, 0) == NONE
    assert read_committed(brokers, topic, len(leaders)) == [b"open"]
    # The coordinator's own commit writes its marker too, harmlessly.
    producer.commit_transaction(scaled_timeout(30))
    assert read_committed(brokers, topic, len(leaders)) == [b"open"]


def start_processor(brokers, source: str, sink: str, group: str, tid: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "eos_processor.py"), "confluent", bootstrap(brokers), source, sink, group, tid],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline()
    assert line.strip() == "ready", f"processor did not start: {line}{process.stdout.read() if process.poll() is not None else ''}"
    return process


@pytest.mark.timeout_seconds(420)
def test_read_process_write_across_three_brokers_survives_a_partition_leader_sigkill(pg, broker_factory):
    """The seed's loop with its input, output and both coordinators spread over the brokers; the
    leader of output partitions that coordinates nothing is SIGKILLed while it runs. A processor
    that fails is restarted, as its supervisor would."""
    source, sink = unique_topic("cluster-eos-in"), unique_topic("cluster-eos-out")
    url, brokers = three(pg, broker_factory, {source: 3, sink: 3})
    n = record_count(5000)
    # Half the input before the kill and half after, so the loop runs across it.
    ck.produce_indexed(Cluster(brokers), source, range(n // 2), **{"enable.idempotence": True})
    coordinators = {lease(pg, url, "__transaction_state", 0)[0], lease(pg, url, "__consumer_offsets", 0)[0]}
    sink_leaders = leaders_in_metadata(brokers[0], sink)
    victim = next((node for node in sink_leaders.values() if node not in coordinators), None)
    victim = victim or next(node for node in sink_leaders.values() if node != lease(pg, url, "__transaction_state", 0)[0])
    survivors = [b for node, b in zip((1, 2, 3), brokers) if node != victim]
    group, tid = unique_topic("cluster-eos-group"), unique_topic("cluster-eos-tid")
    process = start_processor(brokers, source, sink, group, tid)
    restarts = 0
    try:
        # Kill once the loop has committed some of its output.
        wait_until(lambda: sum(ck.watermarks(Cluster(brokers), sink, p)[1] for p in range(3)) > 0, scaled_timeout(60),
                   "the processor's first output")
        brokers[victim - 1].kill9()
        ck.produce_indexed(Cluster(survivors), source, range(n // 2, n), **{"enable.idempotence": True})
        deadline = Deadline(scaled_timeout(300), f"{n} outputs under read_committed")
        while True:
            deadline.check(f"({restarts} processor restarts)")
            if process.poll() is not None:
                restarts += 1
                process = start_processor(survivors, source, sink, group, tid)
            values = read_committed(survivors, sink, 3)
            if len(values) >= n:
                break
            time.sleep(1)
    finally:
        process.kill()
        process.wait(10)
    indices = [index_of(v.removeprefix(b"processed:")) for v in values]
    assert len(indices) == len(set(indices)), f"{len(indices) - len(set(indices))} inputs output more than once"
    assert sorted(indices) == list(range(n)), "every input output exactly once"
    print(f"processor restarts: {restarts}")
    assert lease(pg, url, sink, next(p for p, node in sink_leaders.items() if node == victim))[0] != victim, \
        "the killed broker's partitions moved"


@pytest.mark.timeout_seconds(420)
def test_once_verify_finds_no_anomalies_while_each_broker_is_killed_and_restarted_in_turn(pg, broker_factory, tmp_path):
    """`once verify`'s transactional workload over the three brokers; each fault SIGKILLs the next
    broker in turn and restarts it, so the coordinators and partition leaders all move at least once."""
    url, brokers = three(pg, broker_factory)
    request, done = tmp_path / "fault-request", tmp_path / "fault-done"
    command = f"touch {request} && while [ ! -e {done} ]; do sleep 0.05; done && rm -f {done}"
    out, err = tmp_path / "verify.out", tmp_path / "verify.err"
    faults = 0
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [str(broker_binary()), "verify", "--bootstrap-server", bootstrap(brokers), "--fault-command", command,
             "--seconds", "40", "--partitions", "3", "--fault-interval-seconds", "4", "--drain-timeout-seconds", "150"],
            stdout=stdout, stderr=stderr, text=True)
        deadline = time.monotonic() + 390
        try:
            while process.poll() is None:
                assert time.monotonic() < deadline, "once verify still running"
                if request.exists():
                    request.unlink()
                    victim = brokers[faults % 3]
                    victim.kill9()
                    victim.restart()
                    faults += 1
                    done.touch()
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    result = subprocess.CompletedProcess(process.args, process.returncode, out.read_text(), err.read_text())
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-3000:]}"
    numbers = summary(result)
    assert faults >= 3, f"only {faults} faults: not every broker was killed"
    assert numbers["faults"] == faults
    assert numbers["anomalies"] == 0 and numbers["records"] > 0 and numbers["transactions"] > 0, numbers


SECRET = "broker-secret"
SASL_CLIENT = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
               "sasl.username": "broker", "sasl.password": SECRET}


def test_with_the_authorizer_on_brokers_authenticate_to_each_other_as_the_cluster(pg, broker_factory):
    """Three brokers with only a SASL_PLAINTEXT listener and `--authorizer on`: the markers and
    KIP-890 checks between them authenticate as User:broker, a super user, so a transaction over
    partitions every broker leads commits. Anonymous inter-broker requests would be refused
    CLUSTER_AUTHORIZATION_FAILED and the transaction could not complete."""
    url = pg.new_database()
    topic = unique_topic("cluster-txn-sasl")

    def start(node: int):
        return broker_factory(
            listeners=["SASL_PLAINTEXT"],
            env={"ONCE_INTER_BROKER_SASL_PASSWORD": SECRET, "ONCE_ADD_SCRAM": f"SCRAM-SHA-512=[name=broker,password={SECRET}]"},
            extra_args=["--storage", "postgres", "--postgres-url", url, "--node-id", str(node), *SESSION,
                        "--sasl-enabled-mechanisms", "SCRAM-SHA-512", "--authorizer", "on", "--super-users", "User:broker",
                        "--inter-broker-sasl-username", "broker"])

    first = start(1)
    admin = AdminClient({"bootstrap.servers": first.bootstrap, **SASL_CLIENT})
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(30)
    brokers = [first, start(2), start(3)]
    wait_until(lambda: spread(pg, url, [1, 2, 3]), 60, "leadership spread over the three brokers")

    def led_by_all() -> bool:
        md = AdminClient({"bootstrap.servers": bootstrap(brokers), **SASL_CLIENT}).list_topics(topic, timeout=10)
        return {p.leader for p in md.topics[topic].partitions.values()} == {1, 2, 3}

    wait_until(led_by_all, 60, "the topic's partitions led by all three brokers")
    producer = Producer({"bootstrap.servers": bootstrap(brokers), "transactional.id": unique_topic("tid-sasl"), **SASL_CLIENT})
    producer.init_transactions(scaled_timeout(60))
    producer.begin_transaction()
    for p in range(6):
        producer.produce(topic, value=f"committed-{p}".encode(), partition=p)
    producer.commit_transaction(scaled_timeout(60))
    consumer = ck.consumer(Cluster(brokers), **{"isolation.level": "read_committed", **SASL_CLIENT})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
        seen: list[bytes] = []
        deadline = Deadline(scaled_timeout(60), "the committed records")
        while len(seen) < 6:
            deadline.check(f"({len(seen)} read)")
            seen += [m.value() for m in consumer.consume(100, 0.5) if m.error() is None]
    finally:
        consumer.close()
    assert sorted(seen) == sorted(f"committed-{p}".encode() for p in range(6))
