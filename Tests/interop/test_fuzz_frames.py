"""A few thousand mutated request frames (seeded: the seed is printed and `ONCE_FUZZ_SEED`
replays it) against a real broker, which must stay up and keep serving a real client."""

from __future__ import annotations

import os
import random
import socket
import struct

import pytest

from confluent_helpers import create_topic, produce_indexed, read_to_end
from kafka_wire import api_versions_request, connect, frame, parse_api_versions, read_frame, request_header
from record_batches import batch, good_records, produce_request
from support import index_of, unique_topic

FRAMES = int(os.environ.get("ONCE_FUZZ_FRAMES", "4000"))
# Few per connection: the broker closes a connection at its first undecodable frame.
PER_CONNECTION = 5
EDGES = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _seed_frames(topic: str) -> list[bytes]:
    """Well-formed requests of several APIs, without their size prefix."""
    def body(api: int, version: int, payload: bytes) -> bytes:
        return request_header(api, version, 1, flexible=False) + payload

    return [
        api_versions_request(0, 1)[4:],
        api_versions_request(3, 1)[4:],
        body(3, 1, struct.pack(">i", 1) + _string(topic)),  # Metadata
        body(10, 1, _string("fuzz-group") + b"\x00"),  # FindCoordinator
        body(2, 1, struct.pack(">ii", -1, 1) + _string(topic) + struct.pack(">iiq", 1, 0, -1)),  # ListOffsets
        body(1, 4, struct.pack(">iiiib", -1, 50, 1, 1 << 20, 0) + struct.pack(">i", 1) + _string(topic)
             + struct.pack(">iiqi", 1, 0, 0, 1 << 20)),  # Fetch
        body(19, 2, struct.pack(">i", 1) + _string("fuzz-created") + struct.pack(">ihii", 3, 1, 0, 0)
             + struct.pack(">ib", 30_000, 1)),  # CreateTopics, validate only
        produce_request(topic, 0, batch(good_records("fuzz", 3), 3), acks=1)[4:],
    ]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(7)
        if choice == 0 and out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif choice == 1 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif choice == 2 and len(out) >= 4:
            at = rng.randrange(len(out) - 3)
            out[at:at + 4] = struct.pack(">I", rng.choice(EDGES))
        elif choice == 3:
            at = rng.randrange(len(out) + 1)
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif choice == 4 and out:
            at = rng.randrange(len(out))
            del out[at:at + rng.randint(1, 16)]
        elif choice == 5 and out:
            del out[rng.randrange(len(out)):]
        else:
            at = rng.randrange(len(out) + 1)
            out[at:at] = b"\xff" * rng.randint(1, 10)
    return bytes(out)


def _send_batch(address: tuple[str, int], frames: list[bytes]) -> None:
    """Pipelines the frames on one connection, half-closes it and drains until the broker closes."""
    sock = connect(address, timeout=10)
    try:
        for payload in frames:
            try:
                sock.sendall(payload)
            except OSError:
                return  # the broker already closed this connection on an earlier frame
        try:
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass  # reset, or already closed by the broker (ENOTCONN)
    finally:
        sock.close()


@pytest.mark.timeout_seconds(600)
def test_mutated_frames_leave_the_broker_serving(broker):
    topic = unique_topic("fuzzed")
    create_topic(broker, topic, 1)
    seed = int(os.environ.get("ONCE_FUZZ_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"fuzz frames: seed {seed}, {FRAMES} frames (replay with ONCE_FUZZ_SEED={seed})")
    rng = random.Random(seed)
    seeds = _seed_frames(topic)
    address = ("127.0.0.1", broker.port)
    pending: list[bytes] = []
    for _ in range(FRAMES):
        payload = _mutate(rng, rng.choice(seeds))
        # Mostly a truthful size prefix, so the mutation reaches the decoders; sometimes a lying one.
        size = len(payload) if rng.random() < 0.9 else rng.choice(EDGES) & 0x7FFFFFFF
        pending.append(struct.pack(">i", size) + payload)
        if len(pending) == PER_CONNECTION:
            _send_batch(address, pending)
            pending = []
            broker.assert_alive()
    if pending:
        _send_batch(address, pending)
    broker.assert_alive()

    with connect(address) as sock:
        sock.sendall(api_versions_request(3, 99))
        answer = parse_api_versions(read_frame(sock), 3)
    assert (answer.correlation_id, answer.error_code) == (99, 0)
    after = unique_topic("after-fuzz")
    create_topic(broker, after, 1)
    produce_indexed(broker, after, range(100), partition=0)
    assert [index_of(r.value) for r in read_to_end(broker, after, [0])] == list(range(100))
