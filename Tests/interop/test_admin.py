"""Admin APIs through confluent-kafka's AdminClient (librdkafka) and kafka-python's KafkaAdminClient:
CreatePartitions, AlterConfigs, IncrementalAlterConfigs, DescribeConfigs for topics, the broker and
groups, DeleteRecords, DescribeLogDirs, and the authorized-operations bitfields."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AclOperation,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

import confluent_helpers as ck
from support import unique_topic, wait_until


def error_of(future) -> KafkaError:
    with pytest.raises(KafkaException) as raised:
        future.result(timeout=30)
    return raised.value.args[0]


def topic_configs(admin, topic: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(timeout=30)


# CreatePartitions


def test_added_partitions_take_records_and_reach_consumers(broker):
    topic = unique_topic("grow")
    ck.create_topic(broker, topic, 1)
    admin = ck.admin(broker)
    admin.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=30)
    wait_until(lambda: ck.partition_count(broker, topic) == 3, 30, "three partitions in metadata")

    deliveries = ck.produce_indexed(broker, topic, range(30), partition=2)
    assert {d.partition for d in deliveries.values()} == {2}
    records = ck.read_to_end(broker, topic, [0, 1, 2])
    assert sorted(r.offset for r in records if r.partition == 2) == list(range(30))
    assert not [r for r in records if r.partition != 2]


def test_create_partitions_answers_kafkas_errors_and_validate_only_changes_nothing(broker):
    topic = unique_topic("grow-refused")
    ck.create_topic(broker, topic, 2)
    admin = ck.admin(broker)

    same = error_of(admin.create_partitions([NewPartitions(topic, 2)])[topic])
    assert same.code() == KafkaError.INVALID_PARTITIONS, same
    assert "already has 2 partition(s)" in same.str()
    fewer = error_of(admin.create_partitions([NewPartitions(topic, 1)])[topic])
    assert fewer.code() == KafkaError.INVALID_PARTITIONS, fewer
    assert "would not be an increase" in fewer.str()
    missing = unique_topic("no-such-topic")
    unknown = error_of(admin.create_partitions([NewPartitions(missing, 3)])[missing])
    assert unknown.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, unknown
    wrong_broker = error_of(admin.create_partitions([NewPartitions(topic, 3, replica_assignment=[[7]])])[topic])
    assert wrong_broker.code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, wrong_broker

    admin.create_partitions([NewPartitions(topic, 5)], validate_only=True)[topic].result(timeout=30)
    assert ck.partition_count(broker, topic) == 2
    admin.create_partitions([NewPartitions(topic, 4, replica_assignment=[[1], [1]])])[topic].result(timeout=30)
    wait_until(lambda: ck.partition_count(broker, topic) == 4, 30, "four partitions in metadata")


def test_a_transaction_writes_to_an_added_partition(broker):
    topic = unique_topic("grow-txn")
    ck.create_topic(broker, topic, 1)
    admin = ck.admin(broker)  # the futures die with their client
    admin.create_partitions([NewPartitions(topic, 2)])[topic].result(timeout=30)
    wait_until(lambda: ck.partition_count(broker, topic) == 2, 30, "two partitions in metadata")
    producer = ck.producer(broker, **{"transactional.id": unique_topic("tid"), "enable.idempotence": True})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"in-new-partition", partition=1)
    producer.commit_transaction(30)
    records = ck.read_to_end(broker, topic, [0, 1], **{"isolation.level": "read_committed"})
    assert [(r.partition, r.value) for r in records] == [(1, b"in-new-partition")]


def test_a_subscribed_group_consumer_rebalances_onto_added_partitions(broker):
    from confluent_kafka import Consumer

    from support import Deadline

    topic = unique_topic("grow-group")
    ck.create_topic(broker, topic, 1)
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap, "group.id": unique_topic("g"), "auto.offset.reset": "earliest",
        "topic.metadata.refresh.interval.ms": 500, "enable.auto.commit": False,
    })
    try:
        consumer.subscribe([topic])
        ck.produce_indexed(broker, topic, [0], partition=0)
        seen: set[int] = set()
        deadline = Deadline(60, "the record on partition 0")
        while 0 not in seen:
            deadline.check()
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                seen.add(msg.partition())
        admin = ck.admin(broker)
        admin.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=30)
        ck.produce_indexed(broker, topic, [1], partition=2)
        deadline = Deadline(60, "the record on the added partition 2")
        while 2 not in seen:
            deadline.check()
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                seen.add(msg.partition())
        assert {tp.partition for tp in consumer.assignment()} == {0, 1, 2}
    finally:
        consumer.close()


# CreateTopics


def test_create_topics_takes_every_kafka_topic_config_and_refuses_unknown_ones(broker):
    admin = ck.admin(broker)
    topic = unique_topic("configured")
    configs = {"compression.type": "lz4", "delete.retention.ms": "900", "flush.ms": "12345678", "retention.ms": "60000"}
    admin.create_topics([NewTopic(topic, 2, 1, config=configs)])[topic].result(timeout=30)
    described = topic_configs(admin, topic)
    for name, value in configs.items():
        assert described[name].value == value, name
        assert described[name].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, name
    assert described["segment.jitter.ms"].is_default

    bad = unique_topic("bad-config")
    for config in ({"dummy.doesntexist": "1"}, {"compression.type": "brotli"}, {"min.cleanable.dirty.ratio": "2"}):
        error = error_of(admin.create_topics([NewTopic(bad, 1, 1, config=config)])[bad])
        assert error.code() == KafkaError.INVALID_CONFIG, (config, error)
    assert ck.partition_count(broker, bad) is None


def test_a_manual_assignment_decides_the_partition_count(broker_factory):
    broker = broker_factory(extra_args=["--num-partitions", "4"])
    admin = ck.admin(broker)
    topic = unique_topic("assigned")
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1]])])[topic].result(timeout=30)
    wait_until(lambda: ck.partition_count(broker, topic) is not None, 30, "topic in metadata")
    assert ck.partition_count(broker, topic) == 1
    wrong = unique_topic("assigned-wrong")
    error = error_of(admin.create_topics([NewTopic(wrong, num_partitions=2, replica_assignment=[[1], [2]])])[wrong])
    assert error.code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, error


# AlterConfigs / IncrementalAlterConfigs / DescribeConfigs


def test_topic_config_changes_are_validated_applied_and_survive_a_restart(broker):
    topic = unique_topic("alter")
    admin = ck.admin(broker)
    admin.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "60000"})])[topic].result(timeout=30)
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("compression.type", "gzip", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    described = topic_configs(admin, topic)
    assert described["compression.type"].value == "gzip"
    assert described["cleanup.policy"].value == "delete,compact"
    assert described["retention.ms"].is_default and described["retention.ms"].value == "604800000"

    refused = ConfigResource(
        ResourceType.TOPIC, topic,
        incremental_configs=[ConfigEntry("retention.ms", "-7", incremental_operation=AlterConfigOpType.SET)],
    )
    assert error_of(admin.incremental_alter_configs([refused])[refused]).code() == KafkaError.INVALID_CONFIG
    not_a_list = ConfigResource(
        ResourceType.TOPIC, topic,
        incremental_configs=[ConfigEntry("segment.ms", "5", incremental_operation=AlterConfigOpType.APPEND)],
    )
    assert error_of(admin.incremental_alter_configs([not_a_list])[not_a_list]).code() == KafkaError.INVALID_CONFIG
    unknown = ConfigResource(
        ResourceType.TOPIC, unique_topic("missing"),
        incremental_configs=[ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.SET)],
    )
    assert error_of(admin.incremental_alter_configs([unknown])[unknown]).code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    # AlterConfigs replaces the whole set: what is not named returns to its default.
    replace = ConfigResource(ResourceType.TOPIC, topic, set_config={"flush.ms": "12345678", "retention.bytes": "1048576"})
    admin.alter_configs([replace])[replace].result(timeout=30)
    validate_only = ConfigResource(ResourceType.TOPIC, topic, set_config={"flush.ms": "1"})
    admin.alter_configs([validate_only], validate_only=True)[validate_only].result(timeout=30)

    broker.stop()
    broker.restart()
    described = topic_configs(ck.admin(broker), topic)
    assert described["flush.ms"].value == "12345678" and not described["flush.ms"].is_default
    assert described["retention.bytes"].value == "1048576"
    assert described["compression.type"].is_default and described["cleanup.policy"].value == "delete"


def test_internal_topics_keep_the_configs_their_coordinators_rely_on(broker):
    topic = unique_topic("offsets")
    ck.create_topic(broker, topic, 1)
    committer = ck.consumer(broker, **{"group.id": unique_topic("g")})
    committer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)  # creates __consumer_offsets
    committer.close()
    admin = ck.admin(broker)
    resource = ConfigResource(
        ResourceType.TOPIC, "__consumer_offsets",
        incremental_configs=[ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)],
    )
    assert error_of(admin.incremental_alter_configs([resource])[resource]).code() == KafkaError.INVALID_CONFIG
    assert topic_configs(admin, "__consumer_offsets")["retention.ms"].value == "-1"
    trim = admin.delete_records([TopicPartition("__consumer_offsets", 0, 0)])
    assert error_of(next(iter(trim.values()))).code() == KafkaError.TOPIC_EXCEPTION


def test_dynamic_broker_configs_are_validated_and_survive_a_restart(broker):
    admin = ck.admin(broker)
    resource = ConfigResource(
        ResourceType.BROKER, "1",
        incremental_configs=[
            ConfigEntry("sasl.kerberos.min.time.before.relogin", "58000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    static = ConfigResource(
        ResourceType.BROKER, "1",
        incremental_configs=[ConfigEntry("broker.id", "2", incremental_operation=AlterConfigOpType.SET)],
    )
    assert error_of(admin.incremental_alter_configs([static])[static]).code() == KafkaError.INVALID_REQUEST
    bad_type = ConfigResource(
        ResourceType.BROKER, "1",
        incremental_configs=[ConfigEntry("log.retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)],
    )
    assert error_of(admin.incremental_alter_configs([bad_type])[bad_type]).code() == KafkaError.INVALID_REQUEST

    broker.stop()
    broker.restart()
    admin = ck.admin(broker)
    described = admin.describe_configs([ConfigResource(ResourceType.BROKER, "1")])
    entries = next(iter(described.values())).result(timeout=30)
    entry = entries["sasl.kerberos.min.time.before.relogin"]
    assert entry.value == "58000" and entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert entries["broker.id"].value == "1" and entries["broker.id"].is_read_only


def test_group_configs_are_described_and_altered_as_kafka_4_does(broker):
    admin = ck.admin(broker)
    group = unique_topic("group")
    resource = ConfigResource(ResourceType.GROUP, group)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    assert entries["consumer.session.timeout.ms"].value == "45000"
    assert entries["consumer.session.timeout.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert entries["consumer.heartbeat.interval.ms"].value == "5000"

    change = ConfigResource(
        ResourceType.GROUP, group,
        incremental_configs=[ConfigEntry("consumer.session.timeout.ms", "50000", incremental_operation=AlterConfigOpType.SET)],
    )
    admin.incremental_alter_configs([change])[change].result(timeout=30)
    too_long = ConfigResource(
        ResourceType.GROUP, group,
        incremental_configs=[ConfigEntry("consumer.session.timeout.ms", "90000", incremental_operation=AlterConfigOpType.SET)],
    )
    assert error_of(admin.incremental_alter_configs([too_long])[too_long]).code() == KafkaError.INVALID_CONFIG
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    assert entries["consumer.session.timeout.ms"].value == "50000"
    assert entries["consumer.session.timeout.ms"].source == ConfigSource.GROUP_CONFIG.value


# Authorized operations


def test_describe_topics_and_cluster_report_every_operation_without_an_authorizer(broker):
    topic = unique_topic("ops")
    ck.create_topic(broker, topic, 1)
    admin = ck.admin(broker)
    described = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(timeout=30)
    assert set(described.authorized_operations) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE, AclOperation.ALTER,
        AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
    }
    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=30)
    assert set(cluster.authorized_operations) == {
        AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.CLUSTER_ACTION,
        AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE,
    }
    plain = admin.describe_cluster().result(timeout=30)
    assert plain.authorized_operations is None


# DeleteRecords


def test_delete_records_moves_the_log_start_for_consumers_and_survives_a_restart(broker):
    topic = unique_topic("trim")
    ck.create_topic(broker, topic, 2)
    ck.produce_indexed(broker, topic, range(20), partition=0)
    ck.produce_indexed(broker, topic, range(20, 25), partition=1)
    admin = ck.admin(broker)
    futures = admin.delete_records([TopicPartition(topic, 0, 12), TopicPartition(topic, 1, -1)])
    assert futures[TopicPartition(topic, 0, 12)].result(timeout=30).low_watermark == 12
    assert futures[TopicPartition(topic, 1, -1)].result(timeout=30).low_watermark == 5

    records = ck.read_to_end(broker, topic, [0, 1])
    assert sorted(r.offset for r in records if r.partition == 0) == list(range(12, 20))
    assert not [r for r in records if r.partition == 1]
    beyond = admin.delete_records([TopicPartition(topic, 0, 21)])
    assert error_of(next(iter(beyond.values()))).code() == KafkaError.OFFSET_OUT_OF_RANGE

    broker.stop()
    broker.restart()
    assert ck.watermarks(broker, topic, 0) == (12, 20)
    # A consumer whose committed position was deleted resets to the new start.
    records = ck.read_to_end(broker, topic, [0], start=3, **{"auto.offset.reset": "earliest"})
    assert [r.offset for r in records] == list(range(12, 20))


def test_delete_records_refuses_compacted_topics(broker):
    topic = unique_topic("trim-compacted")
    admin = ck.admin(broker)
    admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})])[topic].result(timeout=30)
    wait_until(lambda: ck.partition_count(broker, topic) == 1, 30, "topic in metadata")
    ck.produce_indexed(broker, topic, range(3), partition=0)
    refused = admin.delete_records([TopicPartition(topic, 0, 1)])
    assert error_of(next(iter(refused.values()))).code() == KafkaError.POLICY_VIOLATION
    assert ck.watermarks(broker, topic, 0) == (0, 3)


# kafka-python


def test_kafka_python_admin_grows_alters_trims_and_describes_log_dirs(broker):
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions as KNewPartitions
    from kafka.structs import TopicPartition as KTopicPartition

    topic = unique_topic("kp-admin")
    ck.create_topic(broker, topic, 1)
    ck.produce_indexed(broker, topic, range(10), partition=0)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_partitions({topic: KNewPartitions(total_count=2)})
        wait_until(lambda: ck.partition_count(broker, topic) == 2, 30, "two partitions in metadata")
        admin.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "3600000"})])
        assert topic_configs(ck.admin(broker), topic)["retention.ms"].value == "3600000"
        admin.delete_records({KTopicPartition(topic, 0): 4})
        assert ck.watermarks(broker, topic, 0) == (4, 10)
        dirs = admin.describe_log_dirs()
    finally:
        admin.close()
    sizes = {
        (t["name"], p["partition_index"]): p["partition_size"]
        for per_broker in dirs for d in per_broker["log_dirs"] for t in d["topics"] for p in t["partitions"]
    }
    assert sizes[(topic, 0)] > 0
    assert sizes[(topic, 1)] == 0
    log_dir = dirs[0]["log_dirs"][0]
    assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"]
