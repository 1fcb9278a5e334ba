"""OnceClient, the Swift client library, against a real broker and cross-checked with
confluent-kafka (librdkafka): records OnceClient produces are read by librdkafka and the other way
round, keys land on the partitions librdkafka's murmur2 partitioner picks, transactions commit and
abort as a read_committed librdkafka consumer sees them, a group of three OnceClient consumers
rebalances when one leaves, and the idempotent producer stores every record once through a lossy
proxy. The Swift side runs as `once perf scenario ...` and `once perf produce|consume`."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
from confluent_kafka import Producer

import confluent_helpers as ck
from lossy_proxy import LossyProxy
from once_broker import broker_binary
from support import Deadline, index_of, key_for, unique_topic, value_for

TIMEOUT = 120


def once(broker, *args: str, bootstrap: str | None = None) -> str:
    command = [str(broker_binary()), "perf", *args, "--bootstrap-server", bootstrap or broker.bootstrap]
    result = subprocess.run(command, capture_output=True, timeout=TIMEOUT)
    stdout, stderr = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}\nstdout:\n{stdout[-2000:]}\nstderr:\n{stderr[-4000:]}"
    return stdout


def swift_produce(broker, topic: str, count: int, *extra: str, bootstrap: str | None = None) -> list[tuple[int, int]]:
    """(partition, offset) per record index, as OnceClient's delivery reports gave them."""
    out = once(broker, "scenario", "produce", "--topic", topic, "--count", str(count), *extra, bootstrap=bootstrap)
    return [(int(p), int(o)) for p, o in (line.split() for line in out.splitlines())]


def swift_consume(broker, topic: str, *extra: str) -> list[tuple[int, int, str]]:
    out = once(broker, "scenario", "consume", "--topic", topic, *extra)
    rows = []
    for line in out.splitlines():
        partition, offset, value = line.split(" ", 2)
        rows.append((int(partition), int(offset), value))
    return rows


def test_records_produced_by_onceclient_are_read_by_librdkafka_on_the_same_partitions(broker):
    topic = unique_topic("oc-keyed")
    ck.create_topic(broker, topic, 4)
    count = 2000
    deliveries = swift_produce(broker, topic, count, "--keyed")
    assert len(deliveries) == count

    # librdkafka with the Java partitioner puts the same keys on the same partitions.
    reference = Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"})
    chosen: dict[int, int] = {}
    ref_topic = unique_topic("oc-keyed-ref")
    ck.create_topic(broker, ref_topic, 4)

    def remember(i):
        return lambda err, msg: chosen.__setitem__(i, msg.partition()) if err is None else None

    for i in range(257):
        reference.produce(ref_topic, key=key_for(i), value=b"x", on_delivery=remember(i))
    assert reference.flush(60) == 0
    for i, (partition, _) in enumerate(deliveries):
        assert partition == chosen[i % 257], f"record {i} (key {key_for(i)!r}) on {partition}, librdkafka chose {chosen[i % 257]}"

    records = ck.read_to_end(broker, topic, range(4))
    assert sorted(index_of(r.value) for r in records) == list(range(count))
    stored = {index_of(r.value): (r.partition, r.offset) for r in records}
    assert all(stored[i] == deliveries[i] for i in range(count)), "delivery reports disagree with the log"
    by_partition: dict[int, list[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_partition.setdefault(r.partition, []).append(index_of(r.value))
    for partition, indices in by_partition.items():
        assert indices == sorted(indices), f"partition {partition} is out of send order"


def test_records_produced_by_librdkafka_are_read_by_onceclient(broker):
    topic = unique_topic("oc-read")
    ck.create_topic(broker, topic, 3)
    count = 3000
    ck.produce_indexed(broker, topic, range(count))
    rows = swift_consume(broker, topic, "--count", str(count))
    assert sorted(index_of(v.encode()) for _, _, v in rows) == list(range(count))
    for partition in range(3):
        offsets = [o for p, o, _ in rows if p == partition]
        assert offsets == list(range(len(offsets))), f"partition {partition}: offsets not contiguous from 0"


def test_a_committed_onceclient_transaction_is_visible_and_an_aborted_one_is_not(broker):
    topic = unique_topic("oc-txn")
    ck.create_topic(broker, topic, 2)
    txn_id = unique_topic("oc-txn-id")
    swift_produce(broker, topic, 100, "--transactional-id", txn_id, "--start", "0")
    swift_produce(broker, topic, 100, "--transactional-id", txn_id, "--start", "100", "--abort")
    swift_produce(broker, topic, 50, "--transactional-id", txn_id, "--start", "200")

    committed = ck.read_to_end(broker, topic, range(2), **{"isolation.level": "read_committed"})
    assert sorted(index_of(r.value) for r in committed) == list(range(100)) + list(range(200, 250))
    everything = ck.read_to_end(broker, topic, range(2), **{"isolation.level": "read_uncommitted"})
    assert len(everything) == 250, "read_uncommitted sees the aborted records too"

    # OnceClient's own read_committed consumer agrees.
    rows = swift_consume(broker, topic, "--isolation", "read_committed", "--count", "150")
    assert sorted(index_of(v.encode()) for _, _, v in rows) == list(range(100)) + list(range(200, 250))


def test_an_onceclient_idempotent_producer_through_a_lossy_proxy_stores_every_record_once(broker_factory):
    broker = broker_factory(start=False)
    proxy = LossyProxy(broker.port, loss_rate=0.2, seed=11, max_losses=15)
    broker.extra_args += ["--advertised-listener", proxy.address]
    broker.start()
    try:
        topic = unique_topic("oc-lossy")
        ck.create_topic(broker, topic, 1)
        count = 6000
        # Small batches make many Produce requests, so the proxy has acknowledgements to drop.
        deliveries = swift_produce(broker, topic, count, "--batch-size", "2048", bootstrap=proxy.address)
        assert len(deliveries) == count
        assert proxy.losses > 0, (
            f"the proxy dropped no acknowledgement of {proxy.produce_requests} Produce requests; the test proved nothing")
        # The broker advertises the proxy, so the proxy stays up for the read.
        records = ck.read_to_end(broker, topic, [0])
    finally:
        proxy.close()
    indices = [index_of(r.value) for r in records]
    assert len(indices) == len(set(indices)), f"{len(indices) - len(set(indices))} records stored twice"
    assert sorted(indices) == list(range(count))
    assert [r.offset for r in records] == list(range(count))


class Member:
    """One `once perf scenario group-member` process and the assignments it has printed."""

    def __init__(self, broker, topic: str, group: str, assignor: str) -> None:
        command = [str(broker_binary()), "perf", "scenario", "group-member", "--topic", topic, "--group", group,
                   "--assignor", assignor, "--bootstrap-server", broker.bootstrap]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assignments: list[list[int]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            text = line.decode().strip()
            if text.startswith("assigned"):
                parts = text.split(" ", 1)
                partitions = [int(p) for p in parts[1].split(",")] if len(parts) > 1 and parts[1] else []
                with self.lock:
                    self.assignments.append(partitions)

    @property
    def current(self) -> list[int] | None:
        with self.lock:
            return self.assignments[-1] if self.assignments else None

    def leave(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def wait_for_cover(members: list[Member], partitions: int, seconds: float, what: str) -> None:
    deadline = Deadline(seconds, what)
    while True:
        current = [m.current for m in members]
        if all(c is not None for c in current):
            flat = [p for c in current for p in c]
            if sorted(flat) == list(range(partitions)) and all(c for c in current):
                return
        deadline.check(f"assignments so far: {current}")
        time.sleep(0.1)


@pytest.mark.parametrize("protocols", ["classic,consumer", "classic"])
def test_an_onceclient_group_of_three_rebalances_when_one_leaves(broker_factory, protocols):
    """OnceClient joins with KIP-848's protocol when the broker offers it, classically when not."""
    broker = broker_factory(extra_args=["--group-coordinator-rebalance-protocols", protocols])
    topic = unique_topic("oc-group")
    ck.create_topic(broker, topic, 6)
    group = unique_topic("oc-group-id")
    members = [Member(broker, topic, group, "range") for _ in range(3)]
    try:
        wait_for_cover(members, 6, 60, "three members sharing six partitions")
        assert sorted(len(m.current) for m in members) == [2, 2, 2]
        client = ck.admin(broker)
        listed = {g.group_id: g.type.name for g in client.list_consumer_groups(request_timeout=20).result(timeout=30).valid}
        assert listed[group] == ("CONSUMER" if "consumer" in protocols else "CLASSIC")
        leaving = members.pop(0)
        leaving.leave()
        wait_for_cover(members, 6, 60, "two members taking over the leaver's partitions")
        assert sorted(len(m.current) for m in members) == [3, 3]
    finally:
        for m in members:
            m.kill()


def test_once_perf_produce_and_consume_round_trip(broker):
    topic = unique_topic("oc-perf")
    ck.create_topic(broker, topic, 2)
    out = once(broker, "produce", "--topic", topic, "--num-records", "5000", "--record-size", "64", "--no-progress")
    assert "5000 records sent" in out and "p99" in out
    out = once(broker, "consume", "--topic", topic, "--num-records", "5000", "--no-progress")
    assert "5000 records consumed" in out
    out = once(broker, "produce", "--topic", topic, "--num-records", "2000", "--record-size", "10", "--no-progress",
               "--transactional-id", unique_topic("oc-perf-txn"), "--transaction-size", "500")
    assert "2000 records sent" in out and "4 transactions" in out
    records = ck.read_to_end(broker, topic, range(2), **{"isolation.level": "read_committed"})
    assert len(records) == 7000
