"""`once topic add-partitions|alter-config|trim` against a real broker, checked through
confluent-kafka (librdkafka)."""

from __future__ import annotations

from confluent_kafka.admin import ConfigResource, ResourceType

import confluent_helpers as ck
from support import unique_topic, wait_until
from test_cli import assert_one_line_failure, once


def test_add_partitions_grows_a_topic_and_refuses_to_shrink_it(broker):
    topic = unique_topic("cli-grow")
    once(broker, "topic", "create", topic, "--partitions", "2")
    result = once(broker, "topic", "add-partitions", topic, "--partitions", "5")
    assert "now has 5 partitions" in result.stdout
    wait_until(lambda: ck.partition_count(broker, topic) == 5, 30, "five partitions in metadata")
    refused = once(broker, "topic", "add-partitions", topic, "--partitions", "3", check=False)
    assert_one_line_failure(refused, "INVALID_PARTITIONS", "would not be an increase")
    assert ck.partition_count(broker, topic) == 5


def test_alter_config_sets_and_removes_overrides(broker):
    topic = unique_topic("cli-alter")
    once(broker, "topic", "create", topic, "--config", "retention.ms=60000")
    once(broker, "topic", "alter-config", topic, "--set", "compression.type=zstd", "--delete", "retention.ms")
    admin = ck.admin(broker)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    assert entries["compression.type"].value == "zstd"
    assert entries["retention.ms"].is_default
    refused = once(broker, "topic", "alter-config", topic, "--set", "no.such.config=1", check=False)
    assert_one_line_failure(refused, "INVALID_CONFIG", "no.such.config")


def test_trim_moves_the_log_start(broker):
    topic = unique_topic("cli-trim")
    once(broker, "topic", "create", topic, "--partitions", "2")
    ck.produce_indexed(broker, topic, range(10), partition=0)
    ck.produce_indexed(broker, topic, range(10, 14), partition=1)
    result = once(broker, "topic", "trim", topic, "--partition", "0", "--before", "6")
    assert f"{topic}[0] now starts at offset 6" in result.stdout
    assert ck.watermarks(broker, topic, 0) == (6, 10)
    once(broker, "topic", "trim", topic)
    assert ck.watermarks(broker, topic, 0) == (10, 10)
    assert ck.watermarks(broker, topic, 1) == (4, 4)
    beyond = once(broker, "topic", "trim", topic, "--partition", "1", "--before", "99", check=False)
    assert_one_line_failure(beyond, "OFFSET_OUT_OF_RANGE")
