"""The issue's stranger scenarios with two authenticated users over SASL_PLAINTEXT with PLAIN:
mallory, authenticated but granted nothing of alice's, tries what a stranger did before ACLs
(DescribeTransactions of alice's transactional id, EndTxn of her open transaction, fencing it with
InitProducerId, overwriting her group's offsets, deleting __transaction_state). Each is refused with
Kafka's authorization error while alice keeps working. Then the seed's read-process-write loop runs
end to end with ACLs that grant exactly what it needs, and fails with the right error when one is
missing."""

from __future__ import annotations

import os
import re
import struct
import subprocess

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

import confluent_helpers as ck
import kafka_wire as wire
from once_broker import broker_binary
from support import Deadline, unique_topic

ADMIN = ("admin", "admin-secret-pw")
ALICE = ("alice", "alice-secret-pw")
MALLORY = ("mallory", "mallory-secret-pw")

SASL_HANDSHAKE, SASL_AUTHENTICATE, END_TXN = 17, 36, 26
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53


@pytest.fixture
def secured(broker_factory):
    """One SASL_PLAINTEXT listener, PLAIN checked against credentials stored at start, the
    authorizer on with admin as the only super user."""
    credentials = [f"SCRAM-SHA-512=[name={user},password={password}]" for user, password in (ADMIN, ALICE, MALLORY)]
    return broker_factory(
        listeners=["SASL_PLAINTEXT"],
        extra_args=["--sasl-enabled-mechanisms", "PLAIN,SCRAM-SHA-512", "--authorizer", "on",
                    "--super-users", "User:admin", "--group-initial-rebalance-delay-ms", "0"],
        env={"ONCE_ADD_SCRAM": "\n".join(credentials)},
    )


def conf(broker, user: tuple[str, str], **extra) -> dict:
    return {
        "bootstrap.servers": broker.address("SASL_PLAINTEXT"),
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user[0],
        "sasl.password": user[1],
        **extra,
    }


def admin_client(broker, user=ADMIN) -> AdminClient:
    return AdminClient(conf(broker, user))


def grant(broker, *bindings: AclBinding) -> None:
    # The futures die with their client, so the client must outlive the wait.
    client = admin_client(broker)
    for future in client.create_acls(list(bindings)).values():
        future.result(timeout=30)


def allow(resource_type, name, user, operation, pattern=ResourcePatternType.LITERAL) -> AclBinding:
    return AclBinding(resource_type, name, pattern, f"User:{user[0]}", "*", operation, AclPermissionType.ALLOW)


def create_topics(broker, *names: str) -> None:
    client = admin_client(broker)
    for future in client.create_topics([NewTopic(n, 1, 1) for n in names], operation_timeout=30).values():
        future.result(timeout=60)


def once(broker, user, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"ONCE_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "ONCE_SASL_MECHANISM": "PLAIN",
           "ONCE_SASL_USERNAME": user[0], "ONCE_SASL_PASSWORD": user[1]}
    command = [str(broker_binary()), *args, "--bootstrap-server", broker.address("SASL_PLAINTEXT")]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def committed_values(broker, topic: str) -> list[bytes]:
    """What a read_committed reader (the admin) sees from the start to the last stable offset."""
    return [r.value for r in ck.read_to_end(
        broker, topic, [0], **conf(broker, ADMIN, **{"isolation.level": "read_committed", "group.id": "auditor"}))]


def raw_end_txn(broker, user, transactional_id: str, producer_id: int, epoch: int) -> int:
    """EndTxn(commit) on a connection authenticated with PLAIN, in raw frames: no client sends
    EndTxn for someone else's producer id. Returns the error code."""
    host, port = broker.address("SASL_PLAINTEXT").split(":")
    with wire.connect((host, int(port))) as sock:
        mechanism = b"PLAIN"
        sock.sendall(wire.frame(wire.request_header(SASL_HANDSHAKE, 1, 1, flexible=False)
                                + struct.pack(">h", len(mechanism)) + mechanism))
        handshake = wire.read_frame(sock)
        assert struct.unpack(">h", handshake[4:6])[0] == 0, "SaslHandshake refused PLAIN"
        token = b"\0" + user[0].encode() + b"\0" + user[1].encode()
        sock.sendall(wire.frame(wire.request_header(SASL_AUTHENTICATE, 2, 2, flexible=True)
                                + wire.uvarint(len(token) + 1) + token + b"\x00"))
        authenticated = wire.read_frame(sock)
        assert struct.unpack(">h", authenticated[5:7])[0] == 0, "PLAIN authentication failed"
        body = (wire.compact_string(transactional_id) + struct.pack(">qh?", producer_id, epoch, True) + b"\x00")
        sock.sendall(wire.frame(wire.request_header(END_TXN, 3, 3, flexible=True) + body))
        answer = wire.read_frame(sock)
        # Response header v1 (correlation id, tags), then throttle time and the error code.
        return struct.unpack(">h", answer[9:11])[0]


def txn_producer(broker, user, transactional_id: str) -> Producer:
    return Producer(conf(broker, user, **{"transactional.id": transactional_id, "linger.ms": 5}))


def test_a_stranger_cannot_describe_end_or_fence_another_applications_transaction(secured):
    broker = secured
    orders = unique_topic("orders")
    create_topics(broker, orders)
    grant(broker,
          allow(ResourceType.TOPIC, orders, ALICE, AclOperation.WRITE),
          allow(ResourceType.TRANSACTIONAL_ID, "alice-app", ALICE, AclOperation.WRITE),
          # mallory is a real user with rights of her own, just none over alice's things.
          allow(ResourceType.TOPIC, orders, MALLORY, AclOperation.READ),
          allow(ResourceType.TRANSACTIONAL_ID, "mallory-app", MALLORY, AclOperation.WRITE))

    # ACL administration is the admin's: `once acl` over SASL for each of them.
    listed = once(broker, ADMIN, "acl", "list", "--transactional-id", "alice-app")
    assert listed.returncode == 0 and "(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)" in listed.stdout
    for command in (["acl", "list"], ["acl", "add", "--allow-principal", "User:mallory", "--operation", "All",
                                      "--transactional-id", "alice-app"]):
        refused = once(broker, MALLORY, *command)
        assert refused.returncode != 0 and "CLUSTER_AUTHORIZATION_FAILED" in refused.stderr, refused

    owner = txn_producer(broker, ALICE, "alice-app")
    owner.init_transactions(30)
    owner.begin_transaction()
    for i in range(3):
        owner.produce(orders, value=f"payment-{i}".encode())
    owner.flush(30)

    # The admin (a super user) may describe it; that is where the stranger's producer id comes from.
    described = once(broker, ADMIN, "txn", "describe", "alice-app")
    assert described.returncode == 0, described.stderr
    producer_id, epoch = map(int, re.search(r"producer:\s+(\d+) epoch (\d+)", described.stdout).groups())

    refused = once(broker, MALLORY, "txn", "describe", "alice-app")
    assert refused.returncode != 0 and "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in refused.stderr, refused
    assert raw_end_txn(broker, MALLORY, "alice-app", producer_id, epoch) == TRANSACTIONAL_ID_AUTHORIZATION_FAILED

    # Fencing: a transactional producer with alice's id, and `once txn abort`, both InitProducerId.
    zombie = txn_producer(broker, MALLORY, "alice-app")
    with pytest.raises(KafkaException) as fenced:
        zombie.init_transactions(30)
    assert fenced.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    aborted = once(broker, MALLORY, "txn", "abort", "alice-app")
    assert aborted.returncode != 0 and "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in aborted.stderr, aborted

    # Still open: nothing visible to read_committed, and mallory's own id works for her.
    assert committed_values(broker, orders) == []
    own = txn_producer(broker, MALLORY, "mallory-app")
    own.init_transactions(30)

    # The owner's commit goes through, and only now do its records appear.
    owner.commit_transaction(30)
    assert committed_values(broker, orders) == [b"payment-0", b"payment-1", b"payment-2"]
    broker.assert_alive()


def test_a_stranger_cannot_overwrite_another_groups_offsets_or_delete_the_transaction_log(secured):
    broker = secured
    orders = unique_topic("orders")
    create_topics(broker, orders)
    grant(broker,
          allow(ResourceType.TOPIC, orders, ALICE, AclOperation.READ),
          allow(ResourceType.GROUP, "alice-group", ALICE, AclOperation.READ),
          allow(ResourceType.TOPIC, orders, MALLORY, AclOperation.READ),
          allow(ResourceType.GROUP, "mallory-group", MALLORY, AclOperation.READ))
    plain = Producer(conf(broker, ADMIN))
    for i in range(5):
        plain.produce(orders, value=f"o{i}".encode())
    plain.flush(30)

    def commit(user, group: str, offset: int) -> None:
        # kafka-python, because librdkafka reports a refused coordinator lookup only as "waiting for coordinator".
        from kafka import KafkaConsumer, OffsetAndMetadata
        from kafka import TopicPartition as KTopicPartition
        client = KafkaConsumer(
            bootstrap_servers=broker.address("SASL_PLAINTEXT"), group_id=group, enable_auto_commit=False,
            security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_plain_username=user[0],
            sasl_plain_password=user[1])
        try:
            client.commit({KTopicPartition(orders, 0): OffsetAndMetadata(offset, "", -1)})
        finally:
            client.close()

    def committed(user, group: str) -> int:
        client = Consumer(conf(broker, user, **{"group.id": group, "enable.auto.commit": False}))
        try:
            return client.committed([TopicPartition(orders, 0)], timeout=30)[0].offset
        finally:
            client.close()

    commit(ALICE, "alice-group", 4)
    from kafka.errors import GroupAuthorizationFailedError
    with pytest.raises(GroupAuthorizationFailedError):
        commit(MALLORY, "alice-group", 0)
    assert committed(ALICE, "alice-group") == 4
    # Her own group is hers to commit.
    commit(MALLORY, "mallory-group", 1)
    assert committed(MALLORY, "mallory-group") == 1

    stranger = admin_client(broker, MALLORY)
    with pytest.raises(KafkaException) as refused:
        stranger.delete_topics(["__transaction_state"], operation_timeout=10)["__transaction_state"].result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Its existence is not even listed to her.
    assert "__transaction_state" not in stranger.list_topics(timeout=30).topics
    assert "__transaction_state" in admin_client(broker).list_topics(timeout=30).topics

    # Transactions still work after the attempt.
    grant(broker, allow(ResourceType.TRANSACTIONAL_ID, "alice-app", ALICE, AclOperation.WRITE),
          allow(ResourceType.TOPIC, orders, ALICE, AclOperation.WRITE))
    owner = txn_producer(broker, ALICE, "alice-app")
    owner.init_transactions(30)
    owner.begin_transaction()
    owner.produce(orders, value=b"after")
    owner.commit_transaction(30)
    assert committed_values(broker, orders)[-1] == b"after"


def read_process_write_grants(source: str, sink: str, group: str, txn_id: str) -> dict[str, AclBinding]:
    """Exactly what the seed's loop needs: read the source, write the sink, its group, its id."""
    return {
        "source READ": allow(ResourceType.TOPIC, source, ALICE, AclOperation.READ),
        "sink WRITE": allow(ResourceType.TOPIC, sink, ALICE, AclOperation.WRITE),
        "group READ": allow(ResourceType.GROUP, group, ALICE, AclOperation.READ),
        "transactional id WRITE": allow(ResourceType.TRANSACTIONAL_ID, txn_id, ALICE, AclOperation.WRITE),
    }


def run_read_process_write(broker, source: str, sink: str, group: str, txn_id: str, expected: int) -> None:
    """The seed's loop: consume read_committed, produce the transformed record and the consumed
    offsets in one transaction, commit."""
    consumer = Consumer(conf(broker, ALICE, **{
        "group.id": group, "enable.auto.commit": False, "isolation.level": "read_committed",
        "auto.offset.reset": "earliest"}))
    producer = txn_producer(broker, ALICE, txn_id)
    # librdkafka reports a refused partition in the delivery reports; the commit then fails as a whole.
    refused: list[KafkaError] = []

    def delivered(err, msg) -> None:
        if err is not None:
            refused.append(err)
    try:
        producer.init_transactions(30)
        consumer.subscribe([source])
        processed = 0
        deadline = Deadline(90, f"{expected} records through the loop")
        while processed < expected:
            deadline.check(f"({processed} so far)")
            batch = [m for m in consumer.consume(100, 0.5)]
            for m in batch:
                if m.error() is not None:
                    raise KafkaException(m.error())
            if not batch:
                continue
            producer.begin_transaction()
            for m in batch:
                producer.produce(sink, key=m.key(), value=m.value().upper(), on_delivery=delivered)
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata(), 30)
            try:
                producer.commit_transaction(30)
            except KafkaException:
                if refused:
                    raise KafkaException(refused[0]) from None
                raise
            processed += len(batch)
    finally:
        consumer.close()


def test_the_seeds_read_process_write_loop_runs_with_exactly_the_acls_it_needs(secured):
    broker = secured
    source, sink = unique_topic("rpw-in"), unique_topic("rpw-out")
    create_topics(broker, source, sink)
    grant(broker, *read_process_write_grants(source, sink, "rpw", "rpw-app").values())
    plain = Producer(conf(broker, ADMIN))
    for i in range(20):
        plain.produce(source, key=str(i).encode(), value=f"m{i}".encode())
    plain.flush(30)

    run_read_process_write(broker, source, sink, "rpw", "rpw-app", 20)
    assert committed_values(broker, sink) == [f"M{i}".encode() for i in range(20)]
    auditor = Consumer(conf(broker, ADMIN, **{"group.id": "rpw", "enable.auto.commit": False}))
    try:
        assert auditor.committed([TopicPartition(source, 0)], timeout=30)[0].offset == 20
    finally:
        auditor.close()


@pytest.mark.parametrize("missing, code", [
    ("transactional id WRITE", KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
    ("sink WRITE", KafkaError.TOPIC_AUTHORIZATION_FAILED),
    ("group READ", KafkaError.GROUP_AUTHORIZATION_FAILED),
])
def test_the_loop_fails_with_the_right_error_when_one_acl_is_missing(secured, missing, code):
    broker = secured
    source, sink = unique_topic("rpw-in"), unique_topic("rpw-out")
    create_topics(broker, source, sink)
    grants = read_process_write_grants(source, sink, "rpw", "rpw-app")
    del grants[missing]
    grant(broker, *grants.values())
    plain = Producer(conf(broker, ADMIN))
    for i in range(3):
        plain.produce(source, value=f"m{i}".encode())
    plain.flush(30)

    with pytest.raises(KafkaException) as failed:
        run_read_process_write(broker, source, sink, "rpw", "rpw-app", 3)
    assert failed.value.args[0].code() == code, failed.value
    assert committed_values(broker, sink) == []
    broker.assert_alive()
