"""The founding document's Python snippets (../shared/seed/exactly-once-semantics.md), run as
written against a real broker. Only what a snippet cannot say is supplied around it: the broker's
address instead of localhost:9092, a `process` function and the two imports the transaction
example leaves out, `consumer_timeout_ms` so the endless `for message in consumer` loop ends once
the input is consumed, and kafka-python 3's spelling of the consumer's group id
(`consumer.config['group_id']`; the attribute the snippet names does not exist in that client)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

import confluent_helpers as ck
from once_broker import REPO_ROOT

SEED = REPO_ROOT.parent / "shared" / "seed" / "exactly-once-semantics.md"

# The seed document sits beside the checkout in CI; a clone without it has nothing to run here.
pytestmark = pytest.mark.skipif(not SEED.exists(), reason=f"{SEED} is absent (../shared is not beside this checkout)")


def python_snippets() -> list[str]:
    text = SEED.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def snippet_containing(marker: str) -> str:
    found = [s for s in python_snippets() if marker in s]
    assert len(found) == 1, f"expected one snippet with {marker!r} in {SEED}, found {len(found)}"
    return found[0]


def at(broker, code: str) -> str:
    return code.replace("['localhost:9092']", repr([broker.bootstrap]))


def test_the_seed_has_the_snippets_we_run():
    assert SEED.exists(), f"{SEED} is missing (CI puts ../shared beside the checkout)"
    assert len(python_snippets()) >= 3


def test_seed_idempotent_producer(broker):
    code = snippet_containing("enable_idempotence=True,\n    # These are")
    scope: dict = {}
    exec(at(broker, code), scope)
    producer: KafkaProducer = scope["producer"]
    topic = "seed-idempotent"
    futures = [producer.send(topic, value=b"m%d" % i) for i in range(100)]
    producer.flush()
    offsets = [f.get(timeout=30).offset for f in futures]
    assert offsets == list(range(100))
    producer.close()


@pytest.mark.timeout_seconds(180)
def test_seed_transactional_read_process_write_and_read_committed_consumer(broker):
    import threading

    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    ck.create_topic(broker, "input-topic", 1)
    ck.create_topic(broker, "output-topic", 1)
    code = snippet_containing("producer.send_offsets_to_transaction(")
    code = code.replace("enable_auto_commit=False,", "enable_auto_commit=False, consumer_timeout_ms=10000,", 1)
    code = code.replace("consumer.group_id", "consumer.config['group_id']")
    scope = {
        "TopicPartition": TopicPartition,
        "OffsetAndMetadata": OffsetAndMetadata,
        "process": lambda value: b"out:" + value,
    }
    failures: list[BaseException] = []

    def run_snippet():
        try:
            exec(at(broker, code), scope)
        except BaseException as error:  # reported below
            failures.append(error)

    loop = threading.Thread(target=run_snippet, daemon=True)
    loop.start()
    # The snippet's consumer starts at the latest offset (kafka-python's default), so the input is
    # written once its group is up, as a live pipeline would see it.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for _ in range(300):
        groups = admin.describe_consumer_groups(["processor-group"])["processor-group"].result(10)
        if groups.state == ConsumerGroupState.STABLE and groups.members:
            break
        loop.join(0.1)
    else:
        raise AssertionError("the seed's consumer never joined processor-group")
    loop.join(2)  # let it fetch its starting position
    seed_input = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
    for i in range(50):
        seed_input.send("input-topic", value=b"in-%d" % i)
    seed_input.flush()
    seed_input.close()
    loop.join(120)
    assert not loop.is_alive(), "the snippet's loop did not end"
    assert not failures, failures
    scope["producer"].close()
    scope["consumer"].close()

    reader_code = snippet_containing("isolation_level='read_committed'  # Only see committed messages")
    reader_code = reader_code.replace("'topic'", "'output-topic'").replace(
        "isolation_level='read_committed'", "isolation_level='read_committed', auto_offset_reset='earliest', consumer_timeout_ms=5000")
    reader_scope: dict = {"KafkaConsumer": KafkaConsumer}
    exec(at(broker, reader_code), reader_scope)
    outputs = [m.value for m in reader_scope["consumer"]]
    reader_scope["consumer"].close()
    assert outputs == [b"out:in-%d" % i for i in range(50)]

    committed = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="processor-group", enable_auto_commit=False)
    assert committed.committed(TopicPartition("input-topic", 0)) == 50, "the offsets went in with the outputs"
    committed.close()
