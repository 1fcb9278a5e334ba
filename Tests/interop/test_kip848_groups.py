"""KIP-848 consumer groups with librdkafka's group.protocol=consumer: members share a topic's
partitions with every record consumed and committed by exactly one of them while members join,
leave and die; a static member returns to its partitions without moving anyone else's; a partition
added with CreatePartitions is picked up; a regex subscription follows new topics; the group's
state survives a broker restart; an empty group converts between the classic and the consumer
protocol keeping its offsets; and the seed's exactly-once loop runs on the new protocol."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewPartitions

import confluent_helpers as ck
from group_member import Member, seen_values, wait_for_values
from support import Deadline, index_of, unique_topic, value_for, wait_until

PARTITIONS = 6
PER_PARTITION = 20
# Short enough that a SIGKILLed member's partitions move within a test's patience.
SESSION_MS = 6000
BROKER_ARGS = [
    "--group-consumer-session-timeout-ms", str(SESSION_MS),
    "--group-consumer-heartbeat-interval-ms", "500",
]


@pytest.fixture
def kip848_broker(broker_factory):
    return broker_factory(extra_args=BROKER_ARGS)


def consumer_member(broker, topic: str, group: str, instance_id: str | None = None) -> Member:
    """A group_member.py process speaking KIP-848."""
    return Member("confluent-consumer", broker, topic, group, instance_id)


@pytest.fixture
def members():
    started: list[Member] = []
    yield started
    for member in started:
        member.stop()


def indices_for(partition: int, start: int, count: int) -> range:
    base = partition * 10_000
    return range(base + start, base + start + count)


def produce_round(broker, topic: str, start: int, partitions: int = PARTITIONS) -> set[str]:
    expected = set()
    for p in range(partitions):
        indices = indices_for(p, start, PER_PARTITION)
        ck.produce_indexed(broker, topic, indices, partition=p)
        expected |= {value_for(i).decode() for i in indices}
    return expected


def wait_for_split(live: list[Member], partitions: int = PARTITIONS, seconds: float = 60) -> dict[int, Member]:
    """Waits until the live members own disjoint sets that together cover every partition, as
    balanced as the uniform assignor makes them."""

    def split():
        owners: dict[int, Member] = {}
        sizes = []
        for m in live:
            assignment, _ = m.snapshot()
            if assignment is None:
                return None
            sizes.append(len(assignment))
            for p in assignment:
                if p in owners:
                    return None
                owners[p] = m
        if len(owners) != partitions or max(sizes) - min(sizes) > 1:
            return None
        return owners

    return wait_until(split, seconds, f"{len(live)} members splitting {partitions} partitions")




def describe(broker, group: str):
    client = ck.admin(broker)  # a future dies with its client, so the client must outlive the wait
    return client.describe_consumer_groups([group], request_timeout=20)[group].result(timeout=30)


def listed_types(broker) -> dict[str, str]:
    client = ck.admin(broker)
    return {g.group_id: g.type.name for g in client.list_consumer_groups(request_timeout=20).result(timeout=30).valid}


@pytest.mark.timeout_seconds(300)
def test_members_join_leave_and_die_with_every_record_consumed_once(kip848_broker, members):
    broker = kip848_broker
    topic = unique_topic("kip848")
    group = f"group-{topic}"
    ck.create_topic(broker, topic, PARTITIONS)
    expected = produce_round(broker, topic, 0)

    members.append(consumer_member(broker, topic, group))
    wait_for_split(members)
    members.append(consumer_member(broker, topic, group))
    members.append(consumer_member(broker, topic, group))
    wait_for_split(members)
    assert sorted(len(m.snapshot()[0]) for m in members) == [2, 2, 2]
    wait_for_values(members, expected, seconds=90)

    # A member leaves cleanly: its partitions go to the others, who resume at its commits.
    leaver = members[0]
    leaver.stop()
    live = members[1:]
    wait_for_split(live)
    expected |= produce_round(broker, topic, PER_PARTITION)
    wait_for_values(members, expected, seconds=90)

    # A member dies: after the broker's session timeout its partitions move too.
    victim = live[0]
    victim.kill9()
    survivors = live[1:]
    wait_for_split(survivors, seconds=SESSION_MS / 1000 + 60)
    expected |= produce_round(broker, topic, 2 * PER_PARTITION)
    wait_for_values(members, expected, seconds=90)

    # Every printed record was committed before it was printed, so a second print of one value
    # would be a record consumed and committed twice.
    values = seen_values(members)
    assert len(values) == len(set(values)), "a record was consumed and committed by two members"
    assert set(values) == expected
    for m in members:
        assert not [e for e in m.errors if "STALE" not in e and "FENCED" not in e], m.errors


@pytest.mark.timeout_seconds(240)
def test_static_member_returns_to_its_partitions_without_moving_others(kip848_broker, members):
    broker = kip848_broker
    topic = unique_topic("kip848-static")
    group = f"group-{topic}"
    ck.create_topic(broker, topic, PARTITIONS)
    static = consumer_member(broker, topic, group, instance_id="static-1")
    members.append(static)
    other = consumer_member(broker, topic, group)
    members.append(other)
    owners = wait_for_split(members)
    static_partitions = sorted(p for p, m in owners.items() if m is static)
    other_assignments, other_revocations = len(other.assignments), len(other.revocations)
    before = describe(broker, group)

    static.stop()  # closing a static member leaves with epoch -2: its partitions wait for it
    time.sleep(2)
    assert other.snapshot()[0] == sorted(p for p, m in owners.items() if m is other), "the other member took nothing"

    back = consumer_member(broker, topic, group, instance_id="static-1")
    members.append(back)
    wait_until(lambda: back.snapshot()[0] == static_partitions, 60, "the static member's partitions back")
    assert len(other.assignments) == other_assignments, "the other member saw no reassignment"
    assert len(other.revocations) == other_revocations
    after = describe(broker, group)
    static_after = [m for m in after.members if m.group_instance_id == "static-1"]
    assert len(static_after) == 1
    assert static_after[0].member_id not in {m.member_id for m in before.members if m.group_instance_id == "static-1"}

    # A static member that does not come back loses its place when its session runs out.
    back.stop()
    wait_until(lambda: other.snapshot()[0] == list(range(PARTITIONS)), SESSION_MS / 1000 + 60, "the survivor taking all")


@pytest.mark.timeout_seconds(180)
def test_added_partitions_and_regex_matches_are_assigned(kip848_broker, members):
    broker = kip848_broker
    topic = unique_topic("kip848-grow")
    group = f"group-{topic}"
    ck.create_topic(broker, topic, 2)
    member = consumer_member(broker, topic, group)
    members.append(member)
    wait_until(lambda: member.snapshot()[0] == [0, 1], 60, "both partitions")

    client = ck.admin(broker)
    client.create_partitions([NewPartitions(topic, 4)], request_timeout=30)[topic].result(timeout=60)
    wait_until(lambda: member.snapshot()[0] == [0, 1, 2, 3], 60, "the added partitions")
    indices = indices_for(3, 0, 5)
    ck.produce_indexed(broker, topic, indices, partition=3)
    wait_for_values([member], {value_for(i).decode() for i in indices}, seconds=90)

    # A regex subscription takes topics that exist now and ones created later.
    prefix = unique_topic("kip848rx")
    ck.create_topic(broker, f"{prefix}-a", 1)
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap, "group.id": f"group-{prefix}", "group.protocol": "consumer",
        "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 1000,
    })
    try:
        consumer.subscribe([f"^{prefix}-.*"])
        deadline = Deadline(60, "the regex's first topic")
        while {tp.topic for tp in consumer.assignment()} != {f"{prefix}-a"}:
            deadline.check()
            consumer.poll(0.2)
        ck.create_topic(broker, f"{prefix}-b", 2)
        deadline = Deadline(60, "the topic created after subscribing")
        while len(consumer.assignment()) != 3:
            deadline.check(str(consumer.assignment()))
            consumer.poll(0.2)
    finally:
        consumer.close()


@pytest.mark.timeout_seconds(180)
def test_group_state_survives_a_broker_restart(kip848_broker, members):
    broker = kip848_broker
    topic = unique_topic("kip848-durable")
    group = f"group-{topic}"
    ck.create_topic(broker, topic, PARTITIONS)
    members.extend([consumer_member(broker, topic, group), consumer_member(broker, topic, group)])
    owners = wait_for_split(members)
    before = describe(broker, group)
    assert before.type.name == "CONSUMER"
    epochs = {m.member_id: m for m in before.members}
    assert len(epochs) == 2

    revocations = [len(m.revocations) for m in members]
    broker.stop()
    broker.start()
    after = describe(broker, group)
    assert {m.member_id for m in after.members} == set(epochs), "the same members, recovered from __consumer_offsets"
    for m in after.members:
        assert sorted(tp.partition for tp in m.assignment.topic_partitions) == sorted(
            tp.partition for tp in epochs[m.member_id].assignment.topic_partitions)
    # The members keep heartbeating into the recovered group and keep their partitions.
    expected = produce_round(broker, topic, 0)
    wait_for_values(members, expected, seconds=90)
    assert wait_for_split(members) == owners
    assert [len(m.revocations) for m in members] == revocations, "nothing was revoked across the restart"


@pytest.mark.timeout_seconds(180)
def test_empty_groups_convert_between_protocols_keeping_offsets(kip848_broker):
    broker = kip848_broker
    topic = unique_topic("kip848-convert")
    group = f"group-{topic}"
    ck.create_topic(broker, topic, 1)
    ck.produce_indexed(broker, topic, range(30), partition=0)

    def consume(protocol: str, count: int) -> list[int]:
        config = {"bootstrap.servers": broker.bootstrap, "group.id": group, "group.protocol": protocol,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False}
        if protocol == "classic":
            config["session.timeout.ms"] = 6000
        consumer = Consumer(config)
        consumer.subscribe([topic])
        got: list[int] = []
        deadline = Deadline(60, f"{count} records over the {protocol} protocol")
        try:
            while len(got) < count:
                deadline.check()
                msg = consumer.poll(0.2)
                if msg is None or msg.error():
                    continue
                got.append(index_of(msg.value()))
                consumer.commit(message=msg, asynchronous=False)
            assert listed_types(broker)[group] == protocol.upper()
        finally:
            consumer.close()
        return got

    assert consume("classic", 10) == list(range(0, 10))
    assert consume("consumer", 10) == list(range(10, 20)), "the consumer group resumes at the classic commits"
    assert consume("classic", 10) == list(range(20, 30)), "and the classic group at the consumer group's"


def test_classic_protocol_stays_the_default_and_still_rebalances(kip848_broker):
    """The broker serves both protocols at once: a classic group beside a consumer group."""
    broker = kip848_broker
    topic = unique_topic("kip848-mixed")
    ck.create_topic(broker, topic, 2)
    ck.produce_indexed(broker, topic, range(10), partition=0)
    ck.produce_indexed(broker, topic, range(10, 20), partition=1)
    got = {}
    for protocol in ("classic", "consumer"):
        config = {"bootstrap.servers": broker.bootstrap, "group.id": f"{protocol}-{topic}", "group.protocol": protocol,
                  "auto.offset.reset": "earliest"}
        consumer = Consumer(config)
        consumer.subscribe([topic])
        values = set()
        deadline = Deadline(60, f"all records over {protocol}")
        while len(values) < 20:
            deadline.check()
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                values.add(index_of(msg.value()))
        got[protocol] = values
        consumer.close()
    assert got["classic"] == got["consumer"] == set(range(20))
    listed = listed_types(broker)
    assert listed[f"classic-{topic}"] == "CLASSIC"
    assert listed[f"consumer-{topic}"] == "CONSUMER"


@pytest.mark.timeout_seconds(420)
def test_exactly_once_read_process_write_over_the_consumer_protocol(kip848_broker):
    """The seed's loop with group.protocol=consumer, SIGKILLed three times: each input is output
    once, because a dead member's offsets commit only with its transaction and with its epoch."""
    from test_exactly_once_pipeline import RECORDS, read_committed_output, start_processor

    broker = kip848_broker
    source, sink = unique_topic("eos848-in"), unique_topic("eos848-out")
    ck.create_topic(broker, source, 2)
    ck.create_topic(broker, sink, 2)
    ck.produce_indexed(broker, source, range(RECORDS))
    group, tid = unique_topic("eos848-group"), unique_topic("eos848-processor")
    process = start_processor("confluent-consumer", broker, source, sink, group, tid)
    try:
        for pause in (1.5, 3.0, 2.0):
            time.sleep(pause)
            process.kill()
            process.wait(10)
            process = start_processor("confluent-consumer", broker, source, sink, group, tid)
        deadline = Deadline(300, f"{RECORDS} outputs")
        while True:
            deadline.check()
            produced = sum(ck.watermarks(broker, sink, p)[1] for p in (0, 1))
            if produced >= RECORDS:
                values = read_committed_output(broker, sink)
                if len(values) >= RECORDS:
                    break
            time.sleep(1)
    finally:
        process.kill()
        process.wait(10)
    indices = [index_of(v.removeprefix(b"processed:")) for v in values]
    assert len(indices) == len(set(indices)), "an input was output twice"
    assert sorted(indices) == list(range(RECORDS))
