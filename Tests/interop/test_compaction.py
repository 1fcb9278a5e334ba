"""Log compaction against a real broker with confluent-kafka (librdkafka): the cleaner keeps the
latest value of each key at its original offset, honours tombstones and transactions (committed,
aborted and still open ones in the cleaned range), survives a kill -9 in the middle of a clean,
and a topic made compacted by IncrementalAlterConfigs starts cleaning. Short cleaner settings make
it run within seconds; every wait polls for the outcome, none sleeps and then asserts."""

from __future__ import annotations

import struct
import subprocess
import urllib.request
from pathlib import Path

import pytest

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

import confluent_helpers as ck
from once_broker import broker_binary, free_port
from kafka_wire import connect, frame, read_frame, request_header
from record_batches import batch, produce, record
from support import unique_topic, wait_until

FAST_CLEANER = ["--log-cleaner-backoff-ms", "200"]
# Small segments that roll within a second, and any dirt at all is worth a clean.
COMPACT = {
    "cleanup.policy": "compact",
    "segment.ms": "500",
    "segment.bytes": "4096",
    "min.cleanable.dirty.ratio": "0.01",
}


def produce_all(broker, topic: str, items: list[tuple[bytes, bytes | None]], **overrides) -> list[int]:
    """Produces (key, value) pairs in order to partition 0 and returns their offsets."""
    offsets: dict[int, int] = {}
    errors = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "enable.idempotence": True, **overrides})

    def report(index):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(err)
            else:
                offsets[index] = msg.offset()
        return on_delivery

    for i, (key, value) in enumerate(items):
        producer.produce(topic, key=key, value=value, partition=0, on_delivery=report(i))
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors
    return [offsets[i] for i in range(len(items))]


def latest_per_key(items, offsets) -> list[tuple[int, bytes, bytes | None]]:
    latest = {}
    for (key, value), offset in zip(items, offsets):
        latest[key] = (offset, key, value)
    return sorted(latest.values())


def contents(broker, topic: str, isolation: str = "read_uncommitted") -> list[tuple[int, bytes, bytes | None]]:
    return [(r.offset, r.key, r.value) for r in ck.read_to_end(broker, topic, [0], **{"isolation.level": isolation})]


def metric(broker, name: str) -> float:
    text = urllib.request.urlopen(broker.metrics_url, timeout=10).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))


def overwrites(count: int, keys: int, tombstoned: int) -> list[tuple[bytes, bytes | None]]:
    items = [(f"k{i % keys}".encode(), f"v{i}".encode()) for i in range(count)]
    return items + [(f"k{i}".encode(), None) for i in range(tombstoned)]


def test_a_topic_made_compacted_keeps_the_latest_value_per_key_at_its_offset(broker_factory):
    broker = broker_factory(extra_args=FAST_CLEANER)
    topic = unique_topic("compact-alter")
    client = ck.admin(broker)
    client.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    items = overwrites(3000, 50, 5)
    offsets = produce_all(broker, topic, items)
    assert len(contents(broker, topic)) == len(items)

    resource = ConfigResource(
        ResourceType.TOPIC, topic,
        incremental_configs=[ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET) for name, value in COMPACT.items()])
    client.incremental_alter_configs([resource])[resource].result(timeout=30)

    expected = latest_per_key(items, offsets)
    assert len(expected) == 50
    # Tombstones stay (delete.retention.ms is a day by default), at the offsets they were written at.
    assert [value for _, _, value in expected].count(None) == 5
    wait_until(lambda: contents(broker, topic) == expected, 90, "the cleaner to leave one record per key")
    assert metric(broker, "once_log_cleaner_bytes_read_total") > 0
    assert metric(broker, "once_log_cleaner_segments_replaced_total") > 0

    # Writes after the clean go on at the log end; a key overwritten again is cleaned again.
    more = [(b"k1", b"again"), (b"new", b"n")]
    more_offsets = produce_all(broker, topic, more)
    assert more_offsets[0] == len(items)
    expected = latest_per_key(items + more, offsets + more_offsets)
    wait_until(lambda: contents(broker, topic) == expected, 90, "the second clean")

    # With no delete retention, a new tombstone goes in the pass after the one that stamps it and
    # its key vanishes. The older ones keep the horizon their first clean stamped in their batches
    # (KIP-534: a day on), as Kafka's do.
    resource = ConfigResource(
        ResourceType.TOPIC, topic,
        incremental_configs=[ConfigEntry("delete.retention.ms", "0", incremental_operation=AlterConfigOpType.SET)])
    client.incremental_alter_configs([resource])[resource].result(timeout=30)
    last = [(b"new", b"n2"), (b"k7", None)]
    last_offsets = produce_all(broker, topic, last)
    expected = [row for row in latest_per_key(items + more + last, offsets + more_offsets + last_offsets) if row[1] != b"k7"]
    assert [value for _, _, value in expected].count(None) == 4  # k1 was written again after its tombstone
    wait_until(lambda: contents(broker, topic) == expected, 90, "the new tombstone removed")


def test_a_tiny_dedupe_buffer_still_compacts_many_keys_over_several_passes(broker_factory):
    # 1024 bytes hold 42 entries of 24 bytes, filled to the 0.9 load factor: 37 keys a pass.
    bound, keys_per_pass = 1024, 37
    broker = broker_factory(extra_args=FAST_CLEANER + ["--log-cleaner-dedupe-buffer-size", str(bound)])
    client = ck.admin(broker)
    resource = ConfigResource(ResourceType.BROKER, "1")
    described = client.describe_configs([resource])[resource].result(timeout=30)
    assert described["log.cleaner.dedupe.buffer.size"].value == str(bound)
    assert not described["log.cleaner.dedupe.buffer.size"].is_default

    topic = unique_topic("compact-tiny-map")
    client.create_topics([NewTopic(topic, 1, 1, config=COMPACT)])[topic].result(timeout=30)
    keys = 600
    items = overwrites(3 * keys, keys, 20)
    offsets = produce_all(broker, topic, items)
    expected = latest_per_key(items, offsets)
    assert len(expected) == keys
    wait_until(lambda: contents(broker, topic) == expected, 120, "the cleaner to leave one record per key")
    # Every key's older values went in a pass whose map held that key, and a map holds at most
    # 37 keys: the backlog took at least 17 passes, none with a map above the bound.
    assert metric(broker, "once_log_cleaner_cleans_total") >= -(-keys // keys_per_pass)
    assert 0 < metric(broker, "once_log_cleaner_offset_map_bytes_max") <= bound
    assert contents(broker, topic, "read_committed") == expected


def test_a_dedupe_buffer_too_small_for_one_key_is_refused_at_startup(tmp_path):
    refused = subprocess.run(
        [str(broker_binary()), "broker", "--data-dir", str(tmp_path / "data"),
         "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", f"127.0.0.1:{free_port()}",
         "--log-cleaner-dedupe-buffer-size", "47"],
        capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "--log-cleaner-dedupe-buffer-size must be at least 48" in refused.stderr, refused.stderr


def txn_producer(broker, transactional_id: str) -> Producer:
    producer = Producer({
        "bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id, "linger.ms": 5,
        "transaction.timeout.ms": 300_000,
    })
    producer.init_transactions(30)
    return producer


def in_transaction(producer: Producer, topic: str, items, commit: bool | None) -> None:
    producer.begin_transaction()
    for key, value in items:
        producer.produce(topic, key=key, value=value, partition=0)
    producer.flush(30)
    if commit is True:
        producer.commit_transaction(30)
    elif commit is False:
        producer.abort_transaction(30)


def test_compaction_with_committed_aborted_and_open_transactions(broker_factory):
    broker = broker_factory(extra_args=FAST_CLEANER)
    topic = unique_topic("compact-txn")
    client = ck.admin(broker)
    client.create_topics([NewTopic(topic, 1, 1, config=COMPACT)])[topic].result(timeout=30)
    produce_all(broker, topic, [(b"k1", b"plain1"), (b"k2", b"plain2"), (b"k3", b"plain3")])
    committer = txn_producer(broker, topic + "-a")
    in_transaction(committer, topic, [(b"k1", b"committed1"), (b"k4", b"committed4")], commit=True)
    in_transaction(committer, topic, [(b"k2", b"aborted2"), (b"k5", b"aborted5")], commit=False)
    opener = txn_producer(broker, topic + "-b")
    in_transaction(opener, topic, [(b"k3", b"open3")], commit=None)
    produce_all(broker, topic, [(b"k6", b"after-open")])

    def latest(rows):
        return {key: (offset, value) for offset, key, value in rows}

    # The cleaner may already be at work: what read_committed shows per key is what must not change.
    before = contents(broker, topic, "read_committed")
    assert latest(before) == {
        b"k1": (latest(before)[b"k1"][0], b"committed1"), b"k2": (1, b"plain2"), b"k3": (2, b"plain3"),
        b"k4": (latest(before)[b"k4"][0], b"committed4"),
    }, before

    # Below the open transaction the cleaner removes the aborted records and the overwritten k1;
    # the open transaction's record and everything after it stay as written.
    def cleaned():
        values = [v for _, _, v in contents(broker, topic)]
        return b"aborted2" not in values and b"aborted5" not in values and b"plain1" not in values

    wait_until(cleaned, 90, "the cleaner to clean below the open transaction")
    uncommitted = [(k, v) for _, k, v in contents(broker, topic)]
    assert (b"k3", b"open3") in uncommitted and (b"k6", b"after-open") in uncommitted
    assert (b"k3", b"plain3") in uncommitted, "a record an open transaction overwrites is not cleaned"
    after = contents(broker, topic, "read_committed")
    assert latest(after) == latest(before)
    assert len(after) == 4, after

    # Once the open transaction commits, its k3 supersedes the plain one.
    opener.commit_transaction(30)
    wait_until(
        lambda: b"plain3" not in [v for _, _, v in contents(broker, topic, "read_committed")], 90,
        "the committed transaction to supersede plain3")
    final = contents(broker, topic, "read_committed")
    assert sorted((k, v) for _, k, v in final) == [
        (b"k1", b"committed1"), (b"k2", b"plain2"), (b"k3", b"open3"), (b"k4", b"committed4"), (b"k6", b"after-open")
    ], final


def test_kill_9_in_the_middle_of_a_clean_loses_nothing(broker_factory):
    # 20 KB a second makes a clean of ~250 KB take many seconds: long enough to kill it mid-way.
    broker = broker_factory(extra_args=FAST_CLEANER + ["--log-cleaner-io-max-bytes-per-second", "20000"])
    topic = unique_topic("compact-kill")
    config = dict(COMPACT, **{"segment.bytes": "65536"})
    client = ck.admin(broker)
    client.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(timeout=30)
    items = [(f"k{i % 300}".encode(), (f"v{i}-" + "x" * 100).encode()) for i in range(2000)]
    offsets = produce_all(broker, topic, items)
    expected = latest_per_key(items, offsets)
    partition_dir = Path(broker.data_dir) / f"{topic}-0"

    wait_until(lambda: any(p.name.endswith(".cleaned") for p in partition_dir.iterdir()), 120, "a clean in progress")
    broker.kill9()
    leftovers = [p.name for p in partition_dir.iterdir() if p.name.endswith((".cleaned", ".swap"))]
    assert leftovers, "the kill came after the clean finished, so the test proved nothing"

    broker.restart()
    # Right after the restart, before the cleaner could finish: every key's latest value is there,
    # at its offset, exactly once, whatever else a half-done clean left.
    records = contents(broker, topic)
    record_offsets = [offset for offset, _, _ in records]
    assert record_offsets == sorted(set(record_offsets)), "offsets repeat or go back"
    present = set(records)
    assert all(row in present for row in expected)
    written = dict(zip(offsets, items))
    for offset, key, value in records:
        assert written[offset] == (key, value), f"offset {offset} holds {key}={value}, not what was written there"
    wait_until(lambda: contents(broker, topic) == expected, 300, "the cleaner to finish after the restart")
    assert not [p for p in partition_dir.iterdir() if p.name.endswith((".cleaned", ".swap"))]


def test_keyless_records_are_invalid_record_and_keyed_ones_compact(broker_factory):
    broker = broker_factory(extra_args=FAST_CLEANER)
    topic = unique_topic("compact-keyless")
    client = ck.admin(broker)
    client.create_topics([NewTopic(topic, 1, 1, config=COMPACT)])[topic].result(timeout=30)
    reports = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 30_000})
    producer.produce(topic, value=b"no key", on_delivery=lambda err, msg: reports.append(err))
    assert producer.flush(60) == 0
    assert reports[0] is not None and reports[0].code() == KafkaError.INVALID_RECORD, reports
    offsets = produce_all(broker, topic, [(b"a", b"1"), (b"a", b"2")])
    wait_until(lambda: contents(broker, topic) == [(offsets[1], b"a", b"2")], 90, "the overwritten a to go")


OUT_OF_ORDER_SEQUENCE_NUMBER = 45


def init_producer_id(address) -> tuple[int, int]:
    """InitProducerId v1 for an idempotent (non-transactional) producer: (producer id, epoch)."""
    body = struct.pack(">hi", -1, 60_000)
    with connect(address) as sock:
        sock.sendall(frame(request_header(22, 1, 1, flexible=False) + body))
        payload = read_frame(sock)
    _correlation, _throttle, error, producer_id, epoch = struct.unpack_from(">iihqh", payload, 0)
    assert error == 0, error
    return producer_id, epoch


def test_a_producers_emptied_last_batch_keeps_its_idempotence_through_a_restart(broker_factory):
    """The cleaner removes the records of a producer's last batch but keeps the batch, so the
    producer state rebuilt from the log alone still knows its sequence: a retry of that batch is
    answered with its original offset, and a sequence gap is refused."""
    broker = broker_factory(extra_args=FAST_CLEANER)
    topic = unique_topic("compact-idem")
    client = ck.admin(broker)
    client.create_topics([NewTopic(topic, 1, 1, config=COMPACT)])[topic].result(timeout=30)
    address = ("127.0.0.1", broker.port)
    producer_id, epoch = init_producer_id(address)

    def idempotent(value: bytes, sequence: int) -> bytes:
        return batch(record(0, b"a", value), 1, producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)

    first = produce(address, topic, idempotent(b"1", 0), acks=-1)
    last = produce(address, topic, idempotent(b"2", 1), acks=-1)
    assert (first.error_code, last.error_code) == (0, 0)
    plain = produce_all(broker, topic, [(b"a", b"3")])
    # Only the plain a=3 is left to read; the producer's batch with a=2 stays, empty.
    wait_until(lambda: contents(broker, topic) == [(plain[0], b"a", b"3")], 90, "the cleaner to supersede a=1 and a=2")
    end = ck.watermarks(broker, topic, 0)[1]

    broker.kill9()
    # Without snapshots the producer state comes from the compacted log alone.
    for snapshot in (Path(broker.data_dir) / "__state").glob("producers-*"):
        snapshot.unlink()
    broker.restart()

    retry = produce(address, topic, idempotent(b"2", 1), acks=-1)
    assert (retry.error_code, retry.base_offset) == (0, last.base_offset), retry
    assert ck.watermarks(broker, topic, 0)[1] == end, "the retry was appended again"
    gap = produce(address, topic, idempotent(b"4", 5), acks=-1)
    assert gap.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER, gap
    following = produce(address, topic, idempotent(b"5", 2), acks=-1)
    assert (following.error_code, following.base_offset) == (0, end), following


def test_a_graceful_shutdown_does_not_wait_out_a_throttled_clean(broker_factory):
    # At 5 KB a second the clean of ~100 KB takes most of a minute; SIGTERM must still stop the broker
    # cleanly (the fixture's stop waits 30 s at most), and the restarted broker lost nothing.
    broker = broker_factory(extra_args=FAST_CLEANER + ["--log-cleaner-io-max-bytes-per-second", "5000"])
    topic = unique_topic("compact-term")
    client = ck.admin(broker)
    client.create_topics([NewTopic(topic, 1, 1, config=COMPACT)])[topic].result(timeout=30)
    items = [(f"k{i % 50}".encode(), (f"v{i}-" + "x" * 100).encode()) for i in range(1000)]
    offsets = produce_all(broker, topic, items)
    partition_dir = Path(broker.data_dir) / f"{topic}-0"
    wait_until(lambda: any(p.name.endswith(".cleaned") for p in partition_dir.iterdir()), 120, "a clean in progress")
    assert broker.stop() == 0
    broker.restart()
    rows = set(contents(broker, topic))
    assert all(row in rows for row in latest_per_key(items, offsets))


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_are_cleaned_and_stay_readable(broker_factory, codec):
    # Batches of many records with keys repeating inside and across them: most batches lose some
    # records, so the cleaner rewrites (and recompresses) them rather than keeping or dropping them.
    broker = broker_factory(extra_args=FAST_CLEANER)
    topic = unique_topic(f"compact-{codec}")
    client = ck.admin(broker)
    client.create_topics([NewTopic(topic, 1, 1, config=COMPACT)])[topic].result(timeout=30)
    items = [(f"k{(i * 7) % 90}".encode(), f"{codec}-{i}".encode() * 3) for i in range(2000)]
    offsets = produce_all(broker, topic, items, **{"compression.type": codec, "linger.ms": 50, "batch.num.messages": 200})
    expected = latest_per_key(items, offsets)
    wait_until(lambda: contents(broker, topic) == expected, 90, f"the cleaner to compact the {codec} batches")
    assert metric(broker, "once_log_cleaner_bytes_written_total") > 0
    # On disk, batches that kept part of their records still carry their codec.
    codec_id = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
    rewritten = []
    for segment in sorted((Path(broker.data_dir) / f"{topic}-0").glob("*.log")):
        data = segment.read_bytes()
        position = 0
        while position + 61 <= len(data):
            base, length = struct.unpack_from(">qi", data, position)
            attributes, last_delta = struct.unpack_from(">hi", data, position + 21)
            (count,) = struct.unpack_from(">i", data, position + 57)
            if 0 < count < last_delta + 1:
                rewritten.append(attributes & 0x07)
            position += 12 + length
    assert rewritten and set(rewritten) == {codec_id}, rewritten
