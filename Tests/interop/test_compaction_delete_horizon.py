"""KIP-534 against a real broker: the first cleaner pass that keeps a tombstone stamps its batch
with a delete horizon (now + delete.retention.ms, in the batch's base timestamp with the
delete-horizon attribute bit); a consumer reads the tombstone, with the timestamp it was written
with, until a pass after that horizon removes it. The horizon lives in the batch, so a kill -9 and
restart in between does not move it. Every wait polls for an outcome; no assertion depends on how
fast anything ran: a read that misses the tombstone must have ended after its horizon."""

from __future__ import annotations

import struct
import time
from pathlib import Path

from confluent_kafka.admin import NewTopic

import confluent_helpers as ck
from support import unique_topic, wait_until
from test_compaction import COMPACT, FAST_CLEANER, contents, produce_all

DELETE_HORIZON_BIT = 0x40
RETENTION_MS = 20_000


def stored_batches(partition_dir: Path) -> list[tuple[int, int, int, int]]:
    """(base offset, last offset, attributes, base timestamp) of every batch in the segment files."""
    found = []
    for path in sorted(partition_dir.glob("*.log")):
        data = path.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            attributes, last_delta, base_timestamp = struct.unpack_from(">hiq", data, pos + 21)
            found.append((base_offset, base_offset + last_delta, attributes, base_timestamp))
            pos += 12 + length
    return found


def horizon_of(partition_dir: Path, offset: int) -> int | None:
    """The delete horizon stamped on the batch holding `offset`, or None while it has none."""
    try:
        for base, last, attributes, base_timestamp in stored_batches(partition_dir):
            if base <= offset <= last:
                return base_timestamp if attributes & DELETE_HORIZON_BIT else None
    except (FileNotFoundError, struct.error):
        pass  # a swap renamed a file under the read; the next poll sees the new one
    return None


def test_a_tombstone_is_read_until_the_horizon_its_first_clean_stamped_then_goes(broker_factory):
    broker = broker_factory(extra_args=FAST_CLEANER)
    topic = unique_topic("compact-horizon")
    config = dict(COMPACT, **{"delete.retention.ms": str(RETENTION_MS)})
    client = ck.admin(broker)
    client.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(timeout=30)
    produced_at = int(time.time() * 1000)
    offsets = produce_all(broker, topic, [(b"gone", b"v1"), (b"kept", b"v2"), (b"gone", None)])
    tombstone = offsets[2]
    # Later writes roll the tombstone's segment so the cleaner may take it.
    produce_all(broker, topic, [(b"later", b"x" * 5000)])
    partition_dir = Path(broker.data_dir) / f"{topic}-0"

    horizon = wait_until(lambda: horizon_of(partition_dir, tombstone), 90, "a clean to stamp the tombstone's batch")
    assert horizon >= produced_at + RETENTION_MS, "the horizon counts delete.retention.ms from the pass that stamped it"

    def read():
        started = int(time.time() * 1000)
        rows = ck.read_to_end(broker, topic, [0])
        return started, int(time.time() * 1000), rows

    started, _, rows = read()
    assert started < horizon, "the first read began after the horizon, so the test proved nothing"
    by_offset = {r.offset: r for r in rows}
    # The stamp rebased the batch's timestamps: the tombstone keeps the time it was produced at.
    assert tombstone in by_offset and by_offset[tombstone].key == b"gone" and by_offset[tombstone].value is None
    assert produced_at - 1000 <= by_offset[tombstone].timestamp[1] <= int(time.time() * 1000)
    assert 0 not in by_offset, "the tombstone supersedes the value it deletes"

    # A crash does not move the horizon: it is in the batch, not in the broker's memory.
    broker.kill9()
    broker.restart()
    assert horizon_of(partition_dir, tombstone) in (horizon, None)

    def removed():
        started, ended, rows = read()
        offsets_read = [r.offset for r in rows]
        if tombstone in offsets_read:
            return False
        assert ended >= horizon, f"the tombstone went before its horizon {horizon} (read ended {ended})"
        return rows

    rows = wait_until(removed, 120, "a pass after the horizon to remove the tombstone")
    assert [(r.key, r.value) for r in rows] == [(b"kept", b"v2"), (b"later", b"x" * 5000)]
    # read_committed sees the same: nothing of the deleted key.
    assert [(k, v) for _, k, v in contents(broker, topic, "read_committed")] == [(b"kept", b"v2"), (b"later", b"x" * 5000)]
