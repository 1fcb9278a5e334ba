"""KIP-848's online migration with real clients: a group of librdkafka consumers on the classic
protocol is replaced one by one by group.protocol=consumer ones while records keep flowing
(upgrade), then back (downgrade), with every record consumed and committed exactly once; the
group's type flips from classic to consumer on the first consumer-protocol member and back on the
last one's departure, as Kafka's describe shows it; kafka-python (classic only) members keep
working inside a converted group, across a broker restart; and the migration policy forbids what
Kafka's forbids."""

from __future__ import annotations

import struct

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Consumer, KafkaException

import confluent_helpers as ck
import kafka_wire as wire
from group_member import Member, seen_values, wait_for_values
from support import Deadline, index_of, unique_topic, value_for, wait_until
from test_groups import once_group

PARTITIONS = 6
PER_PARTITION = 10
SESSION_MS = 6000
BROKER_ARGS = [
    "--group-consumer-session-timeout-ms", str(SESSION_MS),
    "--group-consumer-heartbeat-interval-ms", "500",
]


@pytest.fixture
def members():
    started: list[Member] = []
    yield started
    for member in started:
        member.stop()


def produce_round(broker, topic: str, round_no: int) -> set[str]:
    expected = set()
    for p in range(PARTITIONS):
        indices = range(p * 100_000 + round_no * PER_PARTITION, p * 100_000 + (round_no + 1) * PER_PARTITION)
        ck.produce_indexed(broker, topic, indices, partition=p)
        expected |= {value_for(i).decode() for i in indices}
    return expected


def committed_offsets(broker, group: str) -> dict[int, int]:
    client = ck.admin(broker)
    request = [ConsumerGroupTopicPartitions(group)]
    listed = client.list_consumer_group_offsets(request, request_timeout=20)[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in listed.topic_partitions}


def explain_missing(broker, group: str):
    """For a failure message: where each missing record sits (produce_round writes partition p's
    records from index p * 100_000 into a fresh topic, so the index gives the offset) against
    the group's committed offsets; a committed offset past a missing record means it was skipped."""

    def explain(missing: set[str]) -> str:
        where = sorted((index_of(v.encode()) // 100_000, index_of(v.encode()) % 100_000) for v in missing)
        try:
            committed = committed_offsets(broker, group)
        except Exception as error:  # the report must not hide the timeout behind another failure
            committed = f"unavailable: {error}"
        return f"missing (partition, offset): {where[:10]}; committed offsets: {committed}"

    return explain


def wait_for_split(live: list[Member], partitions: int = PARTITIONS, seconds: float = 90) -> None:
    """Until the live members own disjoint partitions covering the topic, each at least one."""

    def split():
        owners: dict[int, Member] = {}
        for m in live:
            assignment = m.snapshot()[0]
            if not assignment:
                return None
            for p in assignment:
                if p in owners:
                    return None
                owners[p] = m
        return owners if len(owners) == partitions else None

    wait_until(split, seconds, f"{len(live)} members splitting {partitions} partitions")


def group_type(broker, group: str) -> str:
    client = ck.admin(broker)
    description = client.describe_consumer_groups([group], request_timeout=20)[group].result(timeout=30)
    return description.type.name


def listed_type(broker, group: str) -> str | None:
    client = ck.admin(broker)
    listed = client.list_consumer_groups(request_timeout=20).result(timeout=30).valid
    return next((g.type.name for g in listed if g.group_id == group), None)


def assert_each_once(everyone: list[Member], expected: set[str]) -> None:
    values = seen_values(everyone)
    assert expected <= set(values)
    duplicates = sorted({v for v in values if values.count(v) > 1})
    assert not duplicates, f"consumed twice past a committed offset: {duplicates[:5]}"


@pytest.mark.timeout_seconds(420)
def test_rolling_upgrade_then_downgrade_consumes_every_record_once(broker_factory, members):
    broker = broker_factory(extra_args=BROKER_ARGS)
    topic = unique_topic("migrate")
    group = f"group-{topic}"
    ck.create_topic(broker, topic, PARTITIONS)

    live = [Member("confluent", broker, topic, group) for _ in range(3)]
    members.extend(live)
    wait_for_split(live)
    assert group_type(broker, group) == "CLASSIC"
    expected = produce_round(broker, topic, 0)
    wait_for_values(members, expected, seconds=90, explain=explain_missing(broker, group))

    round_no = 1
    # Upgrade: each classic member in turn gives way to a consumer-protocol one.
    for i in range(3):
        live[i].stop()
        live[i] = Member("confluent-consumer", broker, topic, group)
        members.append(live[i])
        wait_for_split(live)
        assert group_type(broker, group) == "CONSUMER", f"after {i + 1} consumer-protocol member(s)"
        assert listed_type(broker, group) == "CONSUMER"
        assert "Type: consumer\tState: " in once_group(broker, "describe", group)
        expected |= produce_round(broker, topic, round_no)
        round_no += 1
        wait_for_values(members, expected, seconds=90, explain=explain_missing(broker, group))

    # Downgrade: back to classic members; the group turns classic when the last consumer-protocol one leaves.
    for i in range(3):
        live[i].stop()
        live[i] = Member("confluent", broker, topic, group)
        members.append(live[i])
        wait_for_split(live)
        want = "CLASSIC" if i == 2 else "CONSUMER"
        wait_until(lambda: group_type(broker, group) == want, 30, f"the group {want} after {i + 1} classic member(s)")
        expected |= produce_round(broker, topic, round_no)
        round_no += 1
        wait_for_values(members, expected, seconds=90, explain=explain_missing(broker, group))

    assert_each_once(members, expected)
    assert not [e for m in members for e in m.errors if "Fatal" in e]
    assert "Type: classic\tState: " in once_group(broker, "describe", group)
    log = broker.log_text()
    assert log.count("classic group upgraded to a consumer group") == 1
    assert log.count("consumer group downgraded to a classic group") == 1


@pytest.mark.timeout_seconds(300)
def test_kafka_python_members_inside_a_consumer_group_survive_a_restart(broker_factory, members):
    broker = broker_factory(extra_args=BROKER_ARGS)
    topic = unique_topic("migrate-kp")
    group = f"group-{topic}"
    ck.create_topic(broker, topic, PARTITIONS)

    classic = Member("kafka-python", broker, topic, group)
    modern = Member("confluent-consumer", broker, topic, group)
    members.extend([classic, modern])
    wait_for_split([classic, modern])
    assert group_type(broker, group) == "CONSUMER"
    client = ck.admin(broker)  # a future dies with its client, so the client must outlive the wait
    description = client.describe_consumer_groups([group], request_timeout=20)[group].result(timeout=30)
    described = sorted(tp.partition for m in description.members for tp in m.assignment.topic_partitions)
    assert len(description.members) == 2 and described == list(range(PARTITIONS))
    expected = produce_round(broker, topic, 0)
    wait_for_values(members, expected, seconds=90, explain=explain_missing(broker, group))

    # The mixed group, its classic member included, comes back from __consumer_offsets.
    broker.kill9()
    broker.restart()
    wait_until(lambda: group_type(broker, group) == "CONSUMER", 60, "the consumer group back after the restart")
    expected |= produce_round(broker, topic, 1)
    wait_for_values(members, expected, seconds=90, explain=explain_missing(broker, group))
    wait_for_split([classic, modern])
    after = client.describe_consumer_groups([group], request_timeout=20)[group].result(timeout=30)
    assert {m.member_id for m in after.members} == {m.member_id for m in description.members}, "members kept their ids"
    assert "upgraded" not in broker.log_text().split("=== start #2")[1]

    # The consumer-protocol member leaves: the kafka-python member is alone and the group classic again.
    modern.stop()
    wait_until(lambda: group_type(broker, group) == "CLASSIC", 60, "the group classic again")
    wait_until(lambda: classic.snapshot()[0] == list(range(PARTITIONS)), 60, "the classic member taking every partition")
    expected |= produce_round(broker, topic, 2)
    wait_for_values(members, expected, seconds=90, explain=explain_missing(broker, group))
    assert_each_once(members, expected)


@pytest.mark.timeout_seconds(180)
def test_disabled_policy_refuses_to_convert_a_group_with_members(broker_factory, members):
    broker = broker_factory(extra_args=BROKER_ARGS + ["--group-consumer-migration-policy", "disabled"])
    topic = unique_topic("migrate-off")
    group = f"group-{topic}"
    ck.create_topic(broker, topic, 2)
    classic = Member("confluent", broker, topic, group)
    members.append(classic)
    wait_for_split([classic], partitions=2)

    # As Kafka: the consumer-protocol member is told the group is not a consumer group, which
    # librdkafka reports as a fatal GROUP_ID_NOT_FOUND... or retries; either way it gets no partitions.
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap, "group.id": group, "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
    })
    errors: list[str] = []
    try:
        consumer.subscribe([topic], on_assign=lambda c, ps: errors.append(f"assigned {ps}"))
        deadline = Deadline(10, "")
        while not deadline.expired():
            try:
                msg = consumer.poll(0.2)
            except KafkaException as error:
                errors.append(str(error))
                break
            if msg is not None and msg.error():
                errors.append(str(msg.error()))
        assert not [e for e in errors if e.startswith("assigned") and "[]" not in e]
    finally:
        consumer.close()
    assert group_type(broker, group) == "CLASSIC"
    assert classic.snapshot()[0] == [0, 1]


@pytest.mark.timeout_seconds(120)
def test_a_consumer_group_refuses_only_other_protocol_types(broker_factory, members):
    broker = broker_factory(extra_args=BROKER_ARGS)
    topic = unique_topic("migrate-type")
    group = f"group-{topic}"
    ck.create_topic(broker, topic, 2)
    modern = Member("confluent-consumer", broker, topic, group)
    members.append(modern)
    wait_for_split([modern], partitions=2)

    # Subscription v0: topics ["<topic>"], no user data.
    subscription = struct.pack(">hi", 0, 1) + struct.pack(">h", len(topic)) + topic.encode() + struct.pack(">i", -1)
    host, port = broker.bootstrap.split(":")
    with wire.connect((host, int(port))) as sock:
        sock.sendall(wire.join_group_v5_request(1, group, "connect", [("range", subscription)]))
        assert wire.join_group_v5_error(wire.read_frame(sock)) == wire.INCONSISTENT_GROUP_PROTOCOL
        # A consumer-protocol classic member is served inside the consumer group: it is asked for a member id.
        sock.sendall(wire.join_group_v5_request(2, group, "consumer", [("range", subscription)]))
        assert wire.join_group_v5_error(wire.read_frame(sock)) == wire.MEMBER_ID_REQUIRED
    assert group_type(broker, group) == "CONSUMER"
