"""Several listeners at once, in Kafka's `listeners` form: each answers Metadata, DescribeCluster and
FindCoordinator with its own advertised address, so a client that bootstrapped through one listener
keeps talking through it; the start-up checks cover every listener."""

from __future__ import annotations

import socket
import subprocess
from types import SimpleNamespace

import pytest
from confluent_kafka.admin import AdminClient

from confluent_helpers import create_topic, produce_indexed, read_to_end
from once_broker import BrokerError, broker_binary, free_port
from support import index_of, unique_topic

NAMED = ["--listener-security-protocol-map", "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT"]


def brokers_seen_through(address: str) -> set[str]:
    metadata = AdminClient({"bootstrap.servers": address}).list_topics(timeout=20)
    return {f"{b.host}:{b.port}" for b in metadata.brokers.values()}


def test_each_listener_advertises_itself_and_serves_the_same_log(broker_factory):
    broker = broker_factory(listeners=["INTERNAL", "EXTERNAL"], extra_args=NAMED)
    internal, external = broker.address("INTERNAL"), broker.address("EXTERNAL")
    assert internal != external
    assert brokers_seen_through(internal) == {internal}
    assert brokers_seen_through(external) == {external}

    # Written through one listener, read through the other: one broker behind both.
    topic = unique_topic("listeners")
    create_topic(SimpleNamespace(bootstrap=internal), topic, 1)
    produce_indexed(SimpleNamespace(bootstrap=internal), topic, range(50), partition=0)
    records = read_to_end(SimpleNamespace(bootstrap=external), topic, [0])
    assert [index_of(r.value) for r in records] == list(range(50))

    ready = next(line for line in broker.log_text().splitlines() if "ready" in line)
    assert f"INTERNAL://{internal}" in ready and f"EXTERNAL://{external}" in ready, ready


def test_advertised_listeners_are_matched_by_name(broker_factory):
    elsewhere = f"127.0.0.1:{free_port()}"
    broker = broker_factory(
        listeners=["INTERNAL", "EXTERNAL"], extra_args=[*NAMED, "--advertised-listeners", f"EXTERNAL://{elsewhere}"]
    )
    assert brokers_seen_through(broker.address("EXTERNAL")) == {elsewhere}
    assert brokers_seen_through(broker.address("INTERNAL")) == {broker.address("INTERNAL")}

    # FindCoordinator answers with the listener asked too: librdkafka connects to what it says
    # and reports that node as the group's coordinator.
    admin = AdminClient({"bootstrap.servers": broker.address("INTERNAL")})
    described = admin.describe_consumer_groups(["listeners-g"], request_timeout=20)["listeners-g"].result(timeout=30)
    coordinator = described.coordinator
    assert f"{coordinator.host}:{coordinator.port}" == broker.address("INTERNAL")


def run_broker(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(broker_binary()), "broker", "--data-dir", str(tmp_path / "data"), *args],
        capture_output=True, text=True, timeout=60,
    )


def test_an_address_in_use_on_any_listener_is_named(broker_factory):
    broker = broker_factory(start=False, listeners=["PLAINTEXT", "SASL_PLAINTEXT"])
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", broker.listener_ports["SASL_PLAINTEXT"]))
    holder.listen(1)
    try:
        with pytest.raises(BrokerError):
            broker.start()
    finally:
        holder.close()
    assert f"{broker.address('SASL_PLAINTEXT')} is already in use (listener SASL_PLAINTEXT)" in broker.log_text()
    assert list(broker.data_dir.iterdir()) == [], "the data directory was touched"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listeners", "CLIENT://127.0.0.1:1"], "no security protocol for listener CLIENT"),
        (["--listeners", "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9092"], "both use port 9092"),
        (["--listeners", "PLAINTEXT://127.0.0.1:1", "--listen", "127.0.0.1:2"], "give one form, not both"),
        (["--listeners", "PLAINTEXT://127.0.0.1:1", "--advertised-listeners", "SSL://h:1"], "is not one of --listeners"),
        (["--listeners", "127.0.0.1:9092"], "takes NAME://HOST:PORT"),
    ],
)
def test_a_bad_listener_list_is_refused_in_one_line(tmp_path, args, message):
    result = run_broker(tmp_path, *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert not (tmp_path / "data").exists()
