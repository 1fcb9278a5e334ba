"""Three `once broker --storage postgres` processes whose only listeners are TLS, with required
client certificates: the transaction coordinator's markers and the partition leaders' KIP-890
checks travel over TLS, each broker verifying its peer's certificate against --ssl-ca-location and
presenting its own, which the peer's authorizer knows as the cluster's principal."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import confluent_helpers as ck
from support import Deadline, scaled_timeout, unique_topic, wait_until
from test_postgres_cluster import SESSION, lease, pg, spread  # noqa: F401  (pg is a fixture)
from tls_material import BROKER_PRINCIPAL, CLIENT_PRINCIPAL

SECRET = "broker-secret"


def client_config(tls_material, protocol: str) -> dict[str, str]:
    config = {
        "security.protocol": protocol, "ssl.ca.location": str(tls_material.ca.certificate),
        "ssl.certificate.location": str(tls_material.client.certificate),
        "ssl.key.location": str(tls_material.client.key),
    }
    if protocol == "SASL_SSL":
        config |= {"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "broker", "sasl.password": SECRET}
    return config


class Cluster:
    def __init__(self, brokers) -> None:
        self.bootstrap = ",".join(b.bootstrap for b in brokers)


def three_brokers_leading(topic: str, start, client: dict[str, str], pg, url: str):
    """Starts brokers 1 to 3 with `start(node)`, creates the six-partition `topic` through the first,
    and waits until the leases are spread and the topic's partitions are led by all three. Returns
    the brokers, their bootstrap list and each partition's leader."""
    first = start(1)
    admin = AdminClient({"bootstrap.servers": first.bootstrap, **client})
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(30)
    brokers = [first, start(2), start(3)]
    wait_until(lambda: spread(pg, url, [1, 2, 3]), 60, "leadership spread over the three brokers")
    bootstrap = Cluster(brokers).bootstrap

    def leaders() -> dict[int, int] | None:
        md = AdminClient({"bootstrap.servers": bootstrap, **client}).list_topics(topic, timeout=10)
        found = {p.id: p.leader for p in md.topics[topic].partitions.values()}
        return found if set(found.values()) == {1, 2, 3} else None

    led = wait_until(leaders, 60, "the topic's partitions led by all three brokers")
    return brokers, bootstrap, led


def read_committed(brokers, topic: str, client: dict[str, str], count: int) -> list[bytes]:
    """Reads the topic's six partitions under read_committed until `count` records came, then once
    more, so a duplicate past the count shows too."""
    consumer = ck.consumer(Cluster(brokers), **{"isolation.level": "read_committed", **client})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
        seen: list[bytes] = []
        deadline = Deadline(scaled_timeout(60), "the committed records")
        # A record is readable under read_committed only once its partition's marker is written.
        while len(seen) < count:
            deadline.check(f"({len(seen)} read)")
            seen += [m.value() for m in consumer.consume(100, 0.5) if m.error() is None]
        seen += [m.value() for m in consumer.consume(100, 1) if m.error() is None]
    finally:
        consumer.close()
    return seen


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_a_transaction_across_brokers_commits_over_tls_listeners_with_required_client_certificates(
        pg, broker_factory, tls_material, protocol):
    """With `--authorizer on` and no ACL, only super users act: a marker or KIP-890 check that
    reached a peer without the broker's certificate (SSL) or login (SASL_SSL) would be refused, a
    connection without a client certificate fails its handshake, and the transaction could not
    complete."""
    url = pg.new_database()
    topic = unique_topic(f"cluster-txn-{protocol.lower()}")
    principal = BROKER_PRINCIPAL if protocol == "SSL" else "User:broker"
    tls = ["--ssl-certificate-location", str(tls_material.broker.certificate),
           "--ssl-key-location", str(tls_material.broker.key),
           "--ssl-client-auth", "required", "--ssl-ca-location", str(tls_material.ca.certificate)]
    sasl = ["--sasl-enabled-mechanisms", "SCRAM-SHA-512", "--inter-broker-sasl-username", "broker"] \
        if protocol == "SASL_SSL" else []

    def start(node: int):
        return broker_factory(
            listeners=[protocol],
            env={"ONCE_INTER_BROKER_SASL_PASSWORD": SECRET, "ONCE_ADD_SCRAM": f"SCRAM-SHA-512=[name=broker,password={SECRET}]"},
            extra_args=["--storage", "postgres", "--postgres-url", url, "--node-id", str(node), *SESSION, *tls, *sasl,
                        "--inter-broker-listener-name", protocol, "--authorizer", "on",
                        "--super-users", f"{principal};{CLIENT_PRINCIPAL}"])

    client = client_config(tls_material, protocol)
    brokers, bootstrap, _ = three_brokers_leading(topic, start, client, pg, url)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique_topic("tid-tls"), **client})
    producer.init_transactions(scaled_timeout(60))
    expected = []
    for txn in range(3):
        producer.begin_transaction()
        for p in range(6):
            expected.append(f"t{txn}-p{p}".encode())
            producer.produce(topic, value=expected[-1], partition=p)
        producer.commit_transaction(scaled_timeout(60))
    seen = read_committed(brokers, topic, client, len(expected))
    assert sorted(seen) == sorted(expected), "every committed record once"
    if protocol == "SSL":
        # The peers named the brokers' own connections by their certificate: the markers went over TLS.
        assert any(f"principal={BROKER_PRINCIPAL} " in b.log_text() for b in brokers)


def test_markers_to_a_broker_whose_certificate_the_coordinator_does_not_trust_keep_the_transaction_prepared(
        pg, broker_factory, tmp_path):
    """Each broker's certificate has its own CA, and each broker trusts only the next one's
    (1 trusts 2's, 2 trusts 3's, 3 trusts 1's), so whichever broker coordinates, the broker before
    it reaches it (its KIP-890 checks pass) while the coordinator cannot verify that broker's
    certificate: the commit's markers for its partitions fail, the coordinator logs why, and the
    partitions' last stable offset stays below the transaction's records."""
    from tls_material import _ca, _leaf

    authorities = {n: _ca(tmp_path, f"ca-{n}", f"/O=Once Test/CN=CA {n}") for n in (1, 2, 3)}
    certificates = {n: _leaf(tmp_path, f"broker-{n}", f"/O=Once Test/CN=broker-{n}", authorities[n], server=True,
                             usage="serverAuth,clientAuth") for n in (1, 2, 3)}
    bundle = tmp_path / "all-cas.pem"
    bundle.write_text("".join(authorities[n].certificate.read_text() for n in (1, 2, 3)))
    trusted = {1: 2, 2: 3, 3: 1}
    url = pg.new_database()
    topic = unique_topic("cluster-txn-untrusted")

    def start(node: int):
        return broker_factory(
            listeners=["SSL"],
            extra_args=["--storage", "postgres", "--postgres-url", url, "--node-id", str(node), *SESSION,
                        "--ssl-certificate-location", str(certificates[node].certificate),
                        "--ssl-key-location", str(certificates[node].key),
                        "--ssl-ca-location", str(authorities[trusted[node]].certificate),
                        "--inter-broker-listener-name", "SSL"])

    client = {"security.protocol": "SSL", "ssl.ca.location": str(bundle)}
    brokers, bootstrap, led = three_brokers_leading(topic, start, client, pg, url)
    coordinator = lease(pg, url, "__transaction_state", 0)[0]
    distrusted = next(n for n, next_one in trusted.items() if next_one == coordinator)
    partitions = [p for p, node in led.items() if node == distrusted]
    assert partitions, "the coordinator trusts no broker leading a partition of the transaction"
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique_topic("tid-untrusted"), **client})
    producer.init_transactions(scaled_timeout(60))
    producer.begin_transaction()
    for p in partitions:
        producer.produce(topic, value=f"prepared-{p}".encode(), partition=p)
    # The coordinator answers once its markers were sent and failed; their retries go on without the producer.
    producer.commit_transaction(scaled_timeout(60))
    log = brokers[coordinator - 1]
    wait_until(lambda: "transaction markers not delivered" in log.log_text()
               and "CERTIFICATE_VERIFY_FAILED" in log.log_text(), scaled_timeout(60),
               "the coordinator logging the refused certificate")
    consumer = ck.consumer(Cluster(brokers), **{"isolation.level": "read_committed", **client})
    try:
        for p in partitions:
            lso = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20, cached=False)[1]
            assert lso == 0, f"partition {p}'s last stable offset passed a transaction whose marker was never written"
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        assert [m for m in consumer.consume(100, 2) if m.error() is None] == []
    finally:
        consumer.close()


@pytest.mark.parametrize("algorithm", ["", "https"])
def test_a_peer_certificate_that_does_not_name_its_address_is_refused_unless_identification_is_off(
        pg, broker_factory, tmp_path, tls_material, algorithm):
    """Every broker's certificate names elsewhere.example, not the 127.0.0.1 it advertises. With
    Kafka's empty `ssl.endpoint.identification.algorithm` the chain alone is checked and a
    transaction across brokers commits; with `https` the brokers refuse each other's
    certificates and say so."""
    from tls_material import _leaf

    misnamed = _leaf(tmp_path, "misnamed-broker", "/O=Once Test/CN=elsewhere.example", tls_material.ca, server=True,
                     names="DNS:elsewhere.example", usage="serverAuth,clientAuth")
    url = pg.new_database()
    topic = unique_topic("cluster-txn-misnamed")

    def start(node: int):
        return broker_factory(
            listeners=["SSL"],
            extra_args=["--storage", "postgres", "--postgres-url", url, "--node-id", str(node), *SESSION,
                        "--ssl-certificate-location", str(misnamed.certificate), "--ssl-key-location", str(misnamed.key),
                        "--ssl-ca-location", str(tls_material.ca.certificate), "--inter-broker-listener-name", "SSL",
                        "--ssl-endpoint-identification-algorithm", algorithm])

    client = {"security.protocol": "SSL", "ssl.ca.location": str(tls_material.ca.certificate),
              "ssl.endpoint.identification.algorithm": "none"}
    brokers, bootstrap, _ = three_brokers_leading(topic, start, client, pg, url)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique_topic("tid-misnamed"), **client})
    producer.init_transactions(scaled_timeout(60))
    producer.begin_transaction()
    for p in range(6):
        producer.produce(topic, value=f"v-{p}".encode(), partition=p)
    if algorithm == "":
        producer.commit_transaction(scaled_timeout(60))
        seen = read_committed(brokers, topic, client, 6)
        assert sorted(seen) == sorted(f"v-{p}".encode() for p in range(6))
    else:
        producer.flush(1)
        wait_until(lambda: any("does not name the address it advertises" in b.log_text() for b in brokers),
                   scaled_timeout(60), "a broker logging the peer certificate's wrong name")
