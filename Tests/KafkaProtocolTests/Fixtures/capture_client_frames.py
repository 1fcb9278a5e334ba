#!/usr/bin/env python3
"""Captures the first request frames real Kafka clients send, for GoldenBytesTests.

Runs a tiny fake broker on 127.0.0.1 that records every request frame (without its 4-byte size
prefix) as hex, answers ApiVersions with a canned response so that clients go on to send
Metadata, and answers nothing else. Then points librdkafka (confluent-kafka) and kafka-python at
it. Prints `client api_key api_version hex` lines. Loopback only; every wait is bounded.

    python3 Tests/KafkaProtocolTests/Fixtures/capture_client_frames.py
"""

import socket
import struct
import threading
import time

# What the fake broker claims to support: enough for clients to move on to Metadata. The older
# set makes them fall back to the non-flexible Metadata v8.
MODERN = [(0, 3, 9), (1, 4, 12), (3, 0, 12), (18, 0, 3)]
OLDER = [(0, 3, 8), (1, 4, 11), (3, 0, 8), (18, 0, 2)]


def api_versions_response(correlation_id, version, advertised):
    """A framed ApiVersions response; its header is v0 even when the body is flexible."""
    flexible = version >= 3
    body = struct.pack(">h", 0)
    body += bytes([len(advertised) + 1]) if flexible else struct.pack(">i", len(advertised))
    for key, lo, hi in advertised:
        body += struct.pack(">hhh", key, lo, hi) + (b"\x00" if flexible else b"")
    if version >= 1:
        body += struct.pack(">i", 0)
    if flexible:
        body += b"\x00"
    frame = struct.pack(">i", correlation_id) + body
    return struct.pack(">i", len(frame)) + frame


def serve(listener, frames, stop, advertised):
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(conn, frames, stop, advertised), daemon=True).start()


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError
        data += chunk
    return data


def handle(conn, frames, stop, advertised):
    conn.settimeout(0.5)
    with conn:
        while not stop.is_set():
            try:
                size = struct.unpack(">i", read_exact(conn, 4))[0]
                frame = read_exact(conn, size)
            except (socket.timeout, ConnectionError, OSError):
                if stop.is_set():
                    return
                continue
            api_key, api_version, correlation_id = struct.unpack(">hhi", frame[:8])
            frames.append((api_key, api_version, frame))
            if api_key == 18:
                conn.sendall(api_versions_response(correlation_id, min(api_version, 3), advertised))


def capture(name, run_client, advertised):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    frames, stop = [], threading.Event()
    server = threading.Thread(target=serve, args=(listener, frames, stop, advertised), daemon=True)
    server.start()
    try:
        run_client(f"127.0.0.1:{port}")
    except Exception:
        pass  # the fake broker never answers Metadata, so clients give up with a timeout
    stop.set()
    server.join(2)
    listener.close()
    seen = set()
    for api_key, api_version, frame in frames:
        if (api_key, api_version) in seen:
            continue
        seen.add((api_key, api_version))
        print(name, api_key, api_version, frame.hex())


def librdkafka(bootstrap):
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "golden-rdkafka"})
    try:
        admin.list_topics(timeout=3)
    finally:
        time.sleep(0.2)


def kafka_python(bootstrap):
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="golden-kafka-python",
                             max_block_ms=3000, request_timeout_ms=3000)
    try:
        producer.partitions_for("golden")
    finally:
        producer.close(timeout=1)


if __name__ == "__main__":
    for advertised in (MODERN, OLDER):
        capture("librdkafka", librdkafka, advertised)
        capture("kafka-python", kafka_python, advertised)
