"""SSL listeners against real clients: aiokafka, confluent-kafka (with a client certificate whose
subject becomes the principal), kafka-python and kcat produce and consume over TLS; an untrusted
CA, a missing client certificate and a plaintext client each fail on the client with a clear
error while the broker keeps serving; bad TLS material stops the broker at start in one line."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.helpers import create_ssl_context
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

import kafka_wire
from confluent_helpers import produce_indexed, read_to_end
from once_broker import Broker, broker_binary, free_port
from support import index_of, unique_topic, wait_until
from tls_material import CLIENT_PRINCIPAL, KEY_PASSWORD


class Via:
    """What the confluent helpers need of a broker (`bootstrap`), for one listener of it."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap



def logged(broker, text: str) -> None:
    """Waits for `text` in the broker's log: it reaches the test through a reader thread, so a
    line written just before a close may not have arrived when the client sees the close."""
    wait_until(lambda: text in broker.log_text(), 15, f"{text!r} in the broker log")

def ssl_config(tls, *, certificate: bool = False, ca=None) -> dict[str, str]:
    config = {"security.protocol": "SSL", "ssl.ca.location": str((ca or tls.ca).certificate)}
    if certificate:
        config["ssl.certificate.location"] = str(tls.client.certificate)
        config["ssl.key.location"] = str(tls.client.key)
    return config


def ssl_broker(broker_factory, tls, *, client_auth: str | None = None, extra: list[str] | None = None) -> Broker:
    return broker_factory(
        listeners=["SSL", "PLAINTEXT"], extra_args=[*tls.broker_args(client_auth=client_auth), *(extra or [])]
    )


def metadata_error(config: dict[str, str]) -> str:
    """The error a confluent admin client reports when it cannot get metadata with `config`."""
    admin = AdminClient({**config, "socket.timeout.ms": 5000})
    with pytest.raises(KafkaException) as raised:
        admin.list_topics(timeout=8)
    return str(raised.value)


def still_serves(broker, tls, **kwargs) -> None:
    topic = unique_topic("after")
    via = Via(broker.address("SSL"))
    config = ssl_config(tls, **kwargs)
    produce_indexed(via, topic, range(5), partition=0, **config)
    assert [index_of(r.value) for r in read_to_end(via, topic, [0], **config)] == list(range(5))


# Real clients over SSL


def test_aiokafka_produces_and_consumes_over_ssl(broker_factory, tls_material):
    broker = ssl_broker(broker_factory, tls_material)
    topic = unique_topic("aiokafka-ssl")

    async def scenario() -> list[bytes]:
        context = create_ssl_context(cafile=str(tls_material.ca.certificate))
        common = {"bootstrap_servers": broker.address("SSL"), "security_protocol": "SSL", "ssl_context": context}
        producer = AIOKafkaProducer(**common, enable_idempotence=True)
        await producer.start()
        try:
            for i in range(200):
                await producer.send(topic, f"v{i}".encode(), partition=0)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(**common, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            values: list[bytes] = []
            while len(values) < 200:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    values += [r.value for r in records]
            return values
        finally:
            await consumer.stop()

    values = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert values == [f"v{i}".encode() for i in range(200)]


def test_confluent_kafka_with_a_client_certificate_acts_as_its_subject(broker_factory, tls_material):
    broker = ssl_broker(broker_factory, tls_material, client_auth="required")
    via = Via(broker.address("SSL"))
    config = ssl_config(tls_material, certificate=True)
    topic = unique_topic("mtls")
    produce_indexed(via, topic, range(300), partition=0, **config)
    assert [index_of(r.value) for r in read_to_end(via, topic, [0], **config)] == list(range(300))
    # The broker formed the principal from the certificate it verified, in Kafka's RFC 2253 form.
    logged(broker, f"principal={CLIENT_PRINCIPAL}")


def test_kafka_python_produces_and_consumes_over_ssl(broker_factory, tls_material):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition

    broker = ssl_broker(broker_factory, tls_material, client_auth="requested")
    topic = unique_topic("kafka-python-ssl")
    common = {
        "bootstrap_servers": broker.address("SSL"),
        "security_protocol": "SSL",
        "ssl_cafile": str(tls_material.ca.certificate),
    }
    producer = KafkaProducer(**common, acks="all")
    for i in range(100):
        producer.send(topic, f"k{i}".encode(), partition=0)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(**common, enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        tp = KTopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        values = [m.value for m in consumer]
    finally:
        consumer.close()
    assert values == [f"k{i}".encode() for i in range(100)]
    # requested: a client without a certificate is let in, as ANONYMOUS, and no subject is logged.
    assert "TLS client authenticated" not in broker.log_text()


def kcat_ssl(address: str, tls, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("kcat")
    assert binary, "kcat is not installed (scripts/install-deps.sh installs it)"
    command = [
        binary, "-b", address, "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={tls.ca.certificate}",
        "-X", f"ssl.certificate.location={tls.client.certificate}", "-X", f"ssl.key.location={tls.client.key}",
        *args,
    ]
    feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    result = subprocess.run(command, capture_output=True, timeout=90, **feed)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def test_kcat_lists_produces_and_consumes_over_ssl(broker_factory, tls_material):
    broker = ssl_broker(broker_factory, tls_material, client_auth="required")
    address = broker.address("SSL")
    listing = kcat_ssl(address, tls_material, "-L", "-m", "30").stdout.decode()
    assert f"broker 1 at {address}" in listing, listing
    topic = unique_topic("kcat-ssl")
    lines = [f"line {i}" for i in range(100)]
    kcat_ssl(address, tls_material, "-P", "-t", topic, "-p", "0", stdin="".join(f"{l}\n" for l in lines).encode())
    out = kcat_ssl(address, tls_material, "-C", "-t", topic, "-e", "-o", "beginning", "-q").stdout.decode()
    assert out.splitlines() == lines


# Several listeners at once


def test_each_listener_advertises_its_own_port_and_protocol(broker_factory, tls_material):
    broker = ssl_broker(broker_factory, tls_material)
    secure = AdminClient({"bootstrap.servers": broker.address("SSL"), **ssl_config(tls_material)})
    plain = AdminClient({"bootstrap.servers": broker.address("PLAINTEXT")})
    assert {f"{b.host}:{b.port}" for b in secure.list_topics(timeout=20).brokers.values()} == {broker.address("SSL")}
    assert {f"{b.host}:{b.port}" for b in plain.list_topics(timeout=20).brokers.values()} == {broker.address("PLAINTEXT")}
    # Written over TLS, read in plaintext: one log behind both listeners.
    topic = unique_topic("both")
    produce_indexed(Via(broker.address("SSL")), topic, range(20), partition=0, **ssl_config(tls_material))
    assert [index_of(r.value) for r in read_to_end(Via(broker.address("PLAINTEXT")), topic, [0])] == list(range(20))


# Failures a client sees; the broker keeps serving


def test_a_client_that_does_not_trust_the_ca_fails_verification(broker_factory, tls_material):
    broker = ssl_broker(broker_factory, tls_material)
    error = metadata_error({"bootstrap.servers": broker.address("SSL"), **ssl_config(tls_material, ca=tls_material.untrusted_ca)})
    assert "Broker transport failure" in error or "SSL" in error, error
    still_serves(broker, tls_material)


def test_python_ssl_names_the_untrusted_certificate(broker_factory, tls_material):
    broker = ssl_broker(broker_factory, tls_material)
    context = ssl.create_default_context(cafile=str(tls_material.untrusted_ca.certificate))
    host, port = broker.address("SSL").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError) as raised:
            context.wrap_socket(raw, server_hostname=host)
    assert "certificate verify failed" in str(raised.value)
    still_serves(broker, tls_material)


def test_a_required_client_certificate_that_is_missing_or_untrusted_is_refused(broker_factory, tls_material):
    broker = ssl_broker(broker_factory, tls_material, client_auth="required")
    address = broker.address("SSL")
    context = ssl.create_default_context(cafile=str(tls_material.ca.certificate))
    host, port = address.split(":")
    # TLS 1.3 reports the refusal on the first read after the handshake; the reset of the
    # broker's close can overtake the alert, so the broker's log is what names the cause.
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            with pytest.raises((ssl.SSLError, ConnectionError)) as raised:
                tls.sendall(kafka_wire.frame(kafka_wire.api_versions_request(3, 1)))
                if not tls.recv(4):
                    raise ConnectionError("closed")
    if isinstance(raised.value, ssl.SSLError):
        assert "CERTIFICATE_REQUIRED" in str(raised.value).upper().replace(" ", "_"), raised.value

    stranger = ssl.create_default_context(cafile=str(tls_material.ca.certificate))
    stranger.load_cert_chain(str(tls_material.untrusted_client.certificate), str(tls_material.untrusted_client.key))
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with stranger.wrap_socket(raw, server_hostname=host) as tls:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                tls.sendall(kafka_wire.frame(kafka_wire.api_versions_request(3, 1)))
                if not tls.recv(4):
                    raise ConnectionError("closed")

    error = metadata_error({"bootstrap.servers": address, **ssl_config(tls_material)})
    assert "Broker transport failure" in error or "SSL" in error, error
    logged(broker, "PEER_DID_NOT_RETURN_A_CERTIFICATE")
    still_serves(broker, tls_material, certificate=True)


def test_a_plaintext_client_on_the_tls_port_is_closed_and_harms_nothing(broker_factory, tls_material):
    broker = ssl_broker(broker_factory, tls_material)
    host, port = broker.address("SSL").split(":")
    with kafka_wire.connect((host, int(port))) as raw:
        raw.sendall(kafka_wire.frame(kafka_wire.api_versions_request(3, 1)))
        assert kafka_wire.closed_by_peer(raw), "a plaintext request on a TLS port left the connection open"
    error = metadata_error({"bootstrap.servers": broker.address("SSL")})
    assert "Broker transport failure" in error, error
    logged(broker, "WRONG_VERSION_NUMBER")
    still_serves(broker, tls_material)
    broker.assert_alive()


def test_a_stalled_handshake_is_closed_by_the_request_read_timeout(broker_factory, tls_material):
    broker = ssl_broker(broker_factory, tls_material, extra=["--request-read-timeout-ms", "1000"])
    host, port = broker.address("SSL").split(":")
    with kafka_wire.connect((host, int(port))) as silent:
        assert kafka_wire.closed_by_peer(silent, seconds=30), "a client that never started its handshake stayed connected"
    logged(broker, "TLS handshake unfinished")
    still_serves(broker, tls_material)


# Start-up checks


def start_refused(tmp_path, *args: str) -> str:
    result = subprocess.run(
        [str(broker_binary()), "broker", "--data-dir", str(tmp_path / "data"),
         "--listeners", f"SSL://127.0.0.1:{free_port()}", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0, result.stdout
    assert not (tmp_path / "data").exists(), "the data directory was touched"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bad_tls_material_stops_the_broker_in_one_line(tmp_path, tls_material):
    t = tls_material
    assert "expired on 2020-01-02" in start_refused(
        tmp_path, "--ssl-certificate-location", str(t.expired_server.certificate),
        "--ssl-key-location", str(t.expired_server.key))
    assert "does not match the certificate" in start_refused(
        tmp_path, "--ssl-certificate-location", str(t.server.certificate), "--ssl-key-location", str(t.wrong_key))
    assert "does not exist" in start_refused(
        tmp_path, "--ssl-certificate-location", str(tmp_path / "nope.pem"), "--ssl-key-location", str(t.server.key))
    assert "needs --ssl-key-password" in start_refused(
        tmp_path, "--ssl-certificate-location", str(t.server.certificate),
        "--ssl-key-location", str(t.encrypted_server_key))
    assert "needs a certificate and key" in start_refused(tmp_path)


def test_an_encrypted_key_with_its_password_serves(broker_factory, tls_material):
    broker = broker_factory(
        listeners=["SSL"],
        extra_args=[
            "--ssl-certificate-location", str(tls_material.server.certificate),
            "--ssl-key-location", str(tls_material.encrypted_server_key), "--ssl-key-password", KEY_PASSWORD,
        ],
    )
    still_serves(broker, tls_material)


def test_metrics_refuse_a_non_loopback_address_unless_allowed(tmp_path, broker_factory):
    result = subprocess.run(
        [str(broker_binary()), "broker", "--data-dir", str(tmp_path / "data"), "--listen", f"127.0.0.1:{free_port()}",
         "--metrics-listen", f"0.0.0.0:{free_port()}"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "is not a loopback address" in result.stderr and "--metrics-allow-remote" in result.stderr, result.stderr

    # Allowed, it binds every interface; it is scraped here over loopback only.
    broker = broker_factory(start=False)
    broker.extra_args = ["--metrics-allow-remote"]
    port = free_port()
    command = broker.command()
    index = command.index("--metrics-listen")
    command[index + 1] = f"0.0.0.0:{port}"
    broker.command = lambda: command
    broker.start()
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200


def test_tls_below_1_2_is_refused_and_1_2_is_served(broker_factory, tls_material):
    broker = ssl_broker(broker_factory, tls_material)
    host, port = broker.address("SSL").split(":")

    def handshake(version: ssl.TLSVersion) -> str:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(str(tls_material.ca.certificate))
        # Security level 0 lets this client offer TLS 1.1 at all, so the refusal is the broker's.
        context.set_ciphers("DEFAULT@SECLEVEL=0")
        context.minimum_version = context.maximum_version = version
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                return tls.version()

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ssl.SSLError) as raised:
            handshake(ssl.TLSVersion.TLSv1_1)
    assert "PROTOCOL_VERSION" in str(raised.value).upper(), raised.value
    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"


def test_limits_hold_inside_tls_a_garbage_frame_and_a_trickled_request_are_closed(broker_factory, tls_material):
    broker = ssl_broker(broker_factory, tls_material, extra=["--request-read-timeout-ms", "1000"])
    host, port = broker.address("SSL").split(":")
    context = ssl.create_default_context(cafile=str(tls_material.ca.certificate))

    def tls_connection() -> ssl.SSLSocket:
        return context.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname=host)

    # A frame whose header names no API, sent properly encrypted: the connection closes.
    with tls_connection() as garbage:
        garbage.sendall(b"\x00\x00\x00\x08" + b"\x7f\x7f\x00\x00\x00\x00\x00\x01")
        assert kafka_wire.closed_by_peer(garbage), "an unknown API over TLS left the connection open"
    # Half a request, then silence: the request read timeout applies after the handshake too.
    with tls_connection() as trickle:
        trickle.sendall(kafka_wire.frame(kafka_wire.api_versions_request(3, 1))[:7])
        assert kafka_wire.closed_by_peer(trickle, seconds=30), "a half-sent request over TLS stayed open"
    logged(broker, "request unfinished after 1000 ms")
    still_serves(broker, tls_material)
