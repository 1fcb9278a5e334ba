"""OnceClient's producer and consumer as ServiceLifecycle services: made before the broker is up
they wait for it instead of failing, and when the broker is restarted mid-run they reconnect and
carry on. The Swift side runs as `once perf scenario service`; confluent-kafka (librdkafka)
cross-checks that the log holds every record exactly once despite the restart."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import confluent_helpers as ck
from once_broker import broker_binary
from support import Deadline, index_of, unique_topic, value_for

TIMEOUT = 180


class Lines:
    """The scenario's stdout, line by line, readable while it runs."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._pump, args=(process,), daemon=True)
        self.thread.start()

    def _pump(self, process) -> None:
        for raw in process.stdout:
            with self.changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.changed.notify_all()

    def wait_for(self, line: str, seconds: float, process) -> None:
        deadline = Deadline(seconds, f"scenario line {line!r}")
        with self.changed:
            while line not in self.lines:
                deadline.check(f"(exit code {process.poll()}, last lines {self.lines[-5:]})")
                if process.poll() is not None and not self.thread.is_alive():
                    raise AssertionError(
                        f"the scenario exited {process.returncode} before {line!r}; last lines {self.lines[-5:]}")
                self.changed.wait(0.2)


def test_services_started_before_the_broker_wait_for_it_and_survive_a_restart(broker_factory, tmp_path: Path):
    broker = broker_factory(start=False)
    topic = unique_topic("oc-service")
    count = 400
    resume = tmp_path / "resume"
    command = [
        str(broker_binary()), "perf", "scenario", "service", "--bootstrap-server", broker.bootstrap,
        "--topic", topic, "--count", str(count), "--resume-file", str(resume),
    ]
    stderr = open(tmp_path / "scenario.err", "wb")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
    try:
        out = Lines(process)
        # The services run with no broker listening: a client that connects eagerly exits here.
        out.wait_for("started", 60, process)
        assert process.poll() is None, f"the scenario exited {process.returncode} with no broker up"

        broker.start()
        out.wait_for(f"delivered {count // 2 - 1}", TIMEOUT, process)

        # Mid-run: the broker goes away, the producer is told to carry on while it is down,
        # and the broker comes back on the same address and data directory.
        broker.stop()
        resume.touch()
        out.wait_for("resumed", 60, process)
        broker.restart()

        code = process.wait(TIMEOUT)
        out.thread.join(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr.close()
    err_text = (tmp_path / "scenario.err").read_text(errors="replace")
    assert code == 0, f"scenario exited {code}\nstdout: {out.lines[-10:]}\nstderr:\n{err_text[-4000:]}"

    delivered = [int(line.split()[1]) for line in out.lines if line.startswith("delivered ")]
    assert delivered == list(range(count)), "every send returned once, in order"
    # The consumer, also made before the broker, read each record once across the restart.
    assert f"consumed {count} distinct {count}" in out.lines, out.lines[-5:]

    # librdkafka reads back the log: every value once, in send order, none lost to the restart.
    records = ck.read_to_end(broker, topic, [0])
    values = [r.value for r in records]
    assert [index_of(v) for v in values] == list(range(count)), (
        f"{len(values)} records; duplicates: {len(values) - len(set(values))}"
    )
    assert values[0] == value_for(0)
