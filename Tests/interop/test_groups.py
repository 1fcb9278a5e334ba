"""Consumer groups with real clients: members share a topic's partitions, a SIGKILLed member's
partitions move to the survivors after its session times out and they resume from its committed
offsets; committed offsets survive a broker crash; librdkafka and kafka-python share one group."""

from __future__ import annotations

import subprocess

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from confluent_helpers import create_topic, produce_indexed
from group_member import Member, seen_values, wait_for_values
from once_broker import broker_binary
from support import Deadline, unique_topic, value_for, wait_until

PARTITIONS = 6
PER_PARTITION = 20


@pytest.fixture
def members():
    started: list[Member] = []
    yield started
    for member in started:
        member.stop()


def produce_to(broker, topic: str, partition: int, indices) -> None:
    produce_indexed(broker, topic, indices, partition=partition)


def indices_for(partition: int, start: int, count: int) -> range:
    """Record indices unique per partition, so a value tells which partition it was written to."""
    base = partition * 10_000
    return range(base + start, base + start + count)


def wait_for_split(live: list[Member], per_member: int, seconds: float = 60) -> dict[int, Member]:
    """Waits until each live member owns `per_member` partitions and together they own all of them."""

    def split():
        owners: dict[int, Member] = {}
        for m in live:
            assignment, _ = m.snapshot()
            if assignment is None or len(assignment) != per_member:
                return None
            for p in assignment:
                owners[p] = m
        return owners if len(owners) == PARTITIONS else None

    return wait_until(split, seconds, f"{len(live)} members owning {per_member} partitions each")




def run_failover(broker, members: list[Member], client: str) -> None:
    topic = unique_topic(f"groups-{client}")
    group = f"group-{topic}"
    create_topic(broker, topic, PARTITIONS)
    first = {p: indices_for(p, 0, PER_PARTITION) for p in range(PARTITIONS)}
    for p, indices in first.items():
        produce_to(broker, topic, p, indices)

    members.extend(Member(client, broker, topic, group) for _ in range(3))
    owners = wait_for_split(members, 2)
    expected = {value_for(i).decode() for r in first.values() for i in r}
    wait_for_values(members, expected)

    victim = members[0]
    victim_partitions = sorted(p for p, m in owners.items() if m is victim)
    _, victim_records = victim.snapshot()
    committed = {p: max(o for (q, o, _) in victim_records if q == p) + 1 for p in victim_partitions}
    victim.kill9()

    # Written while the victim is dead but still a member: only its committed offsets lead here.
    later = {p: indices_for(p, PER_PARTITION, 5) for p in victim_partitions}
    for p, indices in later.items():
        produce_to(broker, topic, p, indices)

    survivors = members[1:]
    wait_for_split(survivors, 3, seconds=60)
    expected |= {value_for(i).decode() for r in later.values() for i in r}
    wait_for_values(survivors + [victim], expected)

    for p in victim_partitions:
        taken_over = sorted(o for m in survivors for (q, o, _) in m.snapshot()[1] if q == p)
        assert taken_over, f"nobody consumed partition {p} after the kill"
        assert taken_over[0] == committed[p], (
            f"partition {p}: survivors started at {taken_over[0]}, the victim had committed {committed[p]}")

    # Every record exactly once: commits were synchronous, and nothing was in flight at the kill.
    values = seen_values(members)
    duplicates = {v for v in values if values.count(v) > 1}
    assert not duplicates, f"records consumed twice: {sorted(duplicates)[:5]}"
    assert set(values) == expected
    for m in members:
        assert not m.errors, f"{m.client} member reported errors: {m.errors[:3]}"


@pytest.mark.timeout_seconds(150)
def test_confluent_members_split_partitions_and_take_over_after_a_kill(broker, members):
    run_failover(broker, members, "confluent")


@pytest.mark.timeout_seconds(150)
def test_kafka_python_members_split_partitions_and_take_over_after_a_kill(broker, members):
    run_failover(broker, members, "kafka-python")


@pytest.mark.timeout_seconds(120)
def test_librdkafka_and_kafka_python_share_one_group(broker, members):
    topic = unique_topic("groups-mixed")
    group = f"group-{topic}"
    create_topic(broker, topic, PARTITIONS)
    members.append(Member("confluent", broker, topic, group))
    members.append(Member("kafka-python", broker, topic, group))
    owners = wait_for_split(members, 3)
    assert {owners[p].client for p in range(PARTITIONS)} == {"confluent", "kafka-python"}

    expected = set()
    for p in range(PARTITIONS):
        indices = indices_for(p, 0, PER_PARTITION)
        produce_to(broker, topic, p, indices)
        expected |= {value_for(i).decode() for i in indices}
    wait_for_values(members, expected)
    for m in members:
        _, records = m.snapshot()
        assert {p for (p, _, _) in records} <= set(m.snapshot()[0]), f"{m.client} read partitions it does not own"
    values = seen_values(members)
    assert len(values) == len(expected), "a record was delivered twice"


@pytest.mark.timeout_seconds(120)
def test_committed_offsets_survive_a_broker_crash(broker):
    topic = unique_topic("groups-restart")
    group = f"group-{topic}"
    create_topic(broker, topic, 2)
    for p in range(2):
        produce_to(broker, topic, p, indices_for(p, 0, 10))

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, 0, 7), TopicPartition(topic, 1, 3)], asynchronous=False)
    consumer.close()
    simple = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{group}-simple"})
    simple.commit(offsets=[TopicPartition(topic, 1, 9)], asynchronous=False)
    simple.close()

    broker.kill9()
    broker.restart()

    def committed(group_id: str) -> dict[int, int]:
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group_id})
        try:
            return {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(2)], timeout=30)}
        finally:
            c.close()

    assert committed(group) == {0: 7, 1: 3}
    assert committed(f"{group}-simple") == {0: -1001, 1: 9}

    # A member of the group resumes at the committed offsets, not at the beginning.
    resumed = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    try:
        resumed.subscribe([topic])
        firsts: dict[int, int] = {}
        deadline = Deadline(60, "records after the committed offsets")
        while len(firsts) < 2:
            deadline.check()
            msg = resumed.poll(0.5)
            if msg is None or msg.error():
                continue
            firsts.setdefault(msg.partition(), msg.offset())
        assert firsts == {0: 7, 1: 3}
    finally:
        resumed.close()


@pytest.mark.timeout_seconds(120)
def test_admin_and_cli_see_groups_offsets_and_lag(broker, members):
    topic = unique_topic("groups-admin")
    group = f"group-{topic}"
    create_topic(broker, topic, 2)
    for p in range(2):
        produce_to(broker, topic, p, indices_for(p, 0, 10))
    members.append(Member("confluent", broker, topic, group))
    wait_for_values(members, {value_for(i).decode() for p in range(2) for i in indices_for(p, 0, 10)})

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = admin.list_consumer_groups(request_timeout=20).result(timeout=30)
    assert group in {g.group_id for g in listed.valid}
    described = admin.describe_consumer_groups([group], request_timeout=20)[group].result(timeout=30)
    assert str(described.state).endswith("STABLE")
    assert len(described.members) == 1
    assert sorted(tp.partition for tp in described.members[0].assignment.topic_partitions) == [0, 1]

    live = once_group(broker, "describe", group)
    assert "State: Stable" in live
    assert f"Assignment: {topic}-0,{topic}-1" in live
    assert lag_rows(live, topic) == {0: ["10", "10", "0"], 1: ["10", "10", "0"]}

    # A group with members cannot be deleted.
    with pytest.raises(Exception):
        admin.delete_consumer_groups([group], request_timeout=20)[group].result(timeout=30)

    members[0].stop()
    produce_to(broker, topic, 0, indices_for(0, 10, 4))
    assert group in once_group(broker, "list").split()
    idle = once_group(broker, "describe", group)
    assert "State: Empty" in idle
    assert lag_rows(idle, topic) == {0: ["10", "14", "4"], 1: ["10", "10", "0"]}

    admin.delete_consumer_groups([group], request_timeout=20)[group].result(timeout=30)
    listed = admin.list_consumer_groups(request_timeout=20).result(timeout=30)
    assert group not in {g.group_id for g in listed.valid}
    gone = subprocess.run(
        [str(broker_binary()), "group", "describe", group, "--bootstrap-server", broker.bootstrap],
        capture_output=True, text=True, timeout=60)
    assert gone.returncode != 0 and "does not exist" in gone.stderr


def once_group(broker, *args: str) -> str:
    result = subprocess.run(
        [str(broker_binary()), "group", *args, "--bootstrap-server", broker.bootstrap],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def lag_rows(output: str, topic: str) -> dict[int, list[str]]:
    """COMMITTED, END and LAG by partition from `once group describe`."""
    rows = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0] == topic:
            rows[int(fields[1])] = fields[2:5]
    return rows
