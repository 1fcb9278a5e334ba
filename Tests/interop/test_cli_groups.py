"""`once group reset-offsets|delete|delete-offsets`, `once txn list`, `once cluster info`, shell
completions and one-line data-directory errors, against a real broker; librdkafka checks what
each command changed or reported."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import confluent_helpers as ck
from once_broker import broker_binary, free_port
from support import unique_topic, wait_until
from test_cli import assert_one_line_failure, once


def committed(broker, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        return [tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                                                       timeout=30)]
    finally:
        consumer.close()


def commit(broker, group: str, topic: str, offsets: list[int]) -> None:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in enumerate(offsets)], asynchronous=False)
    finally:
        consumer.close()


def group_with_offsets(broker, partitions: int = 2, records: int = 10) -> tuple[str, str]:
    topic = unique_topic("cli-reset")
    group = f"cli-reset-{uuid.uuid4().hex[:8]}"
    once(broker, "topic", "create", topic, "--partitions", str(partitions))
    for p in range(partitions):
        ck.produce_indexed(broker, topic, range(p * records, (p + 1) * records), partition=p)
    commit(broker, group, topic, [records] * partitions)
    return topic, group


def test_reset_offsets_is_a_dry_run_until_execute(broker):
    topic, group = group_with_offsets(broker)
    dry = once(broker, "group", "reset-offsets", group, "--topic", topic, "--to-earliest")
    assert f"{group}\t{topic}\t0\t0" in dry.stdout and f"{group}\t{topic}\t1\t0" in dry.stdout, dry.stdout
    assert "--execute" in dry.stderr
    assert committed(broker, group, topic, 2) == [10, 10]

    once(broker, "group", "reset-offsets", group, "--topic", f"{topic}:1", "--to-offset", "3", "--execute")
    assert committed(broker, group, topic, 2) == [10, 3]
    once(broker, "group", "reset-offsets", group, "--all-topics", "--shift-by", "-2", "--execute")
    assert committed(broker, group, topic, 2) == [8, 1]
    # Shifting past either end clamps to the log's bounds, as kafka-consumer-groups does.
    once(broker, "group", "reset-offsets", group, "--topic", topic, "--shift-by", "-100", "--execute")
    assert committed(broker, group, topic, 2) == [0, 0]
    once(broker, "group", "reset-offsets", group, "--topic", topic, "--to-latest", "--execute")
    assert committed(broker, group, topic, 2) == [10, 10]


def test_reset_offsets_to_a_datetime_finds_the_first_later_record(broker):
    topic = unique_topic("cli-reset-time")
    group = f"cli-reset-time-{uuid.uuid4().hex[:8]}"
    once(broker, "topic", "create", topic)
    producer = ck.producer(broker)
    # 2026-01-01T00:00:00Z is 1767225600000 ms; one record per minute from then.
    for i in range(5):
        producer.produce(topic, value=f"r{i}".encode(), partition=0, timestamp=1767225600000 + 60_000 * i)
    assert producer.flush(30) == 0
    commit(broker, group, topic, [5])
    once(broker, "group", "reset-offsets", group, "--topic", topic, "--to-datetime", "2026-01-01T00:02:30",
         "--execute")
    assert committed(broker, group, topic, 1) == [3]
    once(broker, "group", "reset-offsets", group, "--topic", topic, "--to-datetime", "2026-01-01T01:01:00+01:00",
         "--execute")
    assert committed(broker, group, topic, 1) == [1]


def test_reset_offsets_and_delete_refuse_a_group_with_members(broker):
    topic, group = group_with_offsets(broker, partitions=1)
    member = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        member.subscribe([topic])
        wait_until(lambda: (member.poll(0.2), member.assignment())[1], 60, "the member's assignment")
        refused = once(broker, "group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute",
                       check=False)
        assert_one_line_failure(refused, group, "no members", "Stable")
        refused = once(broker, "group", "delete", group, check=False)
        assert_one_line_failure(refused, "NON_EMPTY_GROUP")
        refused = once(broker, "group", "delete-offsets", group, "--topic", topic, check=False)
        assert_one_line_failure(refused, "GROUP_SUBSCRIBED_TO_TOPIC")
    finally:
        member.close()
    assert committed(broker, group, topic, 1)[0] >= 10


def test_delete_offsets_and_delete_group(broker):
    topic, group = group_with_offsets(broker)
    other = unique_topic("cli-other")
    once(broker, "topic", "create", other)
    commit(broker, group, other, [0])
    once(broker, "group", "delete-offsets", group, "--topic", f"{topic}:0")
    assert committed(broker, group, topic, 2)[0] < 0 and committed(broker, group, topic, 2)[1] == 10

    once(broker, "group", "delete", group)
    assert committed(broker, group, topic, 2)[1] < 0 and committed(broker, group, other, 1) == [-1001]
    listed = [g.group_id for g in ck.admin(broker).list_consumer_groups().result(timeout=30).valid]
    assert group not in listed
    refused = once(broker, "group", "delete", group, check=False)
    assert_one_line_failure(refused, "GROUP_ID_NOT_FOUND")


def test_txn_list_shows_the_age_of_an_open_transaction(broker):
    topic = unique_topic("cli-txn-age")
    once(broker, "topic", "create", topic)
    txn_id = f"cli-age-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": txn_id})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"open")
    assert producer.flush(30) == 0
    listed = once(broker, "txn", "list").stdout.splitlines()
    assert listed[0].split("\t") == ["TRANSACTIONAL-ID", "PRODUCER-ID", "STATE", "AGE"]
    row = next(line.split("\t") for line in listed if line.startswith(txn_id + "\t"))
    assert row[2] == "Ongoing" and row[3].endswith("s") and row[3][:-1].isdigit(), row
    producer.commit_transaction(30)
    row = next(line.split("\t") for line in once(broker, "txn", "list").stdout.splitlines()
               if line.startswith(txn_id + "\t"))
    assert row[2] == "CompleteCommit" and row[3] == "-", row

    hanging = once(broker, "txn", "list", "--hanging").stdout.splitlines()
    assert hanging == ["TOPIC\tPARTITION\tPRODUCER-ID\tEPOCH\tSTART-OFFSET\tREASON"]


def test_cluster_info_matches_what_librdkafka_sees(broker):
    metadata = ck.admin(broker).list_topics(timeout=30)
    info = once(broker, "cluster", "info").stdout
    assert f"Cluster id: {metadata.cluster_id}" in info, info
    assert f"Controller: {metadata.controller_id}" in info, info
    for broker_id, b in metadata.brokers.items():
        assert f"Broker: {broker_id}\tAddress: {b.host}:{b.port}" in info, info
    assert "Client:     once " in info


def test_bash_completion_script_names_the_subcommands():
    script = subprocess.run([str(broker_binary()), "--generate-completion-script", "bash"], capture_output=True,
                            text=True, timeout=60)
    assert script.returncode == 0, script.stderr
    for word in ["reset-offsets", "delete-offsets", "cluster", "--bootstrap-server"]:
        assert word in script.stdout, word


@pytest.mark.parametrize("shape", ["file", "file-parent"])
def test_an_unusable_data_directory_is_named_in_one_line(tmp_path, shape):
    if shape == "file":
        data_dir = tmp_path / "data"
        data_dir.write_text("not a directory")
        expected = f"data directory {data_dir} is a file, not a directory"
    else:
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where a directory should be")
        data_dir = blocker / "data"
        expected = f"cannot create data directory {data_dir}: {blocker} is a file, not a directory"
    # Started by hand: the broker fixture creates its data directory first, which is the point here.
    done = subprocess.run([str(broker_binary()), "broker", "--data-dir", str(data_dir),
                           "--listen", f"127.0.0.1:{free_port()}"], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0, done.stdout
    assert "ready" not in done.stdout
    lines = [line for line in done.stderr.splitlines() if "data directory" in line]
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr
