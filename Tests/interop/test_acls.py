"""ACLs with real clients: confluent-kafka's AdminClient create_acls/describe_acls/delete_acls and
`once acl` against a broker with `--authorizer on`, what a broker without one answers, the start-up
refusal, and an ANONYMOUS principal held to exactly what its ACLs grant."""

from __future__ import annotations


import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kafka.admin import (
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePatternFilter,
)
from kafka.admin import ResourceType as KPResourceType
from kafka.errors import SecurityDisabledError

import confluent_helpers as ck
from once_broker import Broker, BrokerError
from support import unique_topic
from test_cli import assert_one_line_failure, once
from tls_material import CLIENT_PRINCIPAL

ANONYMOUS_IS_SUPER = ["--authorizer", "on", "--super-users", "User:ANONYMOUS"]


def acl(resource_type, name, principal, operation, permission=AclPermissionType.ALLOW,
        pattern=ResourcePatternType.LITERAL) -> AclBinding:
    return AclBinding(resource_type, name, pattern, principal, "*", operation, permission)


def every_acl() -> AclBindingFilter:
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                            AclPermissionType.ANY)


def test_admin_client_creates_describes_and_deletes_acls_and_they_survive_a_restart(broker_factory):
    broker = broker_factory(extra_args=ANONYMOUS_IS_SUPER)
    admin = ck.admin(broker)
    bindings = [
        acl(ResourceType.TOPIC, "payments", "User:alice", AclOperation.READ),
        acl(ResourceType.TOPIC, "pay", "User:alice", AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED),
        acl(ResourceType.GROUP, "billing", "User:bob", AclOperation.READ, AclPermissionType.DENY),
        acl(ResourceType.TRANSACTIONAL_ID, "app", "User:alice", AclOperation.WRITE),
    ]
    for future in admin.create_acls(bindings).values():
        future.result(timeout=30)

    described = admin.describe_acls(every_acl()).result(timeout=30)
    assert set(described) == set(bindings)

    # MATCH: every pattern that applies to the topic "payments", the prefixed one included.
    matching = AclBindingFilter(ResourceType.TOPIC, "payments", ResourcePatternType.MATCH, None, None,
                                AclOperation.ANY, AclPermissionType.ANY)
    assert set(admin.describe_acls(matching).result(timeout=30)) == set(bindings[:2])

    broker.stop()
    broker.restart()
    admin = ck.admin(broker)
    assert set(admin.describe_acls(every_acl()).result(timeout=30)) == set(bindings)

    alice = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None, AclOperation.ANY,
                             AclPermissionType.ANY)
    deleted = admin.delete_acls([alice])[alice].result(timeout=30)
    assert set(deleted) == {bindings[0], bindings[1], bindings[3]}
    assert admin.describe_acls(every_acl()).result(timeout=30) == [bindings[2]]


def test_an_invalid_binding_is_refused_with_invalid_request(broker_factory):
    broker = broker_factory(extra_args=ANONYMOUS_IS_SUPER)
    admin = ck.admin(broker)
    # The only CLUSTER resource is "kafka-cluster".
    bad = acl(ResourceType.BROKER, "other", "User:alice", AclOperation.ALTER)
    with pytest.raises(KafkaException) as refused:
        admin.create_acls([bad])[bad].result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.INVALID_REQUEST
    assert admin.describe_acls(every_acl()).result(timeout=30) == []


def test_acl_apis_answer_security_disabled_without_an_authorizer(broker):
    admin = ck.admin(broker)
    binding = acl(ResourceType.TOPIC, "t", "User:alice", AclOperation.READ)
    with pytest.raises(KafkaException) as refused:
        admin.create_acls([binding])[binding].result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.SECURITY_DISABLED
    # librdkafka reports DescribeAcls' top-level error as an empty list; kafka-python raises it.
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        with pytest.raises(SecurityDisabledError):
            client.describe_acls(ACLFilter(
                principal=None, host="*", operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
                resource_pattern=ResourcePatternFilter(KPResourceType.ANY, None, ACLResourcePatternType.ANY)))
    finally:
        client.close()


def test_once_acl_adds_lists_and_removes(broker_factory):
    broker = broker_factory(extra_args=ANONYMOUS_IS_SUPER)
    added = once(broker, "acl", "add", "--allow-principal", "User:alice", "--operation", "Read",
                 "--operation", "Describe", "--topic", "orders", "--group", "billing")
    assert "Added 4 ACLs" in added.stdout
    once(broker, "acl", "add", "--deny-principal", "User:bob", "--operation", "All", "--topic", "orders-",
         "--resource-pattern-type", "prefixed")

    admin = ck.admin(broker)
    described = set(admin.describe_acls(every_acl()).result(timeout=30))
    assert acl(ResourceType.GROUP, "billing", "User:alice", AclOperation.DESCRIBE) in described
    assert acl(ResourceType.TOPIC, "orders-", "User:bob", AclOperation.ALL, AclPermissionType.DENY,
               ResourcePatternType.PREFIXED) in described
    assert len(described) == 5

    listed = once(broker, "acl", "list", "--topic", "orders").stdout
    assert "ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)" in listed
    assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in listed
    assert "billing" not in listed
    matched = once(broker, "acl", "list", "--topic", "orders-eu", "--resource-pattern-type", "match").stdout
    assert "name=orders-, patternType=PREFIXED" in matched and "name=orders," not in matched

    removed = once(broker, "acl", "remove", "--allow-principal", "User:alice", "--operation", "Read",
                   "--topic", "orders")
    assert "Removed 1 ACL" in removed.stdout
    once(broker, "acl", "remove", "--group", "billing")
    remaining = set(admin.describe_acls(every_acl()).result(timeout=30))
    assert remaining == {
        acl(ResourceType.TOPIC, "orders", "User:alice", AclOperation.DESCRIBE),
        acl(ResourceType.TOPIC, "orders-", "User:bob", AclOperation.ALL, AclPermissionType.DENY,
            ResourcePatternType.PREFIXED),
    }

    refused = once(broker, "acl", "add", "--allow-principal", "alice", "--operation", "Read", "--topic", "t",
                   check=False)
    assert refused.returncode != 0 and "TYPE:NAME" in refused.stderr


def test_once_acl_against_a_broker_without_an_authorizer_says_so(broker):
    refused = once(broker, "acl", "list", check=False)
    assert_one_line_failure(refused, "SECURITY_DISABLED")


def test_an_authorizer_without_a_super_user_or_an_acl_refuses_to_start(tmp_path):
    lonely = Broker(tmp_path / "data", tmp_path / "broker.log", extra_args=["--authorizer", "on"])
    with pytest.raises(BrokerError):
        lonely.start()
    lonely.cleanup()
    assert lonely.process.returncode != 0
    assert "--authorizer on needs at least one --super-users principal or a stored ACL" in lonely.log_text()


def test_anonymous_gets_exactly_what_its_acls_grant(broker_factory):
    """ACLs granted while ANONYMOUS was a super user; restarted with another super user, ANONYMOUS may
    write and read "public" and nothing else, and the refusals carry Kafka's codes."""
    public, secret = unique_topic("public"), unique_topic("secret")
    broker = broker_factory(extra_args=ANONYMOUS_IS_SUPER)
    ck.create_topic(broker, public, 1)
    ck.create_topic(broker, secret, 1)
    ck.produce_indexed(broker, secret, range(3), partition=0)
    group = "readers"
    grants = [
        acl(ResourceType.TOPIC, public, "User:ANONYMOUS", AclOperation.WRITE),
        acl(ResourceType.TOPIC, public, "User:ANONYMOUS", AclOperation.READ),
        acl(ResourceType.GROUP, group, "User:ANONYMOUS", AclOperation.READ),
    ]
    admin = ck.admin(broker)
    for future in admin.create_acls(grants).values():
        future.result(timeout=30)
    broker.stop()
    broker.extra_args = ["--authorizer", "on", "--super-users", "User:admin"]
    broker.restart()

    ck.produce_indexed(broker, public, range(5), partition=0)
    # A consumer with a group id asks for the group's coordinator: Group DESCRIBE, implied by READ.
    records = ck.read_to_end(broker, public, [0], **{"group.id": group})
    assert len(records) == 5
    with pytest.raises(AssertionError, match="GROUP_AUTHORIZATION_FAILED"):
        ck.read_to_end(broker, public, [0], seconds=20, **{"group.id": "someone-elses"})

    # Metadata for every topic lists only what ANONYMOUS may describe.
    listed = ck.admin(broker).list_topics(timeout=30).topics
    assert public in listed and secret not in listed

    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "message.timeout.ms": 10000})
    producer.produce(secret, b"x", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(30)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]

    # Creating a topic needs CREATE; deleting one needs DELETE.
    admin = ck.admin(broker)
    created = admin.create_topics([NewTopic(unique_topic("new"), 1, 1)], operation_timeout=10)
    for future in created.values():
        with pytest.raises(KafkaException) as refused:
            future.result(timeout=30)
        assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    for name in (secret, "__transaction_state"):
        with pytest.raises(KafkaException) as refused:
            admin.delete_topics([name], operation_timeout=10)[name].result(timeout=30)
        assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # ACL administration needs Cluster ALTER.
    binding = acl(ResourceType.TOPIC, secret, "User:ANONYMOUS", AclOperation.READ)
    with pytest.raises(KafkaException) as refused:
        admin.create_acls([binding])[binding].result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    broker.assert_alive()


def test_a_client_certificates_subject_is_the_principal_acls_name(broker_factory, tls_material):
    """mTLS: the broker's principal for a verified client certificate is its RFC 2253 subject, and
    ACLs naming that principal are what the client may do; ANONYMOUS on the PLAINTEXT listener
    administers."""
    class Via:
        def __init__(self, bootstrap: str) -> None:
            self.bootstrap = bootstrap

    broker = broker_factory(
        listeners=["SSL", "PLAINTEXT"],
        extra_args=[*tls_material.broker_args(client_auth="required"), *ANONYMOUS_IS_SUPER])
    mine, theirs = unique_topic("mtls-mine"), unique_topic("mtls-theirs")
    plaintext = Via(broker.address("PLAINTEXT"))
    ck.create_topic(plaintext, mine, 1)
    ck.create_topic(plaintext, theirs, 1)
    grants = [acl(ResourceType.TOPIC, mine, CLIENT_PRINCIPAL, AclOperation.WRITE),
              acl(ResourceType.TOPIC, mine, CLIENT_PRINCIPAL, AclOperation.READ),
              acl(ResourceType.GROUP, "interop-assign-only", CLIENT_PRINCIPAL, AclOperation.READ)]
    admin = ck.admin(plaintext)
    for future in admin.create_acls(grants).values():
        future.result(timeout=30)

    tls = {"security.protocol": "SSL", "ssl.ca.location": str(tls_material.ca.certificate),
           "ssl.certificate.location": str(tls_material.client.certificate),
           "ssl.key.location": str(tls_material.client.key)}
    via = Via(broker.address("SSL"))
    ck.produce_indexed(via, mine, range(10), partition=0, **tls)
    assert len(ck.read_to_end(via, mine, [0], **tls)) == 10

    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": broker.address("SSL"), **tls, "message.timeout.ms": 10000})
    producer.produce(theirs, b"x", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(30)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
