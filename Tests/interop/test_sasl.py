"""SASL on a SASL_PLAINTEXT listener with real clients: confluent-kafka (librdkafka), kafka-python and
kcat authenticate with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN, then produce, consume and run a
transaction; wrong passwords, unknown users and refused mechanisms fail with a clear client-side error
while the broker keeps serving others; nothing but the SASL steps is served before authentication;
failures are rate-limited per address; credentials are managed with KIP-554's admin APIs (through
confluent-kafka's AdminClient and `once user`) and survive a restart."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import struct
import subprocess
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.errors import KafkaError as KafkaPythonError

import confluent_helpers as ck
import kafka_wire as wire
from once_broker import broker_binary
from support import Deadline, index_of, record_count, unique_topic, value_for, wait_until

ALL_MECHANISMS = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
ALICE, ALICE_PASSWORD = "alice", "alice-secret-pw"
ADMIN, ADMIN_PASSWORD = "admin", "admin-secret-pw"

SASL_HANDSHAKE, SASL_AUTHENTICATE, METADATA = 17, 36, 3
SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE = 58, 33, 34


def sasl_broker(broker_factory, *extra: str, mechanisms: str = ",".join(ALL_MECHANISMS), listeners=None):
    """A broker with a SASL_PLAINTEXT listener and alice and admin under both SCRAM mechanisms,
    stored at start from ONCE_ADD_SCRAM (the environment form of --add-scram, which keeps the
    passwords off the command line and so out of the broker log's first line)."""
    credentials = [
        f"{mechanism}=[name={user},password={password}]"
        for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256")
        for user, password in ((ALICE, ALICE_PASSWORD), (ADMIN, ADMIN_PASSWORD))
    ]
    return broker_factory(
        listeners=listeners or ["SASL_PLAINTEXT"],
        extra_args=["--sasl-enabled-mechanisms", mechanisms, *extra],
        env={"ONCE_ADD_SCRAM": "\n".join(credentials)},
    )


def librdkafka_sasl(mechanism: str, user: str = ALICE, password: str = ALICE_PASSWORD) -> dict[str, str]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def sasl_address(broker) -> SimpleNamespace:
    return SimpleNamespace(bootstrap=broker.address("SASL_PLAINTEXT"))


def authentication_errors(broker, conf: dict[str, str]) -> list[KafkaError]:
    """What librdkafka's error callback reports while a producer tries to reach the broker."""
    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": broker.address("SASL_PLAINTEXT"), **conf, "error_cb": errors.append})
    wait_until(
        lambda: producer.poll(0.2) >= 0 and any(e.code() == KafkaError._AUTHENTICATION for e in errors),
        30, "librdkafka to report an authentication error")
    return [e for e in errors if e.code() == KafkaError._AUTHENTICATION]


@pytest.mark.parametrize("mechanism", ALL_MECHANISMS)
def test_confluent_kafka_produces_consumes_and_commits_a_transaction(broker_factory, mechanism):
    broker = sasl_broker(broker_factory)
    target, conf = sasl_address(broker), librdkafka_sasl(mechanism)
    topic = unique_topic("sasl-ck")
    count = min(record_count(), 2000)
    ck.produce_indexed(target, topic, range(count), partition=0, **conf)
    records = ck.read_to_end(target, topic, [0], **conf)
    assert [index_of(r.value) for r in records] == list(range(count))

    txn = Producer({"bootstrap.servers": target.bootstrap, "transactional.id": unique_topic("sasl-tid"), **conf})
    txn.init_transactions(30)
    txn.begin_transaction()
    for i in range(count, count + 10):
        txn.produce(topic, value=value_for(i), partition=0)
    txn.commit_transaction(30)
    committed = ck.read_to_end(target, topic, [0], **{"isolation.level": "read_committed", **conf})
    assert [index_of(r.value) for r in committed] == list(range(count + 10))

    # The principal is what ACLs will see; the log names the user, never the password.
    assert ALICE_PASSWORD not in broker.log_text()


@pytest.mark.parametrize("mechanism", ALL_MECHANISMS)
def test_kafka_python_produces_consumes_and_commits_a_transaction(broker_factory, mechanism):
    broker = sasl_broker(broker_factory)
    sasl = dict(
        bootstrap_servers=broker.address("SASL_PLAINTEXT"), security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
        sasl_plain_username=ALICE, sasl_plain_password=ALICE_PASSWORD,
    )
    topic = unique_topic("sasl-kp")
    producer = KafkaProducer(acks="all", enable_idempotence=False, **sasl)
    try:
        for i in range(100):
            producer.send(topic, value=value_for(i), partition=0).get(timeout=30)
    finally:
        producer.close(timeout=10)

    txn = KafkaProducer(transactional_id=unique_topic("sasl-kp-tid"), **sasl)
    try:
        txn.init_transactions()
        txn.begin_transaction()
        for i in range(100, 110):
            txn.send(topic, value=value_for(i), partition=0)
        txn.commit_transaction()
    finally:
        txn.close(timeout=10)

    consumer = KafkaConsumer(isolation_level="read_committed", enable_auto_commit=False, **sasl)
    try:
        partition = KTopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        end = consumer.end_offsets([partition])[partition]
        values = []
        deadline = Deadline(60, "kafka-python to read the committed records")
        while consumer.position(partition) < end:
            deadline.check(f"({len(values)} so far)")
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(index_of(r.value) for r in batch)
        assert values == list(range(110))
    finally:
        consumer.close()


def test_kcat_produces_and_consumes_over_sasl_plaintext(broker_factory):
    broker = sasl_broker(broker_factory)
    binary = shutil.which("kcat")
    assert binary, "kcat is not installed (scripts/install-deps.sh installs it)"
    topic = unique_topic("sasl-kcat")
    security = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-256",
                "-X", f"sasl.username={ALICE}", "-X", f"sasl.password={ALICE_PASSWORD}"]
    base = [binary, "-b", broker.address("SASL_PLAINTEXT"), *security]
    lines = b"".join(b"kcat-%d\n" % i for i in range(20))
    produced = subprocess.run([*base, "-P", "-t", topic, "-p", "0"], input=lines, capture_output=True, timeout=90)
    assert produced.returncode == 0, produced.stderr.decode(errors="replace")
    consumed = subprocess.run([*base, "-C", "-t", topic, "-e", "-o", "beginning", "-q"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=90)
    assert consumed.returncode == 0, consumed.stderr.decode(errors="replace")
    assert consumed.stdout.splitlines() == lines.splitlines()

    wrong = subprocess.run(
        [binary, "-b", broker.address("SASL_PLAINTEXT"), *security[:-1], "sasl.password=nope", "-L", "-m", "5"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
    assert wrong.returncode != 0
    assert b"Authentication failed" in wrong.stderr, wrong.stderr.decode(errors="replace")


@pytest.mark.parametrize(
    "mechanism, user, password",
    [("SCRAM-SHA-512", ALICE, "wrong-password"), ("SCRAM-SHA-256", "mallory", "anything"),
     ("PLAIN", ALICE, "wrong-password"), ("PLAIN", "mallory", "anything")],
    ids=["scram-wrong-password", "scram-unknown-user", "plain-wrong-password", "plain-unknown-user"],
)
def test_bad_credentials_fail_clearly_and_others_are_still_served(broker_factory, mechanism, user, password):
    broker = sasl_broker(broker_factory)
    errors = authentication_errors(broker, librdkafka_sasl(mechanism, user, password))
    text = str(errors[0])
    if mechanism == "PLAIN":
        assert "Authentication failed: Invalid username or password" in text, text
    else:
        assert f"invalid credentials with SASL mechanism {mechanism}" in text, text
    assert password not in broker.log_text()
    assert "SASL authentication failed" in broker.log_text()

    broker.assert_alive()
    topic = unique_topic("sasl-after-failure")
    ck.produce_indexed(sasl_address(broker), topic, range(10), partition=0, **librdkafka_sasl("SCRAM-SHA-512"))


def test_kafka_python_reports_a_wrong_password(broker_factory, caplog):
    broker = sasl_broker(broker_factory)
    # kafka-python logs each refused attempt and gives up bootstrapping; the log is the clear error.
    with caplog.at_level(logging.WARNING, logger="kafka"), pytest.raises(KafkaPythonError):
        KafkaProducer(
            bootstrap_servers=broker.address("SASL_PLAINTEXT"), security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=ALICE, sasl_plain_password="wrong",
            max_block_ms=5_000,
        )
    assert any("SaslAuthenticationFailedError" in r.getMessage()
               and "invalid credentials with SASL mechanism SCRAM-SHA-512" in r.getMessage() for r in caplog.records)
    assert "SASL authentication failed" in broker.log_text()
    broker.assert_alive()


def test_a_mechanism_the_broker_does_not_enable_is_refused_with_the_enabled_list(broker_factory):
    broker = sasl_broker(broker_factory, mechanisms="SCRAM-SHA-512")
    errors = authentication_errors(broker, librdkafka_sasl("PLAIN"))
    text = str(errors[0])
    assert "Unsupported SASL mechanism" in text and "SCRAM-SHA-512" in text, text

    # The same answer on the wire: UNSUPPORTED_SASL_MECHANISM and the enabled list.
    with wire.connect(sasl_port(broker)) as sock:
        code, mechanisms = handshake(sock, "GSSAPI")
        assert code == UNSUPPORTED_SASL_MECHANISM and mechanisms == ["SCRAM-SHA-512"]
    ck.produce_indexed(sasl_address(broker), unique_topic("sasl-mech"), range(5), partition=0,
                       **librdkafka_sasl("SCRAM-SHA-512"))


# Raw frames: what no well-behaved client sends.

def sasl_port(broker) -> tuple[str, int]:
    host, port = broker.address("SASL_PLAINTEXT").rsplit(":", 1)
    return host, int(port)


def string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def handshake(sock, mechanism: str) -> tuple[int, list[str]]:
    sock.sendall(wire.frame(wire.request_header(SASL_HANDSHAKE, 1, 1, flexible=False) + string(mechanism)))
    payload = wire.read_frame(sock)
    code, count = struct.unpack(">hi", payload[4:10])
    pos, mechanisms = 10, []
    for _ in range(count):
        (length,) = struct.unpack(">h", payload[pos:pos + 2])
        mechanisms.append(payload[pos + 2:pos + 2 + length].decode())
        pos += 2 + length
    return code, mechanisms


def plain_authenticate(sock, user: str, password: str) -> tuple[int, str]:
    """SaslAuthenticate v1 with a PLAIN token; returns the error code and message."""
    token = b"\0" + user.encode() + b"\0" + password.encode()
    sock.sendall(wire.frame(wire.request_header(SASL_AUTHENTICATE, 1, 2, flexible=False)
                            + struct.pack(">i", len(token)) + token))
    payload = wire.read_frame(sock)
    (code, length) = struct.unpack(">hh", payload[4:8])
    message = payload[8:8 + length].decode() if length >= 0 else ""
    return code, message


def metadata_request(correlation_id: int) -> bytes:
    return wire.frame(wire.request_header(METADATA, 1, correlation_id, flexible=False) + struct.pack(">i", -1))


def plain_login(address, user: str, password: str, source: str = "127.0.0.1") -> tuple[socket.socket, int, str]:
    sock = socket.create_connection(address, timeout=20, source_address=(source, 0))
    code, _ = handshake(sock, "PLAIN")
    assert code == 0
    return (sock, *plain_authenticate(sock, user, password))


def test_nothing_but_the_sasl_steps_is_served_before_authentication(broker_factory):
    broker = sasl_broker(broker_factory)
    # ApiVersions is answered, then Metadata closes the connection unanswered, as Kafka does.
    with wire.connect(sasl_port(broker)) as sock:
        sock.sendall(wire.api_versions_request(3, 1))
        answer = wire.parse_api_versions(wire.read_frame(sock), 3)
        assert answer.error_code == 0 and SASL_HANDSHAKE in answer.ranges and SASL_AUTHENTICATE in answer.ranges
        sock.sendall(metadata_request(2))
        assert wire.closed_by_peer(sock)
    # SaslAuthenticate before SaslHandshake closes it too.
    with wire.connect(sasl_port(broker)) as sock:
        sock.sendall(wire.frame(wire.request_header(SASL_AUTHENTICATE, 1, 1, flexible=False) + struct.pack(">i", 0)))
        assert wire.closed_by_peer(sock)
    # After authenticating, Metadata is served on the same connection.
    sock, code, message = plain_login(sasl_port(broker), ALICE, ALICE_PASSWORD)
    with sock:
        assert (code, message) == (0, "")
        sock.sendall(metadata_request(3))
        assert struct.unpack(">i", wire.read_frame(sock)[:4])[0] == 3
    assert "Unexpected Kafka request of type Metadata during SASL handshake" in broker.log_text()
    broker.assert_alive()


def test_failed_authentications_are_rate_limited_per_address(broker_factory):
    broker = sasl_broker(
        broker_factory, "--sasl-max-failed-authentications-per-minute", "3",
        "--connection-failed-authentication-delay-ms", "0")
    address = sasl_port(broker)
    authenticated, code, _ = plain_login(address, ALICE, ALICE_PASSWORD)
    assert code == 0
    for _ in range(3):
        sock, code, message = plain_login(address, ALICE, "guess")
        sock.close()
        assert (code, message) == (SASL_AUTHENTICATION_FAILED, "Authentication failed: Invalid username or password")
    # The fourth attempt from this address fails unchecked, even with the right password...
    sock, code, message = plain_login(address, ALICE, ALICE_PASSWORD)
    sock.close()
    assert code == SASL_AUTHENTICATION_FAILED and "too many failed authentications" in message, message
    # ...while another address authenticates, and a connection authenticated before is still served.
    sock, code, message = plain_login(address, ALICE, ALICE_PASSWORD, source="127.0.0.2")
    sock.close()
    assert (code, message) == (0, "")
    with authenticated:
        authenticated.sendall(metadata_request(7))
        assert struct.unpack(">i", wire.read_frame(authenticated)[:4])[0] == 7
    assert "rate limited" in broker.log_text()


def admin_client(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.address("SASL_PLAINTEXT"),
                        **librdkafka_sasl("SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD)})


def test_admin_client_alters_and_describes_scram_credentials(broker_factory):
    broker = sasl_broker(broker_factory)
    admin = admin_client(broker)
    bob = unique_topic("bob")
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion(bob, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"bob-password"),
        UserScramCredentialUpsertion("weak", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000), b"weak-password"),
    ])
    futures[bob].result(timeout=30)
    with pytest.raises(KafkaException) as weak:
        futures["weak"].result(timeout=30)
    assert weak.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL

    described = {user: future.result(timeout=30)
                 for user, future in admin.describe_user_scram_credentials([bob, ALICE]).items()}
    assert [(c.mechanism, c.iterations) for c in described[bob].scram_credential_infos] == [
        (ScramMechanism.SCRAM_SHA_256, 8192)]
    assert sorted(c.mechanism for c in described[ALICE].scram_credential_infos) == [
        ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512]

    # The new user authenticates with the password the AdminClient salted on its side.
    ck.produce_indexed(sasl_address(broker), unique_topic("sasl-bob"), range(5), partition=0,
                       **librdkafka_sasl("SCRAM-SHA-256", bob, "bob-password"))

    admin.alter_user_scram_credentials([UserScramCredentialDeletion(bob, ScramMechanism.SCRAM_SHA_256)])[bob].result(
        timeout=30)
    with pytest.raises(KafkaException) as gone:
        admin.describe_user_scram_credentials([bob])[bob].result(timeout=30)
    assert gone.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    with pytest.raises(KafkaException) as twice:
        admin.alter_user_scram_credentials([UserScramCredentialDeletion(ALICE, ScramMechanism.SCRAM_SHA_256),
                                            UserScramCredentialDeletion(ALICE, ScramMechanism.SCRAM_SHA_512)])[
            ALICE].result(timeout=30)
    assert twice.value.args[0].code() == KafkaError.DUPLICATE_RESOURCE
    errors = authentication_errors(broker, librdkafka_sasl("SCRAM-SHA-256", bob, "bob-password"))
    assert "invalid credentials" in str(errors[0])


def once(broker, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [str(broker_binary()), *args, "--bootstrap-server", broker.address("SASL_PLAINTEXT")]
    result = subprocess.run(command, capture_output=True, timeout=60, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    if check:
        assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def once_sasl(user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
    return {"ONCE_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "ONCE_SASL_MECHANISM": mechanism,
            "ONCE_SASL_USERNAME": user, "ONCE_SASL_PASSWORD": password}


def test_once_user_and_once_produce_consume_over_sasl_and_credentials_survive_a_restart(broker_factory):
    broker = sasl_broker(broker_factory)
    as_admin = once_sasl(ADMIN, ADMIN_PASSWORD)
    once(broker, "user", "create", "carol", "--mechanism", "SCRAM-SHA-256", "--password", "carol-pw",
         "--iterations", "4096", env=as_admin)
    listed = once(broker, "user", "list", env=as_admin).stdout.splitlines()
    assert listed[0] == "USER\tMECHANISM\tITERATIONS"
    assert "carol\tSCRAM-SHA-256\t4096" in listed and "alice\tSCRAM-SHA-512\t4096" in listed

    topic = unique_topic("sasl-cli")
    as_carol = once_sasl("carol", "carol-pw", "SCRAM-SHA-256")
    produced = subprocess.run(
        [str(broker_binary()), "produce", topic, "--bootstrap-server", broker.address("SASL_PLAINTEXT")],
        input="one\ntwo\nthree\n", capture_output=True, text=True, timeout=60, env={**os.environ, **as_carol})
    assert produced.returncode == 0, produced.stderr
    consumed = once(broker, "consume", topic, "--from-beginning", "--max-messages", "3", env=as_carol)
    assert consumed.stdout.splitlines() == ["one", "two", "three"]

    # OnceClient's typed authentication error, as the CLI prints it: one line, no password.
    wrong = once(broker, "user", "list", env=once_sasl("carol", "not-carols", "SCRAM-SHA-256"), check=False)
    assert wrong.returncode != 0
    assert "SASL SCRAM-SHA-256 authentication as 'carol'" in wrong.stderr and "SASL_AUTHENTICATION_FAILED" in wrong.stderr
    assert "not-carols" not in wrong.stderr
    plain_refused = once(broker, "user", "list", env={**as_admin, "ONCE_SASL_MECHANISM": "GSSAPI"}, check=False)
    assert plain_refused.returncode != 0 and "sasl.mechanism" in plain_refused.stderr

    # Credentials are durable: without --add-scram, after a restart, carol and alice still log in.
    broker.stop()
    del broker.env["ONCE_ADD_SCRAM"]
    broker.restart()
    ck.produce_indexed(sasl_address(broker), unique_topic("sasl-restart"), range(5), partition=0,
                       **librdkafka_sasl("SCRAM-SHA-256", "carol", "carol-pw"))
    ck.produce_indexed(sasl_address(broker), unique_topic("sasl-restart"), range(5), partition=0,
                       **librdkafka_sasl("PLAIN", ALICE, ALICE_PASSWORD))
    once(broker, "user", "delete", "carol", "--mechanism", "SCRAM-SHA-256", env=as_admin)
    missing = once(broker, "user", "list", "carol", env=as_admin, check=False)
    assert missing.returncode != 0 and "no SCRAM credentials for carol" in missing.stderr
    stored = [path.read_bytes() for path in broker.data_dir.rglob("scram-credentials*")]
    assert stored, "no scram-credentials document in the data directory"
    assert all(ALICE_PASSWORD.encode() not in document and b"carol-pw" not in document for document in stored)


def test_plaintext_listener_answers_sasl_requests_with_illegal_sasl_state(broker_factory):
    broker = sasl_broker(broker_factory, listeners=["SASL_PLAINTEXT", "PLAINTEXT"])
    host, port = broker.address("PLAINTEXT").rsplit(":", 1)
    with wire.connect((host, int(port))) as sock:
        code, mechanisms = handshake(sock, "PLAIN")
        assert (code, mechanisms) == (ILLEGAL_SASL_STATE, [])
    # The same broker serves both listeners.
    ck.produce_indexed(SimpleNamespace(bootstrap=broker.address("PLAINTEXT")), unique_topic("plain-l"), range(3),
                       partition=0)


def test_handshake_v0_carries_bare_tokens(broker_factory):
    """Before KIP-152, SaslHandshake v0 is followed by bare size-prefixed tokens; Kafka still serves
    that framing, and librdkafka 2.0 refuses SASL unless v0 is advertised."""
    broker = sasl_broker(broker_factory, "--connection-failed-authentication-delay-ms", "0")
    with wire.connect(sasl_port(broker)) as sock:
        sock.sendall(wire.frame(wire.request_header(SASL_HANDSHAKE, 0, 1, flexible=False) + string("PLAIN")))
        assert struct.unpack(">h", wire.read_frame(sock)[4:6])[0] == 0
        sock.sendall(wire.frame(b"\0" + ALICE.encode() + b"\0" + ALICE_PASSWORD.encode()))
        assert wire.read_frame(sock) == b""  # PLAIN's empty server token
        sock.sendall(metadata_request(5))
        assert struct.unpack(">i", wire.read_frame(sock)[:4])[0] == 5
    # A wrong password in v0 has no error response: the connection is closed.
    with wire.connect(sasl_port(broker)) as sock:
        sock.sendall(wire.frame(wire.request_header(SASL_HANDSHAKE, 0, 1, flexible=False) + string("PLAIN")))
        wire.read_frame(sock)
        sock.sendall(wire.frame(b"\0" + ALICE.encode() + b"\0wrong"))
        assert wire.closed_by_peer(sock)
    assert "wrong password for user 'alice'" in broker.log_text()


# SASL_SSL: the same exchanges inside TLS (the broker's TLS material from the tls_material fixture).

@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_confluent_kafka_over_sasl_ssl(broker_factory, tls_material, mechanism):
    broker = sasl_broker(broker_factory, *tls_material.broker_args(), listeners=["SASL_SSL"])
    target = SimpleNamespace(bootstrap=broker.address("SASL_SSL"))
    conf = {**librdkafka_sasl(mechanism), "security.protocol": "SASL_SSL", "ssl.ca.location": str(tls_material.ca.certificate)}
    topic = unique_topic("sasl-ssl-ck")
    ck.produce_indexed(target, topic, range(200), partition=0, **conf)
    txn = Producer({"bootstrap.servers": target.bootstrap, "transactional.id": unique_topic("sasl-ssl-tid"), **conf})
    txn.init_transactions(30)
    txn.begin_transaction()
    for i in range(200, 210):
        txn.produce(topic, value=value_for(i), partition=0)
    txn.commit_transaction(30)
    records = ck.read_to_end(target, topic, [0], **{"isolation.level": "read_committed", **conf})
    assert [index_of(r.value) for r in records] == list(range(210))

    errors: list[KafkaError] = []
    wrong = Producer({"bootstrap.servers": target.bootstrap, **conf, "sasl.password": "wrong", "error_cb": errors.append})
    wait_until(lambda: wrong.poll(0.2) >= 0 and any(e.code() == KafkaError._AUTHENTICATION for e in errors), 30,
               "librdkafka to report the refused password over TLS")
    assert ALICE_PASSWORD not in broker.log_text()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_kafka_python_over_sasl_ssl(broker_factory, tls_material, mechanism):
    broker = sasl_broker(broker_factory, *tls_material.broker_args(), listeners=["SASL_SSL"])
    sasl = dict(
        bootstrap_servers=broker.address("SASL_SSL"), security_protocol="SASL_SSL", ssl_cafile=str(tls_material.ca.certificate),
        sasl_mechanism=mechanism, sasl_plain_username=ALICE, sasl_plain_password=ALICE_PASSWORD,
    )
    topic = unique_topic("sasl-ssl-kp")
    producer = KafkaProducer(acks="all", enable_idempotence=False, **sasl)
    try:
        for i in range(50):
            producer.send(topic, value=value_for(i), partition=0).get(timeout=30)
    finally:
        producer.close(timeout=10)
    consumer = KafkaConsumer(enable_auto_commit=False, **sasl)
    try:
        partition = KTopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        values = []
        deadline = Deadline(60, "kafka-python to read over SASL_SSL")
        while len(values) < 50:
            deadline.check(f"({len(values)} so far)")
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(index_of(r.value) for r in batch)
        assert values == list(range(50))
    finally:
        consumer.close()


def test_once_cli_over_sasl_ssl_with_kcat_style_properties(broker_factory, tls_material):
    """OnceClient with TLS and SCRAM together, configured the way kcat is: -X with librdkafka's names."""
    broker = sasl_broker(broker_factory, *tls_material.broker_args(), listeners=["SASL_SSL"])
    properties = ["-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={tls_material.ca.certificate}",
                  "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", f"sasl.username={ALICE}", "-X", f"sasl.password={ALICE_PASSWORD}"]
    topic = unique_topic("sasl-ssl-cli")
    command = [str(broker_binary()), "produce", topic, "--bootstrap-server", broker.address("SASL_SSL"), *properties]
    produced = subprocess.run(command, input="a\nb\n", capture_output=True, text=True, timeout=60)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(
        [str(broker_binary()), "consume", topic, "--from-beginning", "--max-messages", "2",
         "--bootstrap-server", broker.address("SASL_SSL"), *properties],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == ["a", "b"]
    # librdkafka reads what OnceClient wrote, over the same listener.
    conf = {**librdkafka_sasl("SCRAM-SHA-512"), "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(tls_material.ca.certificate)}
    records = ck.read_to_end(SimpleNamespace(bootstrap=broker.address("SASL_SSL")), topic, [0], **conf)
    assert [r.value for r in records] == [b"a", b"b"]

    # sasl.* without a SASL protocol is refused before anything connects.
    refused = subprocess.run(
        [str(broker_binary()), "user", "list", "--bootstrap-server", broker.address("SASL_SSL"),
         "-X", "sasl.username=alice"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert refused.returncode != 0 and "need security.protocol=SASL_PLAINTEXT or SASL_SSL" in refused.stderr
