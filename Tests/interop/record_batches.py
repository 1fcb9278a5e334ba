"""RecordBatch v2 and Produce v8 written by hand, so a test can send batches no client would build:
malformed records inside a batch whose CRC is right. Independent of the broker's codec on purpose."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

from kafka_wire import connect, frame, read_frame, request_header

PRODUCE = 0
PRODUCE_VERSION = 8  # the first with KIP-467's per-record errors; not flexible, so no tagged fields


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def varint(value: int) -> bytes:
    """Zigzag varint, as records encode lengths and counts."""
    v = (value << 1) ^ (value >> 63)
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _field(data: bytes | None) -> bytes:
    return varint(-1) if data is None else varint(len(data)) + data


def record(offset_delta: int, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]] = ()) -> bytes:
    body = b"\x00" + varint(0) + varint(offset_delta) + _field(key) + _field(value) + varint(len(headers))
    for name, header_value in headers:
        body += _field(name.encode()) + _field(header_value)
    return varint(len(body)) + body


def batch(
    section: bytes, record_count: int, *, codec: int = 0, timestamp_ms: int | None = None,
    producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1,
) -> bytes:
    """A batch around `section` (the records, compressed or not) whose length and CRC are right."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    after_crc = struct.pack(
        ">hiqqqhii", codec, record_count - 1, ts, ts, producer_id, producer_epoch, base_sequence, record_count) + section
    crc = crc32c(after_crc)
    length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, then the covered part
    return struct.pack(">qiibI", 0, length, -1, 2, crc) + after_crc


def good_records(prefix: str, count: int) -> bytes:
    return b"".join(record(i, f"{prefix}-k{i}".encode(), f"{prefix}-v{i}".encode()) for i in range(count))


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def produce_request(topic: str, partition: int, records: bytes, *, acks: int, correlation_id: int = 1) -> bytes:
    body = _string(None) + struct.pack(">hi", acks, 30000)
    body += struct.pack(">i", 1) + _string(topic)
    body += struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(records)) + records
    return frame(request_header(PRODUCE, PRODUCE_VERSION, correlation_id, flexible=False) + body)


@dataclass(frozen=True)
class PartitionAnswer:
    error_code: int
    base_offset: int
    record_errors: list[tuple[int, str | None]]
    error_message: str | None


def _read_string(data: bytes, pos: int) -> tuple[str | None, int]:
    (n,) = struct.unpack_from(">h", data, pos)
    pos += 2
    if n < 0:
        return None, pos
    return data[pos:pos + n].decode(), pos + n


def parse_produce_response(payload: bytes) -> PartitionAnswer:
    """The single partition's answer of a Produce v8 response (after the frame size)."""
    pos = 4  # correlation id
    (topics,) = struct.unpack_from(">i", payload, pos)
    pos += 4
    assert topics == 1, topics
    _, pos = _read_string(payload, pos)
    (partitions,) = struct.unpack_from(">i", payload, pos)
    pos += 4
    assert partitions == 1, partitions
    _index, error_code, base_offset, _append_time, _start = struct.unpack_from(">ihqqq", payload, pos)
    pos += 4 + 2 + 8 + 8 + 8
    (count,) = struct.unpack_from(">i", payload, pos)
    pos += 4
    record_errors = []
    for _ in range(count):
        (batch_index,) = struct.unpack_from(">i", payload, pos)
        message, pos = _read_string(payload, pos + 4)
        record_errors.append((batch_index, message))
    error_message, pos = _read_string(payload, pos)
    return PartitionAnswer(error_code, base_offset, record_errors, error_message)


def produce(address: tuple[str, int], topic: str, records: bytes, *, acks: int, partition: int = 0) -> PartitionAnswer:
    with connect(address) as sock:
        sock.sendall(produce_request(topic, partition, records, acks=acks))
        return parse_produce_response(read_frame(sock))
