"""The Prometheus endpoint: parseable text exposition, with request counters that move when
clients make requests."""

from __future__ import annotations

import re
import urllib.request

from confluent_helpers import produce_indexed, read_to_end
from support import unique_topic, wait_until

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
