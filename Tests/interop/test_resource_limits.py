"""Hostile clients against the broker's resource limits: half-sent requests from many connections,
a slowloris sender, idle connections, too many connections, a Fetch asking for 2 GiB. Each case
checks the limit held and that a real client still works beside it."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest

import kafka_wire as wire
from confluent_helpers import produce_indexed, producer, read_to_end
from support import Deadline, unique_topic, value_for, wait_until

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
    # The broker logs the close as it makes it; the log pump may be a moment behind the socket.
    wait_until(lambda: "request unfinished after 1000 ms" in broker.log_text(), 30, "the read-timeout log line")
    still_serves(broker)


def test_an_idle_connection_is_closed_and_clients_reconnect(broker_factory):
    broker = broker_factory(extra_args=["--connections-max-idle-ms", "1000"])
    with wire.connect(address(broker)) as sock:
        api_versions_round_trip(sock, 1)
        assert wire.closed_by_peer(sock, 30), "an idle connection stayed open past connections.max.idle.ms"
    wait_until(lambda: "connections.max.idle.ms" in broker.log_text(), 30, "the idle-close log line")
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
        # Which of three simultaneous connections is over the limit depends on the order the event
        # loops register them in, not on the order the client connected.
        served = [answered(s, i) for i, s in enumerate(from_two)]
        assert sorted(served) == [False, True, True], served
        other = connect_from("127.0.0.3", broker)
        held.append(other)
        assert answered(other, 10), "another address has its own allowance"
        # A client on 127.0.0.1 is untouched by what 127.0.0.2 does.
        still_serves(broker)
        # A slot freed by a close is available again.
        from_two[served.index(True)].close()
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


def metadata_v4(names: list[str], correlation_id: int, allow_auto_create: bool = True) -> bytes:
    body = struct.pack(">i", len(names))
    for name in names:
        raw = name.encode()
        body += struct.pack(">h", len(raw)) + raw
    body += struct.pack(">?", allow_auto_create)
    return wire.frame(wire.request_header(3, 4, correlation_id, flexible=False) + body)


def metadata_topic_errors(payload: bytes, correlation_id: int) -> dict[str, int]:
    """Topic name -> error code from a Metadata v4 response."""
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from(fmt, payload, pos)
        pos += struct.calcsize(fmt)
        return values

    def string() -> str | None:
        nonlocal pos
        (n,) = take(">h")
        if n < 0:
            return None
        text = payload[pos : pos + n].decode()
        pos += n
        return text

    cid, _throttle, brokers = take(">iii")
    assert cid == correlation_id
    for _ in range(brokers):
        take(">i"), string(), take(">i"), string()
    string()
    take(">i")
    (topics,) = take(">i")
    errors = {}
    for _ in range(topics):
        (error,) = take(">h")
        name = string()
        take(">?")
        (partitions,) = take(">i")
        for _ in range(partitions):
            take(">hii")
            for _ in range(2):
                (count,) = take(">i")
                take(f">{count}i")
        errors[name] = error
    return errors


def data_descriptors(broker) -> int:
    """Descriptors of files in the data directory, but for the data-directory lock the broker holds
    for its whole life (one, however many partitions)."""
    fd_dir = f"/proc/{broker.process.pid}/fd"
    count = 0
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
            if target.startswith(str(broker.data_dir)) and target != str(broker.data_dir / ".lock"):
                count += 1
        except OSError:
            pass
    return count


def test_descriptors_stay_within_the_handle_cache_however_many_topics_are_auto_created(broker_factory):
    cache = 40
    broker = broker_factory(
        extra_args=["--max-open-files", str(cache), "--auto-create-partitions-per-second", "100000"]
    )
    names = [unique_topic("fd") for _ in range(400)]
    with wire.connect(address(broker)) as sock:
        for i in range(0, len(names), 100):
            sock.sendall(metadata_v4(names[i : i + 100], i))
            errors = metadata_topic_errors(read_large_frame(sock), i)
            assert set(errors.values()) == {0}, errors
    assert data_descriptors(broker) <= cache
    # Every auto-created partition takes writes and serves reads through the cache.
    client = producer(broker)
    for i, name in enumerate(names):
        client.produce(name, value=value_for(i), partition=0)
        client.poll(0)
    assert client.flush(120) == 0
    assert data_descriptors(broker) <= cache
    for i in (0, 137, 399):
        assert [r.value for r in read_to_end(broker, names[i], [0], seconds=60)] == [value_for(i)]
    assert data_descriptors(broker) <= cache


def test_auto_creation_past_its_cap_answers_unknown_topic_and_create_topics_still_works(broker_factory):
    broker = broker_factory(extra_args=["--auto-create-max-partitions", "20"])
    names = [unique_topic("cap") for _ in range(30)]
    with wire.connect(address(broker)) as sock:
        sock.sendall(metadata_v4(names, 1))
        errors = metadata_topic_errors(read_large_frame(sock), 1)
    assert [errors[n] for n in names] == [0] * 20 + [3] * 10  # UNKNOWN_TOPIC_OR_PARTITION
    assert "auto-creation stops at 20" in broker.log_text()
    # An operator's explicit CreateTopics is not what the cap limits.
    from confluent_helpers import create_topic

    explicit = unique_topic("explicit")
    create_topic(broker, explicit, 3)
    produce_indexed(broker, explicit, range(10), partition=2)
    assert [r.value for r in read_to_end(broker, explicit, [2], seconds=60)] == [value_for(i) for i in range(10)]


def peak_rss_bytes(broker) -> int:
    for line in open(f"/proc/{broker.process.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM line")


@pytest.mark.timeout_seconds(240)
def test_large_fetches_are_sent_from_the_files_not_built_in_memory(broker_factory):
    broker = broker_factory()
    topic = unique_topic("big-fetch")
    count, size = 4_000, 10_000  # 40 MB in one partition, under the 55 MiB fetch.max.bytes
    client = producer(broker, **{"batch.size": 1_000_000, "linger.ms": 20})
    for i in range(count):
        while True:
            try:
                client.produce(topic, value=value_for(i) + b"x" * (size - 15), partition=0)
                break
            except BufferError:
                client.poll(0.1)
    assert client.flush(120) == 0
    before = peak_rss_bytes(broker)
    fetchers = 10
    sockets = [wire.connect(address(broker), timeout=60) for _ in range(fetchers)]
    try:
        for i, sock in enumerate(sockets):
            sock.sendall(fetch_v4(topic, 0, 0, 2**31 - 1, 2**31 - 1, 100 + i))
        for i, sock in enumerate(sockets):
            error, records = fetched_records_size(read_large_frame(sock), 100 + i)
            assert error == 0
            assert records >= count * size, f"response {i} carried {records} record bytes"
    finally:
        for sock in sockets:
            sock.close()
    grown = peak_rss_bytes(broker) - before
    print(f"{fetchers} fetches of {count * size // MIB} MiB each: peak RSS grew {grown // MIB} MiB")
    # Built in memory, each response costs its size at least once: 10 x 38 MiB.
    assert grown < 100 * MIB, f"peak RSS grew {grown // MIB} MiB serving {fetchers} fetches of {count * size // MIB} MiB"
    still_serves(broker)
