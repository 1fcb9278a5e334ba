"""Hostile clients against the broker's resource limits: half-sent requests from many connections,
a slowloris sender, idle connections, too many connections, a Fetch asking for 2 GiB. Each case
checks the limit held and that a real client still works beside it."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

import kafka_wire as wire
from confluent_helpers import produce_indexed, producer, read_to_end
from support import Deadline, unique_topic, value_for

MIB = 1024 * 1024


def address(broker) -> tuple[str, int]:
    return ("127.0.0.1", broker.port)


def rss_bytes(broker) -> int:
    for line in open(f"/proc/{broker.process.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def api_versions_round_trip(sock: socket.socket, correlation_id: int) -> None:
    sock.sendall(wire.api_versions_request(3, correlation_id))
    answer = wire.parse_api_versions(wire.read_frame(sock), 3)
    assert (answer.correlation_id, answer.error_code) == (correlation_id, 0)


def still_serves(broker, records: int = 50) -> None:
    broker.assert_alive()
    topic = unique_topic("after-limit")
    produce_indexed(broker, topic, range(records), partition=0, **{"message.timeout.ms": 30_000})
    assert [r.value for r in read_to_end(broker, topic, [0], seconds=60)] == [value_for(i) for i in range(records)]
    broker.assert_alive()


def send_until_blocked(sock: socket.socket, total: int, stalled_after: float, sent: list[int], slot: int) -> None:
    """Sends up to `total` bytes; stops once the socket has accepted nothing for `stalled_after` s
    (the broker stopped reading and the kernel buffers are full)."""
    chunk = b"\x00" * (256 * 1024)
    sock.settimeout(stalled_after)
    try:
        while sent[slot] < total:
            n = sock.send(chunk[: min(len(chunk), total - sent[slot])])
            sent[slot] += n
    except (socket.timeout, BlockingIOError):
        pass
    except OSError:
        pass


@pytest.mark.timeout_seconds(240)
def test_partial_requests_from_many_connections_keep_memory_bounded(broker_factory):
    # The budget equals the largest request, so one such request can always complete. A paused
    # connection is not read, so the broker notices a client's close only when the read timeout
    # ends the unfinished request; it is long enough for the sending phase.
    broker = broker_factory(
        extra_args=["--queued-max-request-bytes", str(100 * MIB), "--request-read-timeout-ms", "20000"]
    )
    baseline = rss_bytes(broker)
    connections = 8
    frame_size = 99 * MIB
    each = 90 * 1000 * 1000
    sockets = [wire.connect(address(broker)) for _ in range(connections)]
    sent = [0] * connections
    try:
        for sock in sockets:
            sock.sendall(struct.pack(">i", frame_size) + struct.pack(">hhih", 18, 3, 1, 0))
        threads = [
            threading.Thread(target=send_until_blocked, args=(sock, each, 3.0, sent, i), daemon=True)
            for i, sock in enumerate(sockets)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        total_sent = sum(sent)
        peak = rss_bytes(broker)
        print(f"sent {total_sent // MIB} MiB of unfinished requests; broker RSS {baseline // MIB} -> {peak // MIB} MiB")
        # Without a budget the broker reads and holds all 8 x 90 MB. With it, it reads about the
        # budget (so the clients did push that much) and then stops reading (backpressure).
        assert total_sent >= 100 * MIB, f"only {total_sent} bytes went out; the test proved nothing"
        assert total_sent < connections * each, "every byte was read: nothing pushed back"
        assert peak - baseline < 300 * MIB, (
            f"broker RSS grew by {(peak - baseline) // MIB} MiB while clients sent {total_sent // MIB} MiB "
            f"of unfinished requests (budget 100 MiB)"
        )
        broker.assert_alive()
    finally:
        for sock in sockets:
            sock.close()
    # Once the read timeout ends the hostile requests their bytes go back: real clients are served.
    still_serves(broker)
    assert "request unfinished after 20000 ms" in broker.log_text()


def test_a_request_trickled_byte_by_byte_is_cut_off_after_the_read_timeout(broker_factory):
    broker = broker_factory(extra_args=["--request-read-timeout-ms", "1000"])
    with wire.connect(address(broker)) as busy, wire.connect(address(broker)) as slow:
        slow.sendall(struct.pack(">i", 1000) + b"\x00\x12")
        deadline = Deadline(30, "the broker to close the slowloris connection")
        closed = False
        correlation = 0
        while not deadline.expired():
            # The well-behaved connection completes a request now and then and is never cut off.
            correlation += 1
            api_versions_round_trip(busy, correlation)
            try:
                slow.sendall(b"\x00")
            except OSError:
                closed = True
                break
            if wire.closed_by_peer(slow, 0.2):
                closed = True
                break
        assert closed, "a connection trickling one byte at a time was never closed"
        assert correlation > 1
        api_versions_round_trip(busy, correlation + 1)
    assert "request unfinished after 1000 ms" in broker.log_text()
    still_serves(broker)


def test_an_idle_connection_is_closed_and_clients_reconnect(broker_factory):
    broker = broker_factory(extra_args=["--connections-max-idle-ms", "1000"])
    with wire.connect(address(broker)) as sock:
        api_versions_round_trip(sock, 1)
        assert wire.closed_by_peer(sock, 30), "an idle connection stayed open past connections.max.idle.ms"
    assert "connections.max.idle.ms" in broker.log_text()
    # librdkafka's connections go idle too between the two halves; it reconnects and carries on.
    topic = unique_topic("idle")
    produce_indexed(broker, topic, range(20), partition=0)
    time.sleep(2.5)
    produce_indexed(broker, topic, range(20, 40), partition=0)
    assert [r.value for r in read_to_end(broker, topic, [0], seconds=60)] == [value_for(i) for i in range(40)]


def connect_from(source: str, broker) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(address(broker))
    return sock


def answered(sock: socket.socket, correlation_id: int) -> bool:
    """True if the broker answers ApiVersions on `sock`; False if it closed the connection."""
    try:
        api_versions_round_trip(sock, correlation_id)
        return True
    except (ConnectionError, OSError):
        return False


def test_connections_over_the_per_address_limit_are_closed(broker_factory):
    broker = broker_factory(extra_args=["--max-connections-per-ip", "2"])
    held = []
    try:
        from_two = [connect_from("127.0.0.2", broker) for _ in range(3)]
        held += from_two
        assert [answered(s, i) for i, s in enumerate(from_two)] == [True, True, False]
        other = connect_from("127.0.0.3", broker)
        held.append(other)
        assert answered(other, 10), "another address has its own allowance"
        # A client on 127.0.0.1 is untouched by what 127.0.0.2 does.
        still_serves(broker)
        # A slot freed by a close is available again.
        from_two[0].close()
        time.sleep(0.5)
        again = connect_from("127.0.0.2", broker)
        held.append(again)
        assert answered(again, 11)
    finally:
        for s in held:
            s.close()
    assert "max.connections.per.ip" in broker.log_text()


def test_the_connection_past_max_connections_is_closed_while_a_client_keeps_working(broker_factory):
    limit = 6
    broker = broker_factory(extra_args=["--max-connections", str(limit)])
    topic = unique_topic("max-conn")
    client = producer(broker)
    errors: list[str] = []

    def report(err, msg) -> None:
        if err is not None:
            errors.append(str(err))

    for i in range(10):
        client.produce(topic, value=value_for(i), partition=0, on_delivery=report)
    assert client.flush(60) == 0
    raw = []
    try:
        refused = 0
        for i in range(limit + 2):
            sock = wire.connect(address(broker))
            raw.append(sock)
            if not answered(sock, 100 + i):
                refused += 1
        assert refused >= 2, f"{len(raw)} more connections on top of the producer's, none refused"
        # The producer's connections were there first; it keeps producing through them.
        for i in range(10, 20):
            client.produce(topic, value=value_for(i), partition=0, on_delivery=report)
        assert client.flush(60) == 0
        assert not errors, errors
    finally:
        for sock in raw:
            sock.close()
    assert "max.connections" in broker.log_text()
    time.sleep(0.5)
    assert [r.value for r in read_to_end(broker, topic, [0], seconds=60)] == [value_for(i) for i in range(20)]


def fetch_v4(topic: str, partition: int, offset: int, max_bytes: int, partition_max_bytes: int, correlation_id: int) -> bytes:
    name = topic.encode()
    body = struct.pack(">iiiib", -1, 100, 1, max_bytes, 0)
    body += struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, partition_max_bytes)
    return wire.frame(wire.request_header(1, 4, correlation_id, flexible=False) + body)


def read_large_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", wire.recv_exact(sock, 4))
    return wire.recv_exact(sock, size)


def fetched_records_size(payload: bytes, correlation_id: int) -> tuple[int, int]:
    """(error code, record bytes) of the single partition in a Fetch v4 response."""
    cid, _throttle, topics = struct.unpack_from(">iii", payload)
    assert cid == correlation_id and topics == 1
    pos = 12
    (name_len,) = struct.unpack_from(">h", payload, pos)
    pos += 2 + name_len
    (partitions,) = struct.unpack_from(">i", payload, pos)
    assert partitions == 1
    pos += 4
    _p, error, _hw, _lso, aborted = struct.unpack_from(">ihqqi", payload, pos)
    pos += 26 + max(0, aborted) * 16
    (records,) = struct.unpack_from(">i", payload, pos)
    return error, records


def test_a_fetch_for_two_gigabytes_gets_at_most_fetch_max_bytes(broker_factory):
    cap = 256 * 1024
    broker = broker_factory(extra_args=["--fetch-max-bytes", str(cap)])
    topic = unique_topic("fetch-cap")
    count = 20_000  # about three times the cap in record values alone
    # Batches well below the cap: only a first batch larger than the cap may exceed it.
    produce_indexed(broker, topic, range(count), partition=0, **{"linger.ms": 50, "batch.size": 16_384})
    with wire.connect(address(broker)) as sock:
        sock.sendall(fetch_v4(topic, 0, 0, 2**31 - 1, 2**31 - 1, 9))
        payload = read_large_frame(sock)
        error, records = fetched_records_size(payload, 9)
        assert error == 0
        assert 0 < records <= cap, f"{records} record bytes in one response, fetch.max.bytes is {cap}"
        assert len(payload) < cap + 4096
    # A consumer asking for far more than the cap still reads everything, one capped response at a time.
    values = [
        r.value
        for r in read_to_end(
            broker, topic, [0], seconds=120,
            **{"fetch.max.bytes": 2**30, "receive.message.max.bytes": 2**30 + 512},
        )
    ]
    assert values == [value_for(i) for i in range(count)]
    assert sum(len(v) for v in values) > cap
