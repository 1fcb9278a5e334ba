"""The web console (`once broker --http-listen`) in a real browser: Debian's chromium, headless,
loads each page and dumps the DOM it built. The numbers it shows must be the ones Kafka's APIs
report to confluent-kafka (watermarks, the read_committed end, committed offsets, group
membership), a transaction the test opens must appear and then go once committed, and a hanging
transaction is aborted through the console's confirmation page while a live one is refused."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import OffsetSpec

import confluent_helpers as ck
from kafka_wire import closed_by_peer
from once_broker import BrokerError, broker_binary, free_port
from support import Deadline, unique_topic, wait_until
from test_hanging_transactions import committed_then_cut
from test_transactions import read_values, txn_producer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (scripts/install-deps.sh installs Debian's chromium)")


class Node:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs, self.children, self.text_parts = tag, attrs, [], []

    def text(self) -> str:
        return "".join(self.text_parts + [c.text() for c in self.children]).strip()

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def find_all(self, tag: str | None = None, **attrs: str) -> list["Node"]:
        def matches(n: Node) -> bool:
            if tag and n.tag != tag:
                return False
            return all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        return [n for n in self.walk() if matches(n)]

    def field(self, name: str) -> str:
        found = self.find_all(data_field=name)
        assert len(found) == 1, f"{len(found)} cells named {name} in <{self.tag} {self.attrs}>"
        return found[0].text()


class TreeBuilder(HTMLParser):
    VOID = {"meta", "link", "br", "img", "input", "hr", "line", "rect", "polyline"}

    def __init__(self) -> None:
        super().__init__()
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].text_parts.append(data)


def parse(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    return builder.root


class Console:
    def __init__(self, port: int, profile: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.profile = profile
        wait_until(self._answers, 30, f"the console on {self.base}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/api/health", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def render(self, path: str) -> Node:
        """The DOM chromium built from the page, after its load event."""
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", f"--user-data-dir={self.profile}", "--dump-dom", self.base + path],
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        dom = parse(result.stdout)
        titles = dom.find_all("h1")
        assert titles, f"{path} rendered no page:\n{result.stdout[:2000]}"
        return dom

    def api(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base + path, data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


def console_broker(broker_factory, tmp_path: Path, *extra: str):
    port = free_port()
    broker = broker_factory(extra_args=["--http-listen", f"127.0.0.1:{port}", *extra])
    return broker, Console(port, tmp_path / "chromium-profile")


def last_stable_offsets(broker, topic: str, partitions: range) -> dict[int, int]:
    client = ck.admin(broker)
    futures = client.list_offsets(
        {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions},
        isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=30)
    return {tp.partition: f.result(timeout=60).offset for tp, f in futures.items()}


def watermarks(broker, topic: str, partition: int) -> tuple[int, int]:
    """Log start and high watermark (librdkafka's default isolation would give the LSO instead)."""
    client = ck.consumer(broker, **{"isolation.level": "read_uncommitted"})
    try:
        return client.get_watermark_offsets(TopicPartition(topic, partition), timeout=20, cached=False)
    finally:
        client.close()


def partition_row(dom: Node, topic: str, partition: int) -> Node:
    rows = dom.find_all("tr", data_topic=topic, data_partition=str(partition))
    assert len(rows) == 1, f"{len(rows)} rows for {topic}-{partition}"
    return rows[0]


@needs_chromium
def test_pages_show_what_the_kafka_apis_report(broker_factory, tmp_path):
    broker, console = console_broker(broker_factory, tmp_path, "--group-initial-rebalance-delay-ms", "0")
    topic = unique_topic("console")
    ck.create_topic(broker, topic, 3)
    for p in range(3):
        ck.produce_indexed(
            broker, topic, range(p * 100, p * 100 + 20 + 10 * p), partition=p, **{"enable.idempotence": True})
    # A log start above zero on partition 1, an open transaction holding partition 2's LSO back.
    admin = ck.admin(broker)
    deleted = admin.delete_records([TopicPartition(topic, 1, 7)], request_timeout=30)
    for future in deleted.values():
        future.result(timeout=60)
    open_txn = txn_producer(broker, unique_topic("tid-console"))
    open_txn.begin_transaction()
    for i in range(4):
        open_txn.produce(topic, value=b"pending-%d" % i, partition=2)
    open_txn.flush(30)

    group = unique_topic("console-group")
    member = ck.consumer(broker, **{"group.id": group, "auto.offset.reset": "earliest", "enable.partition.eof": False})
    try:
        member.subscribe([topic])
        deadline = Deadline(60, "the group member's assignment")
        while len(member.assignment()) < 3:
            deadline.check()
            member.poll(0.2)
        member.commit(offsets=[TopicPartition(topic, 0, 11), TopicPartition(topic, 1, 9)], asynchronous=False)
        committed = {tp.partition: tp.offset for tp in member.committed(
            [TopicPartition(topic, p) for p in range(3)], timeout=30) if tp.offset >= 0}
        assert committed == {0: 11, 1: 9}

        marks = {p: watermarks(broker, topic, p) for p in range(3)}
        lsos = last_stable_offsets(broker, topic, range(3))
        assert marks[1][0] == 7 and lsos[2] < marks[2][1], "the test set up what it checks"

        dom = console.render("/topics")
        for p in range(3):
            row = partition_row(dom, topic, p)
            shown = (int(row.field("log-start")), int(row.field("high-watermark")), int(row.field("lso")))
            assert shown == (marks[p][0], marks[p][1], lsos[p]), f"partition {p}"
            assert int(row.field("lso-lag")) == marks[p][1] - lsos[p]
        assert "holding" in partition_row(dom, topic, 2).attrs.get("class", "")
        assert "holding" not in partition_row(dom, topic, 0).attrs.get("class", "")
        api = {t["name"]: t for t in console.api("/api/topics")}[topic]
        assert [(p["logStartOffset"], p["highWatermark"], p["lastStableOffset"]) for p in api["partitions"]] == [
            (marks[p][0], marks[p][1], lsos[p]) for p in range(3)]
        # Producers per partition: each idempotent producer on its own, plus the open transaction's on 2.
        assert [len(p["producers"]) for p in api["partitions"]] == [1, 1, 2]
        assert [pr.get("currentTransactionStartOffset") for pr in api["partitions"][2]["producers"]].count(lsos[2]) == 1

        dom = console.render("/groups")
        offsets = {int(r.attrs["data-partition"]): r for r in dom.find_all("tr", data_group=group)}
        assert sorted(offsets) == [0, 1]
        for p, row in offsets.items():
            assert int(row.field("committed")) == committed[p]
            assert int(row.field("lag")) == marks[p][1] - committed[p]
        members = dom.find_all("tr", data_member_id=member.memberid())
        assert len(members) == 1, "the confluent-kafka member is listed under its member id"
        assert members[0].field("assignment") == ", ".join(f"{topic}-{p}" for p in range(3))
        groups = {g["groupId"]: g for g in console.api("/api/groups")}
        assert groups[group]["state"] == "Stable"
        assert groups[group]["totalLag"] == sum(marks[p][1] - committed[p] for p in committed)
        # The chart's samples, taken in the background every 5 s, carry the same lag.
        expected_lag = groups[group]["totalLag"]
        samples = wait_until(lambda: [x for x in console.api("/api/groups/lag-history").get(group, [])
                                      if x["totalLag"] == expected_lag][1:], 60, "two lag samples")
        assert samples
        assert console.render("/groups").find_all("svg", **{"class": "lag-chart"}), "the lag chart is drawn"

        health = console.render("/")
        version = subprocess.run([str(broker_binary()), "--version"], capture_output=True, text=True, timeout=30)
        assert health.field("version") == version.stdout.strip()
        assert int(health.field("connections")) >= 1, "this test's clients are connected"
        assert int(health.field("open-transactions")) == 1
        listed = ck.admin(broker).list_topics(timeout=20).topics
        assert int(health.field("topics")) == len([t for t in listed if not t.startswith("__")])
    finally:
        member.close()
    open_txn.abort_transaction(30)


@needs_chromium
def test_a_transaction_appears_and_disappears_after_commit(broker_factory, tmp_path):
    broker, console = console_broker(broker_factory, tmp_path)
    topic = unique_topic("console-txn")
    ck.create_topic(broker, topic, 1)
    ck.produce_indexed(broker, topic, range(5))
    transactional_id = unique_topic("tid-appears")
    producer = txn_producer(broker, transactional_id)
    assert console.render("/transactions").find_all(id="no-open-transactions"), "no transaction before the test's"

    producer.begin_transaction()
    producer.produce(topic, value=b"in-flight")
    producer.flush(30)
    dom = console.render("/transactions")
    rows = dom.find_all("tr", data_transactional_id=transactional_id)
    assert len(rows) == 1, "the open transaction is listed"
    row = rows[0]
    assert row.field("state") == "Ongoing"
    assert row.field("partitions") == f"{topic}-0"
    assert row.field("holding") == f"{topic}-0", "its first offset is the partition's LSO"
    assert "holding" in row.attrs["class"]
    assert int(row.field("producer-epoch")) >= 0
    assert dom.find_all("svg", id="transaction-timeline"), "the timeline is drawn"
    # The producer id the console shows is the one writing to the partition (DescribeProducers view).
    lso = last_stable_offsets(broker, topic, range(1))[0]
    assert lso == 5
    partition = console.api("/api/topics")
    writers = [pr for t in partition if t["name"] == topic for pr in t["partitions"][0]["producers"]
               if pr.get("currentTransactionStartOffset") == lso]
    assert [w["producerId"] for w in writers] == [int(row.field("producer-id"))]

    producer.commit_transaction(30)
    wait_until(lambda: all(t["transactionalId"] != transactional_id for t in console.api("/api/transactions")["open"]),
               30, "the committed transaction to leave the open list")
    dom = console.render("/transactions")
    assert dom.find_all("tr", data_transactional_id=transactional_id) == []
    assert dom.find_all(id="no-open-transactions")
    row = partition_row(console.render("/topics"), topic, 0)
    low, high = watermarks(broker, topic, 0)
    assert int(row.field("lso")) == last_stable_offsets(broker, topic, range(1))[0] == high
    assert "holding" not in row.attrs.get("class", "")


@needs_chromium
def test_abort_hanging_transaction_behind_a_confirmation(broker_factory, tmp_path):
    # No periodic check: only the console's action may end the hanging transaction.
    broker, console = console_broker(broker_factory, tmp_path, "--transaction-timeout-check-interval-ms", "3600000")
    topic = unique_topic("console-hanging")
    committed_then_cut(broker, topic)
    plain = ck.producer(broker)
    plain.produce(topic, value=b"after")
    plain.flush(30)
    live = txn_producer(broker, unique_topic("tid-live"))
    live.begin_transaction()
    live.produce(topic, value=b"live")
    live.flush(30)
    assert read_values(broker, topic, "read_committed") == []

    dom = console.render("/transactions")
    hanging = dom.find_all("tr", data_topic=topic, data_partition="0")
    assert len(hanging) == 1 and "hanging" in hanging[0].attrs["class"]
    hanging_id = int(hanging[0].attrs["data-producer-id"])
    live_rows = [r for r in dom.find_all("tr") if "txn" in r.attrs.get("class", "").split()]
    assert len(live_rows) == 1
    live_id, live_epoch = int(live_rows[0].field("producer-id")), int(live_rows[0].field("producer-epoch"))
    assert live_id != hanging_id

    # The broker's guard, through the JSON API: a live transaction is not hanging.
    status, body = console.post(
        f"/api/transactions/abort-hanging?topic={topic}&partition=0&producerId={live_id}&producerEpoch={live_epoch}")
    assert (status, json.loads(body)["error"]) == (409, "INVALID_TXN_STATE")

    # The page's link leads to a confirmation, which alone carries the POST that aborts.
    links = [a.attrs["href"] for a in hanging[0].find_all("a")]
    assert len(links) == 1 and links[0].startswith("/transactions/abort?")
    confirm = console.render(links[0])
    forms = confirm.find_all("form", method="post")
    assert len(forms) == 1 and forms[0].find_all("button", id="confirm-abort")
    assert console.render("/transactions").find_all("tr", data_producer_id=str(hanging_id)), "viewing changed nothing"
    status, page = console.post(forms[0].attrs["action"])
    assert status == 200
    result = parse(page.decode()).find_all(id="abort-result")
    assert len(result) == 1 and result[0].attrs["data-error"] == "NONE", page.decode()[-800:]

    dom = console.render("/transactions")
    assert dom.find_all(id="no-hanging-transactions")
    assert len([r for r in dom.find_all("tr") if "txn" in r.attrs.get("class", "").split()]) == 1, "the live one stays"
    assert read_values(broker, topic, "read_committed") == [b"after"]
    live.commit_transaction(30)
    assert read_values(broker, topic, "read_committed") == [b"after", b"live"]


def test_a_console_address_in_use_is_named_before_the_data_directory_is_touched(broker_factory):
    port = free_port()
    broker = broker_factory(start=False, extra_args=["--http-listen", f"127.0.0.1:{port}"])
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", port))
    holder.listen(1)
    try:
        with pytest.raises(BrokerError):
            broker.start()
    finally:
        holder.close()
    assert f"127.0.0.1:{port} is already in use" in broker.log_text(), broker.log_tail()
    assert not broker.data_dir.exists() or list(broker.data_dir.iterdir()) == [], "the data directory was touched"
    assert broker.process.returncode != 0


def http_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends raw request bytes and reads the answer until the console closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_http_answers_unknown_paths_wrong_methods_and_oversized_requests(broker_factory, tmp_path):
    port = free_port()
    broker_factory(extra_args=[
        "--http-listen", f"127.0.0.1:{port}", "--http-max-request-body-bytes", "100",
        "--http-max-request-headers", "8", "--http-max-request-header-bytes", "1024"])
    console = Console(port, tmp_path / "unused-profile")
    close = b"Host: 127.0.0.1\r\nConnection: close\r\n"

    status, headers, body = http_exchange(port, b"GET /no-such-page HTTP/1.1\r\n" + close + b"\r\n")
    assert status == 404 and "no-such-page" in json.loads(body)["error"]

    status, headers, _ = http_exchange(port, b"GET /api/transactions/abort-hanging?topic=t HTTP/1.1\r\n" + close + b"\r\n")
    assert (status, headers["allow"]) == (405, "POST"), "a GET cannot abort"
    status, headers, _ = http_exchange(port, b"DELETE /topics HTTP/1.1\r\n" + close + b"\r\n")
    assert (status, headers["allow"]) == (405, "GET")

    # A declared body over the limit is refused before it is sent; a chunked one once it passes.
    status, _, _ = http_exchange(port, b"POST /transactions/abort HTTP/1.1\r\n" + close + b"Content-Length: 101\r\n\r\n")
    assert status == 413
    chunk = b"x" * 101
    status, _, _ = http_exchange(port, b"POST /transactions/abort HTTP/1.1\r\n" + close
                                 + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(chunk) + chunk)
    assert status == 413
    status, _, body = http_exchange(port, b"POST /api/transactions/abort-hanging HTTP/1.1\r\n" + close
                                    + b"Content-Length: 100\r\n\r\n" + b"y" * 100)
    assert status == 400 and "required" in json.loads(body)["error"], "a body within the limit is read and the query checked"

    many = b"".join(b"X-Extra-%d: 1\r\n" % i for i in range(8))
    status, _, _ = http_exchange(port, b"GET /api/health HTTP/1.1\r\n" + close + many + b"\r\n")
    assert status == 431
    status, _, _ = http_exchange(port, b"GET /api/health HTTP/1.1\r\n" + close + b"X-Big: " + b"z" * 1100 + b"\r\n\r\n")
    assert status == 431

    # Two requests on one keep-alive connection are both answered, and the console still serves.
    status, _, body = http_exchange(
        port, b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + b"GET /api/topics HTTP/1.1\r\n" + close + b"\r\n")
    assert status == 200 and body.count(b"HTTP/1.1 200 OK") == 1, "the second answer follows the first"
    assert console.api("/api/health")["nodeId"] == 1


def held_connection(port: int) -> socket.socket | None:
    """A keep-alive connection that has had one answer, so the console has surely counted it;
    None if the console closed it unanswered."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            sock.close()
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b": ")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def received_before_close(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_console_connections_past_the_limit_are_closed_as_accepted(broker_factory, tmp_path):
    port = free_port()
    broker = broker_factory(extra_args=["--http-listen", f"127.0.0.1:{port}", "--http-max-connections", "2"])
    Console(port, tmp_path / "unused-profile")
    # The readiness probe's connection may not be released yet; these wait for their slots.
    first = wait_until(lambda: held_connection(port), 30, "a first console connection")
    second = wait_until(lambda: held_connection(port), 30, "a second console connection")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as third:
            try:
                third.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            except (ConnectionResetError, BrokenPipeError):
                pass  # closed before the request went out: refused all the same
            assert received_before_close(third) == b"", "a third connection over --http-max-connections 2 gets no answer"
        # The Kafka listener is a separate budget: clients still work while the console is full.
        assert ck.admin(broker).list_topics(timeout=20).brokers
    finally:
        first.close()
    # A closed connection gives its slot back.
    wait_until(lambda: held_connection(port), 30, "the slot the first connection freed").close()
    second.close()


def test_idle_console_connections_are_closed(broker_factory, tmp_path):
    port = free_port()
    broker_factory(extra_args=["--http-listen", f"127.0.0.1:{port}", "--http-connections-max-idle-ms", "300"])
    Console(port, tmp_path / "unused-profile")
    with wait_until(lambda: held_connection(port), 30, "a console connection") as idle:
        assert closed_by_peer(idle, seconds=30), "an idle console connection is closed"
