"""The Prometheus endpoint: parseable text exposition, with request counters that move when
clients make requests."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path

from confluent_kafka import Producer

from confluent_helpers import admin, consumer, create_topic, produce_indexed, read_to_end, watermarks
from support import Deadline, unique_topic, value_for, wait_until

SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})?\s+(?P<value>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|[-+]?Inf|NaN)(\s+-?\d+)?$'
)


def scrape(broker) -> tuple[str, str]:
    with urllib.request.urlopen(broker.metrics_url, timeout=10) as response:
        assert response.status == 200
        return response.headers.get("Content-Type", ""), response.read().decode()


def parse(text: str) -> tuple[dict[str, str], list[tuple[str, str, float]]]:
    """(type per metric family, samples); any line that is not valid exposition text fails the test."""
    types: dict[str, str] = {}
    samples: list[tuple[str, str, float]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not Prometheus text exposition: {line!r}"
        samples.append((match["name"], match["labels"] or "", float(match["value"])))
    return types, samples


def request_total(broker) -> float:
    types, samples = parse(scrape(broker)[1])
    counters = {name for name, kind in types.items() if kind == "counter" and "request" in name}
    return sum(value for name, _, value in samples if name in counters or name.removesuffix("_total") in counters)


def test_metrics_endpoint_serves_request_counters(broker):
    topic = unique_topic("metrics")
    produce_indexed(broker, topic, range(100))
    read_to_end(broker, topic, [0])

    content_type, text = scrape(broker)
    assert content_type.startswith("text/plain"), content_type
    types, samples = parse(text)
    assert samples, "no samples at all"
    request_counters = [name for name, kind in types.items() if kind == "counter" and "request" in name]
    assert request_counters, f"no request counter among {sorted(types)}"
    assert request_total(broker) > 0, "request counters are all zero after produce and fetch"


def test_request_counters_grow_with_traffic(broker):
    produce_indexed(broker, unique_topic("metrics-a"), range(10))
    before = request_total(broker)
    topic = unique_topic("metrics-b")
    produce_indexed(broker, topic, range(10))
    read_to_end(broker, topic, [0])
    wait_until(lambda: request_total(broker) > before, 30, "request counters to count new requests")


# --- Every family an operator dashboard reads, checked against a workload whose effect is known. ---

LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "once-dashboard.json"
README = ROOT / "README.md"


class Scrape:
    def __init__(self, broker) -> None:
        self.types, raw = parse(scrape(broker)[1])
        self.samples = [(name, dict(LABEL.findall(labels)), value) for name, labels, value in raw]

    def values(self, name: str, **labels: str) -> list[float]:
        return [v for n, l, v in self.samples if n == name and all(l.get(k) == w for k, w in labels.items())]

    def one(self, name: str, **labels: str) -> float:
        found = self.values(name, **labels)
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples, expected one"
        return found[0]

    def total(self, name: str, **labels: str) -> float:
        return sum(self.values(name, **labels))

    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}


def transactional_producer(broker, transactional_id: str) -> Producer:
    client = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id, "linger.ms": 5})
    client.init_transactions(30)
    return client


def consume_in_group(broker, topic: str, group: str, expected: int) -> None:
    client = consumer(broker, **{"group.id": group, "auto.offset.reset": "earliest", "enable.partition.eof": False})
    try:
        client.subscribe([topic])
        seen = 0
        deadline = Deadline(60, f"{expected} records through group {group}")
        while seen < expected:
            deadline.check(f"({seen} so far)")
            for msg in client.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                seen += 1
        client.commit(asynchronous=False)
    finally:
        client.close()


def test_metrics_describe_a_workload_of_produce_transactions_and_a_group(broker):
    plain = unique_topic("metrics-plain")
    create_topic(broker, plain, 2)
    produce_indexed(broker, plain, range(200))
    produced_bytes = 200 * len(value_for(0))

    group = unique_topic("metrics-group")
    consume_in_group(broker, plain, group, 200)
    produce_indexed(broker, plain, range(200, 250))

    txn_topic = unique_topic("metrics-txn")
    create_topic(broker, txn_topic, 1)
    txn = transactional_producer(broker, unique_topic("metrics-txn-id"))
    txn.begin_transaction()
    for i in range(10):
        txn.produce(txn_topic, value=value_for(i), partition=0)
    assert txn.flush(30) == 0

    # While the transaction is open it holds the LSO ten records behind the high watermark.
    m = wait_until(
        lambda: (s := Scrape(broker)).total("once_transaction_oldest_age_seconds") > 0 and s,
        30, "the open transaction to age")
    assert m.one("once_transactions_open") == 1
    assert m.one("once_partition_lso_lag", topic=txn_topic, partition="0") == 10
    assert m.one("once_partition_producers", topic=txn_topic, partition="0") == 1
    assert m.types.get("once_transactions_open") == "gauge"

    # Per-topic traffic: one increment per request and topic, summing to what was produced.
    assert m.one("once_topic_records_in_total", topic=plain) == 250
    bytes_in = m.one("once_topic_bytes_in_total", topic=plain)
    assert bytes_in > produced_bytes * 1.25, "record-set bytes include keys, values and batch headers"
    # The plain topic's log is exactly the batches appended to it.
    assert m.total("once_partition_log_size_bytes", topic=plain) == bytes_in
    assert m.one("once_topic_bytes_out_total", topic=plain) >= bytes_in * 200 / 250 * 0.99
    assert m.types.get("once_topic_bytes_in_total") == "counter"

    # Consumer-group lag: the group committed after 200 records, 50 more arrived since.
    hw = [watermarks(broker, plain, p)[1] for p in (0, 1)]
    assert sum(hw) == 250
    lags = [m.one("once_consumer_group_lag", group=group, topic=plain, partition=str(p)) for p in (0, 1)]
    assert sum(lags) == 50, lags
    assert [m.one("once_partition_high_watermark", topic=plain, partition=str(p)) for p in (0, 1)] == hw

    # Request latency: a histogram per API with buckets from 50 µs to 10 s.
    assert m.types.get("once_request_duration_seconds") == "histogram"
    buckets = [(l["le"], v) for n, l, v in m.samples if n == "once_request_duration_seconds_bucket" and l.get("api") == "Produce"]
    bounds = [float(le) for le, _ in buckets]
    assert bounds[0] == 0.00005 and 10.0 in bounds and bounds[-1] == float("inf"), bounds
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "cumulative buckets never decrease"
    assert counts[-1] == m.one("once_request_duration_seconds_count", api="Produce") > 0
    assert m.one("once_request_duration_seconds_sum", api="Produce") > 0

    # Connections: the transactional producer's are open now.
    assert m.one("once_connections") >= 1
    assert m.one("once_connections_accepted_total") >= m.one("once_connections")

    # The process, read from /proc/self.
    assert m.one("process_cpu_seconds_total") > 0
    assert 1 << 20 < m.one("process_resident_memory_bytes") < 1 << 34
    assert 0 < m.one("process_open_fds") <= m.one("process_max_fds")
    assert m.values("once_build_info") == [1]

    txn.commit_transaction(30)
    m = wait_until(lambda: (s := Scrape(broker)).one("once_transactions_open") == 0 and s, 30, "the transaction to complete")
    assert m.one("once_transaction_oldest_age_seconds") == 0
    assert m.one("once_partition_lso_lag", topic=txn_topic, partition="0") == 0


def test_refused_connections_are_counted_by_reason(broker_factory):
    broker = broker_factory(extra_args=["--max-connections-per-ip", "1"])
    held = [socket.create_connection(("127.0.0.1", broker.port), timeout=10) for _ in range(3)]
    try:
        wait_until(
            lambda: Scrape(broker).one("once_connections_rejected_total", reason="max_connections_per_ip") >= 2,
            30, "refusals past max.connections.per.ip to be counted")
        m = Scrape(broker)
        assert m.one("once_connections") == 1
        assert m.one("once_connections_rejected_total", reason="max_connections") == 0
    finally:
        for s in held:
            s.close()


def test_a_deleted_topic_takes_its_series_with_it(broker):
    topic = unique_topic("metrics-deleted")
    create_topic(broker, topic, 1)
    produce_indexed(broker, topic, range(20))
    assert Scrape(broker).one("once_topic_records_in_total", topic=topic) == 20
    # The futures die with their client, so the client must outlive the wait.
    client = admin(broker)
    client.delete_topics([topic], operation_timeout=30)[topic].result(timeout=60)
    wait_until(
        lambda: not [n for n, l, _ in Scrape(broker).samples if l.get("topic") == topic],
        30, f"every series of {topic} to go")


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 10, f"the dashboard queries only {len(exprs)} expressions"
    return {name for expr in exprs for name in re.findall(r"\b((?:once|process)_[a-z_]+)\b", expr)}


def readme_metric_names() -> set[str]:
    """The names in the first column of README's metrics table."""
    names: set[str] = set()
    for line in README.read_text().splitlines():
        if line.startswith("| `once_") or line.startswith("| `process_"):
            names |= set(re.findall(r"`((?:once|process)_[a-z_]+)`", line.split("|")[1]))
    return names


def test_the_dashboard_and_readme_name_exactly_the_metrics_a_real_scrape_serves(broker):
    topic = unique_topic("metrics-dashboard")
    produce_indexed(broker, topic, range(50))
    consume_in_group(broker, topic, unique_topic("metrics-dashboard-group"), 50)
    txn = transactional_producer(broker, unique_topic("metrics-dashboard-txn"))
    txn.begin_transaction()
    txn.produce(topic, value=value_for(0), partition=0)
    assert txn.flush(30) == 0
    # An answered error, so the error counter has a series: writing an internal topic is refused.
    failures: list[str] = []
    refused = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0})
    refused.produce("__consumer_offsets", value=b"x", partition=0, on_delivery=lambda err, _: failures.append(str(err)))
    assert refused.flush(30) == 0
    assert failures and failures[0] != "None", failures
    try:
        m = Scrape(broker)
        names = m.names()
        queried = dashboard_metric_names()
        missing = sorted(queried - names)
        assert not missing, f"the dashboard queries metrics no scrape has: {missing}"
        # README's table documents exactly the families a scrape has.
        families = set(m.types)
        documented = readme_metric_names()
        assert not sorted(families - documented), f"undocumented in README: {sorted(families - documented)}"
        # The postgres engine's families are served by a broker over PostgreSQL only; the
        # round-trip test in test_postgres_storage.py scrapes them there.
        file_engine_documented = {n for n in documented if not n.startswith("once_postgres_")}
        assert not sorted(file_engine_documented - families), f"documented but never served: {sorted(file_engine_documented - families)}"
    finally:
        txn.commit_transaction(30)
