"""Abort markers on a compacted topic, against a real broker with confluent-kafka (librdkafka):
once no record of an aborted transaction remains and delete.retention.ms has passed, the cleaner
removes its marker, as Kafka's does, and the broker's aborted-transaction index forgets it. Were
the index still to name it, a read_committed consumer would drop the producer's records until its
next marker, and so hide the producer's next committed transaction. The producer-state snapshot a
graceful stop writes still names the aborted transactions; after the cleaner removed their
markers, a kill -9 and restart must load that snapshot checked against the log. Every wait polls
for an outcome; no assertion depends on how fast anything ran."""

from __future__ import annotations

import struct
from pathlib import Path

from confluent_kafka.admin import NewTopic

import confluent_helpers as ck
from support import unique_topic, wait_until
from test_compaction import COMPACT, FAST_CLEANER, contents, in_transaction, metric, produce_all, txn_producer

CONTROL_BIT = 0x20
ABORT, COMMIT = 0, 1
# Long enough that the graceful stop below comes before the markers' horizon.
RETENTION_MS = 10_000


def varint(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at `pos`: its value and the position after it."""
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (value >> 1) ^ -(value & 1), pos
        shift += 7


def markers(partition_dir: Path) -> list[tuple[int, int]] | None:
    """(offset, type) of every transaction marker in the segment files; None when a swap renamed a
    file under the read (the next poll sees the new one)."""
    found = []
    try:
        for path in sorted(partition_dir.glob("*.log")):
            data = path.read_bytes()
            pos = 0
            while pos + 61 <= len(data):
                base_offset, length = struct.unpack_from(">qi", data, pos)
                (attributes,) = struct.unpack_from(">h", data, pos + 21)
                if attributes & CONTROL_BIT:
                    # The one record: length, attributes, timestamp and offset deltas, then the key
                    # (version, type); markers are never compressed.
                    at = pos + 61
                    _, at = varint(data, at)
                    at += 1
                    _, at = varint(data, at)
                    _, at = varint(data, at)
                    key_length, at = varint(data, at)
                    if key_length >= 4:
                        (marker_type,) = struct.unpack_from(">h", data, at + 2)
                        found.append((base_offset, marker_type))
                pos += 12 + length
    except (FileNotFoundError, struct.error, IndexError):
        return None
    return found


def test_abort_markers_go_and_read_committed_still_sees_the_committed_transactions(broker_factory):
    broker = broker_factory(extra_args=FAST_CLEANER)
    topic = unique_topic("compact-aborts")
    config = dict(COMPACT, **{"delete.retention.ms": str(RETENTION_MS)})
    client = ck.admin(broker)
    client.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(timeout=30)
    # One producer: each aborted transaction is followed by a committed one on other keys, which a
    # stale index entry would hide; the last transaction is committed (its batch and marker stay
    # as the producer's last).
    producer = txn_producer(broker, topic + "-p")
    in_transaction(producer, topic, [(b"k1", b"c1"), (b"k2", b"c2")], commit=True)
    in_transaction(producer, topic, [(b"k1", b"a1"), (b"k3", b"a3")], commit=False)
    in_transaction(producer, topic, [(b"k4", b"c4"), (b"k5", b"c5")], commit=True)
    in_transaction(producer, topic, [(b"k2", b"a2")], commit=False)
    in_transaction(producer, topic, [(b"k6", b"c6")], commit=True)
    producer.flush(30)
    committed = [(b"k1", b"c1"), (b"k2", b"c2"), (b"k4", b"c4"), (b"k5", b"c5"), (b"k6", b"c6")]

    def read_committed():
        return [(k, v) for _, k, v in contents(broker, topic, "read_committed")]

    assert read_committed() == committed
    partition_dir = Path(broker.data_dir) / f"{topic}-0"
    aborts_written = [offset for offset, kind in markers(partition_dir) or [] if kind == ABORT]
    assert len(aborts_written) == 2, markers(partition_dir)

    # A graceful stop snapshots producer state with both aborted transactions in its index.
    broker.stop()
    still = [offset for offset, kind in markers(partition_dir) or [] if kind == ABORT]
    assert still == aborts_written, "the markers went before the snapshot, so the test proved nothing"
    broker.restart()
    # A read_committed fetch loads the partition's producer state, so the removal below happens
    # while it is live and the running broker must forget the transactions itself.
    assert read_committed() == committed
    live = [offset for offset, kind in markers(partition_dir) or [] if kind == ABORT]
    assert live == aborts_written, "the markers went before the producer state was loaded, so the test proved less"

    def aborts_gone():
        found = markers(partition_dir)
        return found is not None and not any(kind == ABORT for _, kind in found) and found

    left = wait_until(aborts_gone, 120, "the cleaner to remove both abort markers")
    assert [kind for _, kind in left] == [COMMIT] * 3, "the commits keep their markers: their records stay"
    # The pass counts what it removed once it ends, a moment after the swap the files show.
    wait_until(lambda: metric(broker, "once_log_cleaner_abort_markers_removed_total") >= 2, 60,
               "the cleaner to count the markers it removed")
    assert metric(broker, "once_log_cleaner_abort_markers_removed_total") == 2
    uncommitted = [(k, v) for _, k, v in contents(broker, topic)]
    assert b"a1" not in [v for _, v in uncommitted] and b"a2" not in [v for _, v in uncommitted]
    assert read_committed() == committed

    # The snapshot on disk names transactions whose markers are gone: loading it checks the log.
    broker.kill9()
    broker.restart()
    assert read_committed() == committed
    # The producer goes on: its next committed transaction is seen too.
    in_transaction(producer, topic, [(b"k7", b"c7")], commit=True)
    assert read_committed() == committed + [(b"k7", b"c7")]
