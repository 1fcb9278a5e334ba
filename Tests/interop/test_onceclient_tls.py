"""OnceClient over TLS, through the `once` command line: produce, consume, cluster info and perf
with kcat-style `-X` properties or ONCE_* variables, a client certificate whose subject the
broker takes as the principal, and each TLS failure as one clear line naming its cause."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading

import pytest

from confluent_helpers import read_to_end
from once_broker import broker_binary
from support import index_of, unique_topic
from tls_material import CLIENT_PRINCIPAL

CLI_TIMEOUT = 90


class Via:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap


def once(address: str, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [str(broker_binary()), *args, "--bootstrap-server", address]
    result = subprocess.run(
        command, input=stdin, capture_output=True, timeout=CLI_TIMEOUT,
        env={**os.environ, **(env or {})}, stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    done = subprocess.CompletedProcess(
        command, result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace"))
    if check:
        assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def ssl_flags(tls, *, certificate: bool = True, ca=None) -> list[str]:
    flags = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={(ca or tls.ca).certificate}"]
    if certificate:
        flags += ["-X", f"ssl.certificate.location={tls.client.certificate}", "-X", f"ssl.key.location={tls.client.key}"]
    return flags


def one_line_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, f"expected failure, got exit 0\n{result.stdout}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one stderr line, got:\n{result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture
def mtls_broker(broker_factory, tls_material):
    return broker_factory(listeners=["SSL", "PLAINTEXT"], extra_args=tls_material.broker_args(client_auth="required"))


def test_once_produce_and_consume_over_ssl_with_a_client_certificate(mtls_broker, tls_material):
    address = mtls_broker.address("SSL")
    topic = unique_topic("once-ssl")
    once(address, "topic", "create", topic, "--partitions", "1", *ssl_flags(tls_material))
    lines = [f"value-{i:06d}" for i in range(500)]
    once(address, "produce", topic, *ssl_flags(tls_material), stdin="".join(f"{l}\n" for l in lines).encode())
    consumed = once(address, "consume", topic, "--from-beginning", "--exit", *ssl_flags(tls_material))
    assert consumed.stdout.splitlines() == lines
    # What OnceClient wrote over TLS, librdkafka reads in plaintext: it is the same log.
    assert [index_of(r.value) for r in read_to_end(Via(mtls_broker.address("PLAINTEXT")), topic, [0])] == list(range(500))
    assert f"principal={CLIENT_PRINCIPAL}" in mtls_broker.log_text()


def test_the_environment_configures_tls_and_cluster_info_shows_the_ssl_listener(mtls_broker, tls_material):
    env = {
        "ONCE_SECURITY_PROTOCOL": "SSL",
        "ONCE_SSL_CA_LOCATION": str(tls_material.ca.certificate),
        "ONCE_SSL_CERTIFICATE_LOCATION": str(tls_material.client.certificate),
        "ONCE_SSL_KEY_LOCATION": str(tls_material.client.key),
    }
    info = once(mtls_broker.address("SSL"), "cluster", "info", env=env).stdout
    assert mtls_broker.address("SSL") in info, info
    assert mtls_broker.address("PLAINTEXT") not in info, info
    # -X overrides the environment: a plaintext client on the TLS port fails, it does not hang.
    overridden = once(mtls_broker.address("SSL"), "cluster", "info", "-X", "security.protocol=PLAINTEXT",
                      "--request-timeout-ms", "10000", env={**env, "ONCE_SSL_CA_LOCATION": "", "ONCE_SSL_CERTIFICATE_LOCATION": "", "ONCE_SSL_KEY_LOCATION": ""},
                      check=False)
    one_line_failure(overridden, "the broker answered with TLS", "security.protocol=SSL")


def test_once_perf_over_ssl(mtls_broker, tls_material):
    address = mtls_broker.address("SSL")
    topic = unique_topic("perf-ssl")
    produced = once(address, "perf", "produce", "--topic", topic, "--num-records", "5000", "--record-size", "100",
                    "--no-progress", *ssl_flags(tls_material))
    assert produced.stdout.startswith("5000 records sent"), produced.stdout
    consumed = once(address, "perf", "consume", "--topic", topic, "--num-records", "5000", "--no-progress",
                    *ssl_flags(tls_material))
    assert consumed.stdout.startswith("5000 records consumed"), consumed.stdout


def test_tls_failures_are_one_clear_line(mtls_broker, tls_material):
    ssl_address = mtls_broker.address("SSL")
    untrusted = once(ssl_address, "cluster", "info", *ssl_flags(tls_material, ca=tls_material.untrusted_ca), check=False)
    one_line_failure(untrusted, f"TLS handshake with {ssl_address} failed", "CERTIFICATE_VERIFY_FAILED")

    missing = once(ssl_address, "cluster", "info", *ssl_flags(tls_material, certificate=False), check=False)
    one_line_failure(missing, ssl_address, "requires a client certificate")

    plain_port = once(mtls_broker.address("PLAINTEXT"), "cluster", "info", *ssl_flags(tls_material), check=False)
    one_line_failure(plain_port, f"TLS handshake with {mtls_broker.address('PLAINTEXT')} failed", "is this a TLS listener?")

    bad_property = once(ssl_address, "cluster", "info", "-X", "ssl.ca.locaton=x", check=False)
    assert bad_property.returncode != 0 and "unknown property" in bad_property.stderr, bad_property.stderr

    # And the broker still serves a well-configured client.
    assert ssl_address in once(ssl_address, "cluster", "info", *ssl_flags(tls_material)).stdout


def test_an_expired_broker_certificate_fails_verification(tls_material):
    """The broker itself refuses to start with an expired certificate, so a TLS server from
    Python's ssl module presents one here."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls_material.expired_server.certificate), str(tls_material.expired_server.key))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except socket.timeout:
                continue
            try:
                with context.wrap_socket(raw, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = once(f"127.0.0.1:{port}", "cluster", "info", *ssl_flags(tls_material, certificate=False), check=False)
        one_line_failure(result, f"TLS handshake with 127.0.0.1:{port} failed", "CERTIFICATE_VERIFY_FAILED")
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_the_broker_certificate_must_name_the_address_unless_verification_is_off(broker_factory, tls_material):
    broker = broker_factory(
        listeners=["SSL"], extra_args=tls_material.broker_args(server=tls_material.misnamed_server))
    address = broker.address("SSL")
    refused = once(address, "cluster", "info", *ssl_flags(tls_material, certificate=False), check=False)
    one_line_failure(refused, f"TLS handshake with {address} failed", "does not name")
    relaxed = once(address, "cluster", "info", *ssl_flags(tls_material, certificate=False),
                   "-X", "ssl.endpoint.identification.algorithm=none")
    assert address in relaxed.stdout
