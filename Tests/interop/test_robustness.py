"""Hostile or broken bytes on one connection must cost that connection at most, never the
broker: after each case the process is alive and a real client still works."""

from __future__ import annotations

import socket
import struct

import pytest

import kafka_wire as wire
from confluent_helpers import produce_indexed, read_to_end
from support import unique_topic, value_for


def address(broker) -> tuple[str, int]:
    return ("127.0.0.1", broker.port)


def check_broker_still_serves(broker) -> None:
    broker.assert_alive()
    with wire.connect(address(broker)) as sock:
        sock.sendall(wire.api_versions_request(3, 4242))
        answer = wire.parse_api_versions(wire.read_frame(sock), 3)
        assert (answer.correlation_id, answer.error_code) == (4242, 0)
    topic = unique_topic("after-abuse")
    produce_indexed(broker, topic, range(50), partition=0, **{"message.timeout.ms": 30_000})
    assert [r.value for r in read_to_end(broker, topic, [0], seconds=60)] == [value_for(i) for i in range(50)]
    broker.assert_alive()


def test_api_versions_v0_and_v3_answer_with_their_own_shapes(broker):
    with wire.connect(address(broker)) as sock:
        for correlation_id, version in ((1, 0), (2, 3), (3, 1)):
            sock.sendall(wire.api_versions_request(version, correlation_id))
            answer = wire.parse_api_versions(wire.read_frame(sock), version)
            assert answer.correlation_id == correlation_id
            assert answer.error_code == 0
            low, high = answer.ranges[wire.API_VERSIONS]
            assert low == 0 and high >= 3, answer.ranges
            for api in (0, 1, 2, 3):  # Produce, Fetch, ListOffsets, Metadata
                assert api in answer.ranges, f"api {api} not advertised: {answer.ranges}"


def test_unsupported_api_versions_version_gets_error_35_in_a_v0_answer(broker):
    with wire.connect(address(broker)) as sock:
        sock.sendall(wire.api_versions_request(127, 77))
        payload = wire.read_frame(sock)
        correlation_id, error_code = struct.unpack_from(">ih", payload)
        assert correlation_id == 77
        assert error_code == wire.UNSUPPORTED_VERSION, f"ApiVersions v127 answered with error {error_code}"
        answer = wire.parse_api_versions(payload, 0)
        low, high = answer.ranges[wire.API_VERSIONS]
        assert low == 0 and 3 <= high < 127, answer.ranges

        # The connection stays usable: the client retries with a version it now knows.
        sock.sendall(wire.api_versions_request(3, 78))
        retry = wire.parse_api_versions(wire.read_frame(sock), 3)
        assert (retry.correlation_id, retry.error_code) == (78, 0)
    check_broker_still_serves(broker)


def test_pipelined_requests_are_answered_in_order(broker):
    with wire.connect(address(broker)) as sock:
        sock.sendall(b"".join(wire.api_versions_request(3, cid) for cid in range(100, 120)))
        ids = [wire.parse_api_versions(wire.read_frame(sock), 3).correlation_id for _ in range(20)]
    assert ids == list(range(100, 120))


MALFORMED = {
    "negative size prefix": b"\xff\xff\xff\xf0" + bytes(range(64)),
    "zero size prefix": struct.pack(">i", 0),
    "body shorter than a request header": wire.frame(b"\x00\x12\x00"),
    "client id longer than the frame": wire.frame(struct.pack(">hhih", wire.API_VERSIONS, 0, 1, 5000) + b"abc"),
    "unknown api key": wire.frame(wire.request_header(9999, 0, 5, flexible=False)),
    "negative api key": wire.frame(wire.request_header(-7, 0, 6, flexible=False)),
    "size prefix over 100 MiB": struct.pack(">i", 200 * 1024 * 1024) + b"\x00" * 64,
    "size prefix just over 100 MiB": struct.pack(">i", 100 * 1024 * 1024 + 1) + b"\x00" * 64,
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_frame_closes_only_that_connection(broker, case):
    bystander = wire.connect(address(broker))
    try:
        with wire.connect(address(broker)) as sock:
            sock.sendall(MALFORMED[case])
            assert wire.closed_by_peer(sock), f"broker kept the connection open after: {case}"

        # A connection opened before the bad one is unaffected.
        bystander.sendall(wire.api_versions_request(3, 9))
        assert wire.parse_api_versions(wire.read_frame(bystander), 3).correlation_id == 9
    finally:
        bystander.close()
    check_broker_still_serves(broker)


def test_garbage_then_a_truncated_body_then_close_leave_the_broker_up(broker):
    cases = [
        b"\x00\x07\xa1",  # not even a size prefix
        struct.pack(">i", 1000) + bytes(range(10)),  # promises 1000 bytes, sends 10
        struct.pack(">i", 64) + wire.request_header(wire.API_VERSIONS, 3, 1, flexible=True),  # header, no body
        bytes(range(256)) * 4,
    ]
    for payload in cases:
        with wire.connect(address(broker)) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
    for _ in range(200):  # many abrupt resets in a row
        sock = wire.connect(address(broker))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(struct.pack(">i", 50) + b"\x00\x12")
        sock.close()
    check_broker_still_serves(broker)


def test_oversized_frame_is_refused_without_reading_it(broker):
    with wire.connect(address(broker)) as sock:
        sock.sendall(struct.pack(">i", 0x7FFFFFFF))
        assert wire.closed_by_peer(sock), "broker waited for a 2 GiB frame instead of closing"
    check_broker_still_serves(broker)
