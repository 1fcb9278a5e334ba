"""Just enough of the Kafka wire format, written by hand, to send well-formed and malformed
frames over a raw socket. Independent of the broker's own codec on purpose."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

API_VERSIONS = 18
JOIN_GROUP = 11
UNSUPPORTED_VERSION = 35
INCONSISTENT_GROUP_PROTOCOL = 23
MEMBER_ID_REQUIRED = 79


def connect(address: tuple[str, int], timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def compact_string(text: str) -> bytes:
    data = text.encode()
    return uvarint(len(data) + 1) + data


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def request_header(api_key: int, api_version: int, correlation_id: int, client_id: str = "interop", *, flexible: bool) -> bytes:
    """Request header v1 (`flexible=False`) or v2 (adds an empty tagged-field section)."""
    cid = client_id.encode()
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(cid)) + cid
    return header + (b"\x00" if flexible else b"")


def api_versions_request(version: int, correlation_id: int) -> bytes:
    """A framed ApiVersions request; v3 and later are flexible and carry the client software name."""
    flexible = version >= 3
    body = (compact_string("once-interop") + compact_string("1.0") + b"\x00") if flexible else b""
    return frame(request_header(API_VERSIONS, version, correlation_id, flexible=flexible) + body)


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def join_group_v5_request(
    correlation_id: int, group: str, protocol_type: str, protocols: list[tuple[str, bytes]], member_id: str = ""
) -> bytes:
    """A framed JoinGroup v5 (the last version before flexible encoding), for protocol types no
    Kafka consumer client sends."""
    body = _string(group) + struct.pack(">ii", 10_000, 30_000) + _string(member_id) + _string(None)
    body += _string(protocol_type) + struct.pack(">i", len(protocols))
    for name, metadata in protocols:
        body += _string(name) + struct.pack(">i", len(metadata)) + metadata
    return frame(request_header(JOIN_GROUP, 5, correlation_id, flexible=False) + body)


def join_group_v5_error(payload: bytes) -> int:
    """The error code of a JoinGroup v5 answer (after the correlation id and throttle time)."""
    return struct.unpack(">h", payload[8:10])[0]


def recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(chunks)} of {n} bytes")
        chunks.extend(chunk)
    return bytes(chunks)


def read_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    assert 0 <= size < 16 * 1024 * 1024, f"implausible response size {size}"
    return recv_exact(sock, size)


def closed_by_peer(sock: socket.socket, seconds: float = 15.0) -> bool:
    """True once the broker closes (EOF or reset); False if it is still open after `seconds`.
    Any bytes it sends first are drained: only the close matters here."""
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


@dataclass(frozen=True)
class ApiVersionsAnswer:
    correlation_id: int
    error_code: int
    ranges: dict[int, tuple[int, int]]


def parse_api_versions(payload: bytes, version: int) -> ApiVersionsAnswer:
    """Parses an ApiVersions response. Its header is always v0, even for flexible versions."""
    (correlation_id, error_code) = struct.unpack_from(">ih", payload, 0)
    pos = 6
    ranges: dict[int, tuple[int, int]] = {}
    if version >= 3:
        count, pos = _read_uvarint(payload, pos)
        count -= 1
    else:
        (count,) = struct.unpack_from(">i", payload, pos)
        pos += 4
    for _ in range(max(count, 0)):
        key, low, high = struct.unpack_from(">hhh", payload, pos)
        pos += 6
        if version >= 3:
            pos = _skip_tags(payload, pos)
        ranges[key] = (low, high)
    return ApiVersionsAnswer(correlation_id, error_code, ranges)


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _skip_tags(data: bytes, pos: int) -> int:
    count, pos = _read_uvarint(data, pos)
    for _ in range(count):
        _, pos = _read_uvarint(data, pos)
        size, pos = _read_uvarint(data, pos)
        pos += size
    return pos


OFFSET_FOR_LEADER_EPOCH = 23


@dataclass(frozen=True)
class EpochEndOffset:
    error_code: int
    partition: int
    leader_epoch: int
    end_offset: int


def offset_for_leader_epoch_request(
    version: int, correlation_id: int, topics: dict[str, list[tuple[int, int, int]]], replica_id: int = -1
) -> bytes:
    """A framed OffsetForLeaderEpoch v2-v4; `topics` maps a name to (partition, current leader
    epoch, leader epoch) triples. v3 adds the replica id, v4 is flexible."""
    flexible = version >= 4
    body = struct.pack(">i", replica_id) if version >= 3 else b""
    body += uvarint(len(topics) + 1) if flexible else struct.pack(">i", len(topics))
    for name, partitions in topics.items():
        body += compact_string(name) if flexible else _string(name)
        body += uvarint(len(partitions) + 1) if flexible else struct.pack(">i", len(partitions))
        for partition, current, epoch in partitions:
            body += struct.pack(">iii", partition, current, epoch) + (b"\x00" if flexible else b"")
        body += b"\x00" if flexible else b""
    body += b"\x00" if flexible else b""
    return frame(request_header(OFFSET_FOR_LEADER_EPOCH, version, correlation_id, flexible=flexible) + body)


def parse_offset_for_leader_epoch(payload: bytes, version: int) -> dict[str, list[EpochEndOffset]]:
    """An OffsetForLeaderEpoch answer, topic by topic (its header is v1 from v4 on)."""
    flexible = version >= 4
    pos = 4 + (1 if flexible else 0) + 4  # correlation id, header tags, throttle time

    def count() -> int:
        nonlocal pos
        if flexible:
            n, pos = _read_uvarint(payload, pos)
            return n - 1
        (n,) = struct.unpack_from(">i", payload, pos)
        pos += 4
        return n

    def string() -> str:
        nonlocal pos
        if flexible:
            n, pos = _read_uvarint(payload, pos)
            n -= 1
        else:
            (n,) = struct.unpack_from(">h", payload, pos)
            pos += 2
        text = payload[pos:pos + n].decode()
        pos += n
        return text

    topics: dict[str, list[EpochEndOffset]] = {}
    for _ in range(count()):
        name = string()
        results = []
        for _ in range(count()):
            error, partition, epoch, end = struct.unpack_from(">hiiq", payload, pos)
            pos += 18
            if flexible:
                pos = _skip_tags(payload, pos)
            results.append(EpochEndOffset(error, partition, epoch, end))
        if flexible:
            pos = _skip_tags(payload, pos)
        topics[name] = results
    return topics


def offset_for_leader_epoch(
    address: tuple[str, int], topics: dict[str, list[tuple[int, int, int]]], version: int = 4, replica_id: int = -1
) -> dict[str, list[EpochEndOffset]]:
    """Sends one OffsetForLeaderEpoch on a connection of its own and parses the answer."""
    with connect(address) as sock:
        sock.sendall(offset_for_leader_epoch_request(version, 23, topics, replica_id))
        return parse_offset_for_leader_epoch(read_frame(sock), version)
